"""Build the bundled ClinicalTrials.gov demo data set (bot/demo_data/ctgov/) from the SPS evaluation records.

The texts are real (NCT id, brief and official title, brief summary excerpt, overall status, phase,
study type, conditions, interventions, lead sponsor and collaborators from ../shared/eval/dev.jsonl);
the API v2 study envelopes around them (protocolSection modules) are built here. Nothing the
evaluation record does not say is added: no dates, enrollment or locations.

It also writes ONE later version of one SPS trial (NCT03829826: UNKNOWN → COMPLETED, results
posted). That later version is INVENTED for the demo, so ``spsbot demo`` can show a change event;
it is not what the registry says about that trial.

Usage: python scripts/make_ctgov_demo_data.py [DEV_JSONL] [OUT_DIR]
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

DEV = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/eval/dev.jsonl")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "bot/demo_data/ctgov")
# The three SPS trials, one near miss (CAR-T for antibody-mediated neurological disease) and two
# negatives (CAR-T in myositis and MS): the ones whose evaluation records carry trial metadata.
NCT_IDS = ["NCT00030940", "NCT03749096", "NCT03829826", "NCT04561557", "NCT06152172", "NCT06451159"]
CHANGED = "NCT03829826"

STATUS = {"completed": "COMPLETED", "withdrawn": "WITHDRAWN", "unknown": "UNKNOWN", "recruiting": "RECRUITING",
          "not yet recruiting": "NOT_YET_RECRUITING", "active - not recruiting": "ACTIVE_NOT_RECRUITING",
          "terminated": "TERMINATED", "suspended": "SUSPENDED"}
PHASES = {"early phase 1": ["EARLY_PHASE1"], "phase 1": ["PHASE1"], "phase 2": ["PHASE2"], "phase 3": ["PHASE3"],
          "phase 4": ["PHASE4"], "n/a": ["NA"]}
INTERVENTION_TYPES = {"drug", "biological", "device", "procedure", "behavioral", "dietary supplement", "other"}


def sponsor_parts(text: str | None) -> tuple[str | None, list[str]]:
    """"Tongji Hospital (collaborator: Nanjing IASO Biotechnology)" → lead, [collaborators]."""
    if not text:
        return None, []
    match = re.match(r"^(.*?)\s*\((collaborator|site):\s*(.*)\)\s*$", text)
    if not match:
        return text, []
    return match.group(1), [match.group(3)] if match.group(2) == "collaborator" else []


def intervention(text: str) -> dict:
    kind, _, name = text.partition(": ")
    if name and kind.lower() in INTERVENTION_TYPES:
        return {"type": kind.upper().replace(" ", "_"), "name": name}
    return {"name": text}


def study_from(record: dict) -> dict:
    lead, collaborators = sponsor_parts(record.get("sponsor"))
    ident = {"nctId": record["id"], "briefTitle": record["title"]}
    if record.get("official_title"):
        ident["officialTitle"] = record["official_title"]
    status = {"overallStatus": STATUS[record["status"].lower()]}
    design = {"studyType": record["study_type"].upper()}
    if design["studyType"] == "INTERVENTIONAL" and record.get("phase"):
        design["phases"] = PHASES[record["phase"].lower()]
    sponsors = {"leadSponsor": {"name": lead}}
    if collaborators:
        sponsors["collaborators"] = [{"name": c} for c in collaborators]
    proto = {
        "identificationModule": ident, "statusModule": status, "sponsorCollaboratorsModule": sponsors,
        "descriptionModule": {"briefSummary": record["text"]},
        "conditionsModule": {"conditions": record.get("conditions") or []},
        "designModule": design,
    }
    if record.get("interventions"):
        proto["armsInterventionsModule"] = {"interventions": [intervention(i) for i in record["interventions"]]}
    return {"protocolSection": proto, "hasResults": False}


def later_version(study: dict) -> dict:
    """The invented later version: the trial completed and posted results (dates set at load time)."""
    later = copy.deepcopy(study)
    later["_demo_note"] = ("INVENTED later version for the spsbot demo (status change + results posted); "
                           "not registry data")
    later["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    later["hasResults"] = True
    return later


def main() -> None:
    records = {r["id"]: r for r in map(json.loads, DEV.read_text(encoding="utf-8").splitlines()) if r["id"] in NCT_IDS}
    studies = [study_from(records[n]) for n in NCT_IDS]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "studies.json").write_text(json.dumps({"studies": studies}, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    changed = later_version(next(s for s in studies
                                 if s["protocolSection"]["identificationModule"]["nctId"] == CHANGED))
    (OUT / f"later_version_{CHANGED}.json").write_text(json.dumps(changed, indent=1, ensure_ascii=False) + "\n",
                                                       encoding="utf-8")
    print(f"wrote {len(studies)} studies and 1 later version to {OUT}")


if __name__ == "__main__":
    main()
