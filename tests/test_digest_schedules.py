"""The schedules/ files work as written: the env file sources in /bin/sh, the crontab line runs
as pasted (log folder, env, timeout, exit 3 = success), the systemd units pass
`systemd-analyze verify` (where the binary exists), and the workflow pins torch, has a timeout
and refuses to start over when its state was not restored."""

import os
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from maintainer_kit import SCHEDULES, crontab_line, run_workflow_step, workflow, workflow_step


def source_env(path) -> subprocess.CompletedProcess:
    """What the crontab line does with the env file: /bin/sh, `set -a`, `.`, then print env -0."""
    return subprocess.run(["/bin/sh", "-c", 'set -a && . "$1" && set +a && env -0', "sh", str(path)],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=10)


def test_the_env_example_sources_in_sh_with_every_value_intact():
    result = source_env(SCHEDULES / "env.example")
    assert result.returncode == 0, result.stderr
    env = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    assert env["SPSBOT_SMTP_FROM"] == "SPS digest <digest@example.org>"
    assert env["SPSBOT_SMTP_URL"] == "smtp+starttls://mail.example.org:587"
    assert {"SPSBOT_CONFIG", "SPSBOT_SECRET", "SPSBOT_SMTP_PASSWORD", "NCBI_EMAIL"} <= set(env)
    # one syntax both /bin/sh and systemd's EnvironmentFile= read the same: NAME='value', no $
    for line in (SCHEDULES / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*='[^'$]*'", line), line


def test_the_old_unquoted_example_is_the_syntax_error_that_stopped_the_job(tmp_path):
    broken = tmp_path / "env"
    broken.write_text("SPSBOT_SMTP_FROM=SPS digest <digest@example.org>\n")
    assert source_env(broken).returncode != 0


STUB = """#!/bin/sh
echo "args: $*" > "$HOME/stub.out"
echo "from: $SPSBOT_SMTP_FROM" >> "$HOME/stub.out"
echo "ran spsbot"
exit "${STUB_EXIT:-0}"
"""


@pytest.mark.parametrize("code, line_ok", [(0, True), (3, True), (1, False)])
def test_the_crontab_line_runs_as_pasted(tmp_path, code, line_ok):
    home = tmp_path / "home"
    (home / ".config" / "spsbot").mkdir(parents=True)
    shutil.copy(SCHEDULES / "env.example", home / ".config" / "spsbot" / "env")
    binary = home / "spsbot" / ".venv" / "bin" / "spsbot"
    binary.parent.mkdir(parents=True)
    binary.write_text(STUB)
    binary.chmod(0o755)
    command = crontab_line().split(None, 5)[5]
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "STUB_EXIT": str(code)}  # cron's own minimal env
    result = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=20)
    assert (result.returncode == 0) is line_ok, result.stderr
    assert (home / "stub.out").read_text() == "args: run\nfrom: SPS digest <digest@example.org>\n"
    assert (home / ".local" / "state" / "spsbot" / "run.log").read_text() == "ran spsbot\n"


def test_the_crontab_line_is_weekly_on_the_schedule_day_with_a_timeout():
    minute, hour, dom, month, dow, command = crontab_line().split(None, 5)
    assert (dom, month, dow) == ("*", "*", "1") and minute.isdigit() and hour.isdigit()  # Mondays
    assert re.search(r"timeout -k \S+ \S+ \S*spsbot\" run", command)
    assert "/var/log" not in command and "/etc/spsbot" not in command  # nothing a user cannot create


def _units_for_verify(tmp_path) -> list[Path]:
    """Every unit in schedules/, with ExecStart pointing at an executable that exists here."""
    out = []
    for name in sorted(p.name for p in SCHEDULES.iterdir() if p.suffix in (".service", ".timer")):
        text = (SCHEDULES / name).read_text().replace("/opt/spsbot/.venv/bin/spsbot", shutil.which("true"))
        (tmp_path / name).write_text(text)
        out.append(tmp_path / name)
    return out


def test_systemd_units(tmp_path):
    service = (SCHEDULES / "spsbot.service").read_text()
    timer = (SCHEDULES / "spsbot.timer").read_text()
    assert re.search(r"^ExecStart=\S*spsbot run$", service, re.M)
    assert "EnvironmentFile=/etc/spsbot/env" in service and "SuccessExitStatus=3" in service
    assert "TimeoutStartSec=2h" in service and "ProtectHome=yes" in service and "StateDirectory=spsbot" in service
    assert "Environment=SPSBOT_DB=/var/lib/spsbot/spsbot.db" in service  # the model cache goes beside it
    assert "PASSWORD=" not in service
    assert re.search(r"^OnCalendar=Mon ", timer, re.M) and "Persistent=true" in timer
    analyze = shutil.which("systemd-analyze")
    if analyze:  # CI installs it (.ci/run); without it the checks above are all there is
        units = _units_for_verify(tmp_path)
        result = subprocess.run([analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path)
        assert result.returncode == 0 and "spsbot" not in result.stderr, result.stderr


def test_github_workflow_is_scheduled_pinned_timed_and_uses_repository_secrets():
    flow = workflow()
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"].split()[4] == "1"
    job = flow["jobs"]["run"]
    assert job["timeout-minutes"] == 120
    assert job["env"]["SPSBOT_SMTP_PASSWORD"] == "${{ secrets.SPSBOT_SMTP_PASSWORD }}"
    assert "torch==2.13.0" in workflow_step("Install spsbot")["run"]
    steps = "\n".join(str(s.get("run", "")) for s in job["steps"])
    assert "spsbot run" in steps and '"$code" -eq 3' in steps
    assert not any("actions/cache" in str(s.get("uses", "")) for s in job["steps"])  # evicted after 7 days
    encrypt, keep = workflow_step("Encrypt the state"), workflow_step("Keep the state for the next run")
    assert encrypt["if"] == "always() && steps.verify.outcome == 'success'"
    assert keep["if"] == "always() && steps.encrypt.outcome == 'success'" and keep["with"]["retention-days"] == 90


def _verify(tmp_path, db_path, first_run=""):
    return run_workflow_step("Verify the state", tmp_path, {"SPSBOT_DB": str(db_path), "FIRST_RUN": first_run})


def test_the_workflow_fails_loudly_when_no_state_was_restored(tmp_path):
    missing = _verify(tmp_path, tmp_path / "state" / "spsbot.db")
    assert missing.returncode != 0 and "::error::no spsbot state was restored" in missing.stdout
    assert _verify(tmp_path, tmp_path / "state" / "spsbot.db", first_run="true").returncode == 0
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    bad = _verify(tmp_path, garbage)
    assert bad.returncode != 0 and "::error::" in bad.stdout + bad.stderr


def test_the_workflow_accepts_a_restored_state(db, tmp_path):
    db["subscribers"].insert({"email": "ann@example.org", "status": "active"})
    path = db.execute("pragma database_list").fetchone()[2]
    db.close()
    sqlite3.connect(path).execute("pragma wal_checkpoint(truncate)").close()
    result = _verify(tmp_path, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "state restored: 1 subscribers, 0 digests" in result.stdout


def test_web_front_unit_serves_on_loopback_with_the_shared_env():
    service = (SCHEDULES / "spsbot-web.service").read_text()
    assert re.search(r"^ExecStart=\S*spsbot serve --host 127\.0\.0\.1 --port \d+$", service, re.M)
    assert "EnvironmentFile=/etc/spsbot/env" in service and "Restart=on-failure" in service
    assert "PASSWORD=" not in service and "SECRET=" not in service
    # A start refused for good (the placeholder secret, a missing key) must end in a failed unit
    # monitoring sees, not a restart every RestartSec for ever: systemd's default limit (5 starts
    # in 10 s) is never reached at RestartSec=5.
    unit = dict(line.split("=", 1) for line in service.split("[Service]")[0].splitlines() if "=" in line)
    restart_sec = int(re.search(r"^RestartSec=(\d+)$", service, re.M).group(1))
    assert int(unit["StartLimitBurst"]) * restart_sec < int(unit["StartLimitIntervalSec"])


# --- issue 25: the weekly run and the web front open one database, by construction ----------------

SHARED = ("User", "Group", "StateDirectory", "StateDirectoryMode", "WorkingDirectory", "Environment",
          "EnvironmentFile", "UMask", "ProtectSystem", "ProtectHome")
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unit_settings(name: str) -> dict[str, list[str]]:
    """The [Service] section of a unit in schedules/: key -> its values, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in (SCHEDULES / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def environment_file(path: Path) -> dict[str, str]:
    """What systemd's EnvironmentFile= reads: NAME=value, one pair of enclosing quotes stripped."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def unit_environment(name: str, root: Path) -> tuple[dict[str, str], list[str], Path]:
    """(environment, command, working directory) systemd gives the unit's ExecStart, with /etc,
    /var and /opt under ``root``: the User='s passwd entry (home /var/lib/spsbot, as the README's
    useradd makes it), then Environment=, then EnvironmentFile= (which overrides it)."""
    settings = unit_settings(name)
    user = settings["User"][0]
    env = {"PATH": SYSTEMD_PATH, "HOME": "/var/lib/spsbot", "USER": user, "LOGNAME": user, "LANG": "C.UTF-8"}
    for assignment in settings.get("Environment", []):
        key, _, value = assignment.partition("=")
        env[key] = value
    for path in settings.get("EnvironmentFile", []):
        env.update(environment_file(root / path.lstrip("-/")))
    for state in settings.get("StateDirectory", []):
        env["STATE_DIRECTORY"] = f"/var/lib/{state}"
    moved = {key: (str(root / value.lstrip("/")) if value.startswith(("/var/", "/etc/")) else value)
             for key, value in env.items()}
    from conftest import spsbot_path
    command = [spsbot_path() if word == "/opt/spsbot/.venv/bin/spsbot" else word
               for word in shlex.split(settings["ExecStart"][0])]
    return moved, command, root / settings["WorkingDirectory"][0].lstrip("/")


def test_both_units_share_the_env_file_the_state_directory_and_the_database():
    run, web = unit_settings("spsbot.service"), unit_settings("spsbot-web.service")
    assert {key: run.get(key) for key in SHARED} == {key: web.get(key) for key in SHARED}
    assert run["EnvironmentFile"] == ["/etc/spsbot/env"] and run["StateDirectory"] == ["spsbot"]
    assert "SPSBOT_DB=/var/lib/spsbot/spsbot.db" in run["Environment"]
    assert run["ProtectHome"] == ["yes"] and run["UMask"] == ["0077"]
    readme = (SCHEDULES / "README.md").read_text()
    assert "SPSBOT_CONFIG='/etc/spsbot/spsbot.toml'" in readme and "settings` table" not in readme


def test_the_admin_command_in_the_readme_sees_the_units_user_env_file_and_database():
    """A maintainer's `spsbot status` typed as root opened a new database in root's home (and made
    a new key: every token "invalid"); schedules/README gives the command that runs as the units do."""
    readme = (SCHEDULES / "README.md").read_text()
    command = re.search(r"spsbot_admin\(\) \{\n(.*?)\n\}", readme, re.S).group(1)
    words = shlex.split(command.replace("\\\n", " "))  # backslash-newline joins the lines, as sh does
    assert words.pop() == "$@"
    run = unit_settings("spsbot.service")
    assert words[:2] == ["sudo", "systemd-run"] and "--pipe" in words and "--wait" in words
    assert f"--uid={run['User'][0]}" in words and f"--gid={run['Group'][0]}" in words
    assert f"--working-directory={run['WorkingDirectory'][0]}" in words
    given = [words[i + 1] for i, word in enumerate(words) if word == "-E"]
    assert sorted(given) == sorted(run["Environment"])
    assert [words[i + 1] for i, word in enumerate(words) if word == "-p"] == [
        f"EnvironmentFile={path}" for path in run["EnvironmentFile"]]
    assert words[-1] == shlex.split(run["ExecStart"][0])[0]


def _maintainers_env_file(root: Path, smtp_url: str, eutils_url: str, ctgov_url: str) -> None:
    """/etc/spsbot/env and the profile as schedules/README.md tells a maintainer to write them."""
    etc = root / "etc" / "spsbot"
    etc.mkdir(parents=True)
    text = (SCHEDULES / "env.example").read_text()
    text = re.sub(r"SPSBOT_CONFIG='[^']*'", "SPSBOT_CONFIG='/etc/spsbot/spsbot.toml'", text)
    text = re.sub(r"SPSBOT_SMTP_URL='[^']*'", f"SPSBOT_SMTP_URL='{smtp_url}'", text)
    text = re.sub(r"SPSBOT_SECRET='[^']*'", "SPSBOT_SECRET='" + secrets.token_urlsafe(32) + "'", text)
    text = re.sub(r"(?m)^SPSBOT_SMTP_PASSWORD=.*\n", "", text)  # a local relay: no login
    text += f"SPSBOT_EUTILS_URL='{eutils_url}'\nSPSBOT_CTGOV_URL='{ctgov_url}'\nNCBI_API_KEY='local-test-key'\n"
    (etc / "env").write_text(text)
    profile = (Path(__file__).parents[1] / "bot" / "profiles" / "sps.toml").read_text()
    (etc / "spsbot.toml").write_text(profile.replace("min_interval = 1.0", "min_interval = 0.0"))


def _open_databases(pid: int) -> set[str]:
    """The .db files process ``pid`` has open (an fd closed while it is listed is skipped: the
    server's threads open and close sockets and files meanwhile)."""
    paths = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            paths.add(os.readlink(fd))
        except FileNotFoundError:
            continue
    return {path for path in paths if path.endswith(".db")}


def test_the_weekly_run_and_the_web_front_open_the_same_database_as_the_units_start_them(tmp_path):
    from bot.replay import LocalServer
    from bot.replay.ctgov import demo_responder
    from bot.replay.eutils import eutils_responder
    from conftest import SmtpServer, free_port
    from maintainer_kit import newest_demo_articles

    root = tmp_path / "root"
    (root / "var" / "lib" / "spsbot").mkdir(parents=True, mode=0o700)  # StateDirectory=
    with LocalServer(eutils_responder(newest_demo_articles(3))) as eutils, \
            LocalServer(demo_responder(1)) as ctgov, SmtpServer() as smtp:
        _maintainers_env_file(root, smtp.url, eutils.url + "/entrez/eutils", ctgov.url + "/api/v2")
        env, command, cwd = unit_environment("spsbot.service", root)
        weekly = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert weekly.returncode in (0, 3), weekly.stderr  # SuccessExitStatus=3
        databases = sorted(str(p) for p in root.rglob("*.db"))
        assert databases == [str(root / "var" / "lib" / "spsbot" / "spsbot.db")]

        env, command, cwd = unit_environment("spsbot-web.service", root)
        port = free_port()
        command[command.index("--port") + 1] = str(port)
        web = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            import requests
            for _ in range(300):
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    assert web.poll() is None, web.communicate()[1]
                    time.sleep(0.1)
            assert _open_databases(web.pid) == {str(root / "var" / "lib" / "spsbot" / "spsbot.db")}
        finally:
            web.terminate()
            web.wait(timeout=30)
    assert sorted(str(p) for p in root.rglob("*.db")) == databases  # the web front made no second one
