"""Done when: the README's "Using it for real" path, followed literally on a fresh home directory
with the crontab recipe, sends on the first scheduled Monday.

The README's shell block runs as written in /bin/sh (the clone-and-install line is this checkout,
already installed: ~/spsbot is a link to it; `$EDITOR` is a script that makes the maintainer's
edits; `crontab -e` is replaced by running the pasted line on Monday at 06:15). Real parts: the
console script in its own processes, the SQLite file under ~/.local/share, a local SMTP server,
local PubMed and ClinicalTrials.gov emulators. The store's clock: set up on Saturday
2026-11-21, cron on Monday 2026-11-23 06:15. Only the embedding model is the tests' fake
(tests/e2e_site/sitecustomize.py: loading the real one costs seconds per process).
"""

import os
import re
import subprocess
import sys
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from bot.replay import LocalServer
from bot.replay.ctgov import demo_responder
from bot.replay.eutils import clone_article, eutils_responder
from conftest import SmtpServer
from maintainer_kit import crontab_line, newest_demo_articles

REPO = Path(__file__).resolve().parents[1]
SATURDAY, MONDAY = "2026-11-21T09:00:00+00:00", "2026-11-23T06:15:00+00:00"

EDITOR = """#!{python}
# The maintainer's edits: the env file gets real values, the profile a polite-but-fast CT.gov pace.
import os, re, secrets, sys
path = sys.argv[1]
text = open(path).read()
if path.endswith("env"):
    text = text.replace("/home/you", os.environ["HOME"])
    text = re.sub(r"SPSBOT_SMTP_URL='[^']*'", "SPSBOT_SMTP_URL='" + os.environ["E2E_SMTP"] + "'", text)
    # the placeholders are refused: a secret of one's own, and no password for a relay without login
    text = re.sub(r"SPSBOT_SECRET='[^']*'", "SPSBOT_SECRET='" + secrets.token_urlsafe(32) + "'", text)
    text = re.sub(r"(?m)^SPSBOT_SMTP_PASSWORD=.*\\n", "", text)
    text += ("SPSBOT_EUTILS_URL='" + os.environ["E2E_EUTILS"] + "'\\n"
             "SPSBOT_CTGOV_URL='" + os.environ["E2E_CTGOV"] + "'\\nNCBI_API_KEY='local-test-key'\\n")
else:
    text = text.replace("min_interval = 1.0", "min_interval = 0.0")  # the local emulator asks no pause
open(path, "w").write(text)
"""


def readme_block() -> list[str]:
    """The shell lines of the README's "Using it for real" block (comments stripped)."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Using it for real", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_the_readme_path_with_the_crontab_recipe_sends_on_the_first_monday(tmp_path):
    lines = readme_block()
    assert lines[0].startswith("git clone ") and lines[0].endswith("~/spsbot && cd ~/spsbot")
    assert lines[1].startswith("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0")
    assert lines[-1] == "crontab -e"
    home = tmp_path / "home"
    home.mkdir()
    (home / "spsbot").symlink_to(REPO)  # lines 0-1: this checkout, installed in its .venv
    editor = tmp_path / "editor"
    editor.write_text(EDITOR.format(python=sys.executable))
    editor.chmod(0o755)
    articles = newest_demo_articles(6)
    # Two more SPS papers PubMed creates on Sunday: the emulator shows them from its Monday on.
    weekend = [clone_article(articles[0], 90000001, date(2026, 11, 22)),
               clone_article(articles[1], 90000002, date(2026, 11, 22))]
    today = ["2026/11/21"]
    with ExitStack() as stack:
        pubmed = stack.enter_context(LocalServer(eutils_responder(articles + weekend, today=lambda: today[0])))
        ctgov = stack.enter_context(LocalServer(demo_responder(1)))
        smtp = stack.enter_context(SmtpServer())
        env = {"HOME": str(home), "PATH": os.environ["PATH"], "EDITOR": str(editor), "TZ": "UTC",
               "PYTHONPATH": str(REPO / "tests" / "e2e_site"), "E2E_SMTP": smtp.url,
               "E2E_EUTILS": pubmed.url + "/entrez/eutils", "E2E_CTGOV": ctgov.url + "/api/v2"}
        script = "set -e\ncd ~/spsbot\n" + "\n".join(lines[2:-1]) + "\n"
        setup = subprocess.run(["/bin/sh", "-c", script], env={**env, "SPSBOT_NOW": SATURDAY},
                               capture_output=True, text=True, timeout=120)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert smtp.recipients() == ["ann@example.org"]  # the manual run's first digest (the last 7 days)
        assert (home / ".local" / "share" / "spsbot" / "spsbot.db").is_file()

        today[0] = "2026/11/23"
        command = crontab_line().split(None, 5)[5]
        cron_env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "TZ": "UTC",  # cron's env
                    "PYTHONPATH": env["PYTHONPATH"], "SPSBOT_NOW": MONDAY}
        monday = subprocess.run(["/bin/sh", "-c", command], env=cron_env, capture_output=True, text=True,
                                timeout=120)
        log = (home / ".local" / "state" / "spsbot" / "run.log").read_text()
        assert monday.returncode == 0, monday.stderr + log
        assert len(smtp.messages) == 2 and smtp.recipients() == ["ann@example.org"] * 2, log
        assert "run send: 1 sent" in log
        body = smtp.messages[1].get_body(("plain",)).get_content()
        assert "(copy 90000001)" in body and "(copy 90000002)" in body  # the weekend's papers …
        first = smtp.messages[0].get_body(("plain",)).get_content()
        old = [t for t in re.findall(r"^\* (.+)$", first, re.M)]
        assert old and not any(title in body for title in old)  # … and nothing Saturday's digest held
