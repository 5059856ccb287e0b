"""The schedules/ files all run `spsbot run`, read secrets from the environment, and treat
exit 3 (nothing new) as success."""

import re
from pathlib import Path

SCHEDULES = Path(__file__).parent.parent / "schedules"


def test_crontab_line_is_weekly_and_sources_the_env_file():
    lines = [line for line in (SCHEDULES / "crontab").read_text().splitlines()
             if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1
    minute, hour, dom, month, dow, command = lines[0].split(None, 5)
    assert (dom, month) == ("*", "*") and dow.isdigit() and minute.isdigit() and hour.isdigit()
    assert ". /etc/spsbot/env" in command and "spsbot run" in command and "[ $? -eq 3 ]" in command


def test_systemd_units():
    service = (SCHEDULES / "spsbot.service").read_text()
    timer = (SCHEDULES / "spsbot.timer").read_text()
    assert re.search(r"^ExecStart=\S*spsbot run$", service, re.M)
    assert "EnvironmentFile=/etc/spsbot/env" in service and "SuccessExitStatus=3" in service
    assert "PASSWORD=" not in service
    assert re.search(r"^OnCalendar=Mon ", timer, re.M) and "Persistent=true" in timer


def test_github_workflow_is_scheduled_and_uses_repository_secrets():
    text = (SCHEDULES / "github-actions-weekly.yml").read_text()
    import yaml
    workflow = yaml.safe_load(text)
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"].split()[4] == "1"
    env = workflow["jobs"]["run"]["env"]
    assert env["SPSBOT_SMTP_PASSWORD"] == "${{ secrets.SPSBOT_SMTP_PASSWORD }}"
    steps = "\n".join(str(s.get("run", "")) for s in workflow["jobs"]["run"]["steps"])
    assert "spsbot run" in steps and '"$code" -eq 3' in steps


def test_web_front_unit_serves_on_loopback_with_the_shared_env():
    service = (SCHEDULES / "spsbot-web.service").read_text()
    assert re.search(r"^ExecStart=\S*spsbot serve --host 127\.0\.0\.1 --port \d+$", service, re.M)
    assert "EnvironmentFile=/etc/spsbot/env" in service and "Restart=on-failure" in service
    assert "PASSWORD=" not in service and "SECRET=" not in service
