"""A ClinicalTrials.gov API v2 emulator for ``LocalServer``.

``ctgov_responder(studies)`` answers ``GET /studies`` (under any prefix, e.g. ``/api/v2/studies``)
the way the real API does: pages of ``studies``, an opaque ``nextPageToken`` while more remain,
``totalCount`` on the first page only and only with ``countTotal=true``; it honours ``pageSize``,
``pageToken``, ``query.cond``/``query.term`` (a case-insensitive substring match over titles,
conditions and keywords — good enough for replay, not the registry's ranking) and the
``AREA[LastUpdatePostDate]RANGE[from,to]`` form of ``filter.advanced``.

**Time.** Several study dicts with the same NCT id are versions of one registration: on the
emulator's date (``today``, default spsbot's clock, bot.clock; None = always the latest) a study is
listed once its ``studyFirstPostDate`` has come, as its latest version whose
``lastUpdatePostDate`` has come.

Faults on cue, for tests: ``repeat_token_after=N`` makes page N hand back the token it was
given; ``empty_page_at=N`` makes page N empty while still promising more (its studies are lost:
the search then falls short of its totalCount); ``empty_page_before=N`` serves an empty page with
a fresh token before page N (the v2 spec allows empty pages; nothing is lost);
``same_studies_after=N`` serves page N's studies again and again with a fresh token each time
(a fault CT.gov really had); ``count_extra=K`` says totalCount is K more than it serves.

``demo_studies(version)`` loads the bundled demo data set (``bot/demo_data/ctgov/``): version 1
is the registry as first seen, version 2 has one trial's later (invented) version with a
status change and results posted, so the demo shows a change event.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from importlib import resources

from bot.clock import now_iso
from bot.replay import Request, Response

_RANGE_RE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[([^,\]]*),([^\]]*)\]", re.I)


def _haystack(study: dict) -> str:
    proto = study.get("protocolSection") or {}
    ident = proto.get("identificationModule") or {}
    cond = proto.get("conditionsModule") or {}
    parts = [ident.get("briefTitle"), ident.get("officialTitle"), *(cond.get("conditions") or []),
             *(cond.get("keywords") or []), (proto.get("descriptionModule") or {}).get("briefSummary")]
    return " ".join(p for p in parts if p).lower()


def _matches(study: dict, request: Request, match_queries: bool = True) -> bool:
    for name in ("query.cond", "query.term") if match_queries else ():
        value = request.param(name)
        if value:
            words = re.findall(r"\w+", value.lower())
            text = _haystack(study)
            if not all(w in text for w in words):
                return False
    advanced = request.param("filter.advanced")
    if advanced:
        match = _RANGE_RE.search(advanced)
        if not match:
            raise ValueError(f"unsupported filter.advanced: {advanced}")
        low, high = match.group(1).strip(), match.group(2).strip()
        date = _date_of(study, "lastUpdatePostDateStruct")
        if low and low.upper() != "MIN" and date < low:
            return False
        if high and high.upper() != "MAX" and date > high:
            return False
    return True


def _token(offset: int, salt: str, flag: int = 0, serial: int = 0) -> str:
    return base64.urlsafe_b64encode(f"{salt}:{offset}:{flag}:{serial}".encode()).decode().rstrip("=")


def _read_token(token: str) -> tuple[int, int, int]:
    """(offset, flag, serial) of a token made by ``_token``."""
    padded = token + "=" * (-len(token) % 4)
    offset, flag, serial = base64.urlsafe_b64decode(padded.encode()).decode().rsplit(":", 3)[1:]
    return int(offset), int(flag), int(serial)


def _date_of(study: dict, struct: str) -> str:
    return (((study.get("protocolSection") or {}).get("statusModule") or {}).get(struct) or {}).get("date") or ""


def visible_studies(studies: list[dict], today: str | None) -> list[dict]:
    """The registry on ``today`` (ISO date; None = the latest of everything): each NCT id once, in
    first-seen order, as its latest version posted by then; studies not yet first posted left out."""
    versions: dict[str, list[dict]] = {}
    for study in studies:
        nct_id = str(((study.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId"))
        versions.setdefault(nct_id, []).append(study)
    shown = []
    for group in versions.values():
        group = sorted(group, key=lambda s: _date_of(s, "lastUpdatePostDateStruct"))
        if today is None:
            shown.append(group[-1])
            continue
        first_posted = min((_date_of(s, "studyFirstPostDateStruct") for s in group), default="") or ""
        if first_posted[:10] > today:
            continue
        posted = [s for s in group if _date_of(s, "lastUpdatePostDateStruct")[:10] <= today]
        shown.append(posted[-1] if posted else group[0])
    return shown


def _json(body: dict) -> bytes:
    """The page as the registry sends it: UTF-8 JSON; a string the registry holds with a lone
    surrogate goes out as its ``\\ud83d`` escape (UTF-8 cannot carry it), a NaN as ``NaN``."""
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body).encode("ascii")


def _store_today() -> str:
    return now_iso()[:10]


def ctgov_responder(studies: list[dict], page_size_cap: int = 1000, *, repeat_token_after: int | None = None,
                    empty_page_at: int | None = None, empty_page_before: int | None = None,
                    same_studies_after: int | None = None, count_extra: int = 0, match_queries: bool = True,
                    today=_store_today):
    """A ``respond(request)`` function serving ``studies`` as the v2 ``/studies`` endpoint.

    ``match_queries=False`` serves every study whatever ``query.*`` asks (a recorded answer set);
    the LastUpdatePostDate filter still applies. ``today``: a function giving the registry's date
    (ISO), or None for the latest version of everything.
    """
    def respond(request: Request) -> Response:
        if not request.path.rstrip("/").endswith("/studies"):
            return Response(404, json.dumps({"message": f"no such endpoint {request.path}"}), "application/json")
        try:
            page_size = int(request.param("pageSize", "10"))
        except ValueError:
            return Response(400, "pageSize must be an integer", "text/plain")
        if not 1 <= page_size <= page_size_cap:
            return Response(400, f"pageSize must be between 1 and {page_size_cap}", "text/plain")
        try:
            current = visible_studies(studies, today() if today else None)
            selected = [s for s in current if _matches(s, request, match_queries)]
        except ValueError as e:
            return Response(400, str(e), "text/plain")
        salt = "|".join(f"{k}={v}" for k, v in sorted(request.query.items()) if k != "pageToken")[:40]
        token = request.param("pageToken")
        try:
            offset, flag, serial = _read_token(token) if token else (0, 0, 0)
        except (ValueError, IndexError):
            return Response(400, "invalid pageToken", "text/plain")
        page_number = offset // page_size + 1
        body: dict = {}
        if not token and request.param("countTotal", "false").lower() == "true":
            body["totalCount"] = len(selected) + count_extra
        if page_number == empty_page_before and not flag:
            body.update(studies=[], nextPageToken=_token(offset, salt, flag=1, serial=serial + 1))
            return Response(200, _json(body), "application/json")
        if same_studies_after and page_number >= same_studies_after:
            start = (same_studies_after - 1) * page_size
            body.update(studies=selected[start:start + page_size], nextPageToken=_token(start, salt, serial=serial + 1))
            return Response(200, _json(body), "application/json")
        chunk = selected[offset:offset + page_size]
        body["studies"] = [] if page_number == empty_page_at else chunk
        if offset + page_size < len(selected):
            body["nextPageToken"] = (token if repeat_token_after and page_number > repeat_token_after and token
                                     else _token(offset + page_size, salt, serial=serial + 1))
        return Response(200, _json(body), "application/json")

    return respond


# --- the bundled demo data set ----------------------------------------------------------------

DEMO_CHANGED_TRIAL = "NCT03829826"


def _demo_file(name: str) -> dict:
    return json.loads(resources.files("bot").joinpath("demo_data", "ctgov", name).read_text(encoding="utf-8"))


def demo_studies(version: int = 1, update_date: str | None = None) -> list[dict]:
    """The bundled demo studies. Version 2 swaps in the later version of DEMO_CHANGED_TRIAL,
    posted on ``update_date`` (default: today, so an incremental fetch asks for it)."""
    studies = _demo_file("studies.json")["studies"]
    if version == 1:
        return studies
    if version != 2:
        raise ValueError(f"demo data has versions 1 and 2, not {version}")
    posted = {"date": update_date or now_iso()[:10], "type": "ACTUAL"}
    later = copy.deepcopy(_demo_file(f"later_version_{DEMO_CHANGED_TRIAL}.json"))
    status = later["protocolSection"]["statusModule"]
    status["lastUpdatePostDateStruct"] = dict(posted)
    status["resultsFirstPostDateStruct"] = dict(posted)
    return [later if s["protocolSection"]["identificationModule"]["nctId"] == DEMO_CHANGED_TRIAL else s
            for s in studies]


def demo_responder(version: int = 1, update_date: str | None = None):
    """Serve the demo studies whatever the query (they are the topic's recorded answer set)."""
    return ctgov_responder(demo_studies(version, update_date), match_queries=False)
