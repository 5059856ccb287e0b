"""Subscribers: address validation, themes, caps, CSV import (all-or-nothing), CLI."""

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.subscribers import (SubscriberError, add_subscriber, import_csv, list_subscribers,
                                    remove_subscriber, validate_email)

THEMES = load_config().theme_names


@pytest.mark.parametrize("address", ["ann@example.org", "first.last+sps@mail.example.co.uk", "a_b-c@x-y.example"])
def test_valid_addresses_accepted(address):
    assert validate_email(address) == address


def test_domain_is_lower_cased():
    assert validate_email("Ann@Example.ORG") == "Ann@example.org"


@pytest.mark.parametrize("address", [
    "ann@example.org\r\nBcc: victim@example.org",  # header injection
    "ann@example.org\nX: y", "ann", "ann@", "@example.org", "ann@localhost", "ann smith@example.org",
    " ann@example.org", "Ann <ann@example.org>", "ann@@example.org", "ann@exa mple.org", "ännä@example.org",
    "ann@example..org", "ann.@example.org", "", "ann@-example.org", "a\x00@example.org",
])
def test_bad_addresses_refused(address):
    with pytest.raises(SubscriberError):
        validate_email(address)


def test_add_defaults_and_update(db):
    row, created = add_subscriber(db, "ann@example.org", valid_themes=THEMES, name="Ann\r\nBcc: x")
    assert created and row["max_items"] == 20 and row["frequency"] == "weekly" and row["themes"] is None
    assert row["status"] == "active" and "\n" not in row["name"] and "\r" not in row["name"]
    row, created = add_subscriber(db, "ann@example.org", valid_themes=THEMES, themes="diagnosis|symptomatic",
                                  max_items=200, frequency="monthly")
    assert not created
    assert list_subscribers(db)[0]["themes"] == ["symptomatic", "diagnosis"]  # config order
    assert db["subscribers"].count == 1


def test_unknown_theme_names_the_valid_ones(db):
    with pytest.raises(SubscriberError) as e:
        add_subscriber(db, "ann@example.org", valid_themes=THEMES, themes="immunomodulation;telepathy")
    assert "telepathy" in str(e.value) and "immunomodulation, symptomatic" in str(e.value)
    assert db["subscribers"].count == 0


@pytest.mark.parametrize("max_items", [0, 201, "many"])
def test_max_items_bounds(db, max_items):
    with pytest.raises(SubscriberError):
        add_subscriber(db, "ann@example.org", valid_themes=THEMES, max_items=max_items)


def test_remove_marks_unsubscribed_and_purge_deletes(db):
    add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    assert remove_subscriber(db, "ANN@example.org")["email"] == "ann@example.org"
    assert list_subscribers(db)[0]["status"] == "unsubscribed"
    remove_subscriber(db, "ann@example.org", purge=True)
    assert db["subscribers"].count == 0
    with pytest.raises(SubscriberError):
        remove_subscriber(db, "nobody@example.org")


CSV_BAD = """email,name,themes,frequency,max_items
ann@example.org,Ann,immunomodulation;diagnosis,weekly,10
bad address@example.org,Bob,,weekly,
cat@example.org,Cat,telepathy,weekly,
dan@example.org,Dan,symptomatic|registries,daily,300
eve@example.org,Eve,,,
"""


def test_csv_import_is_all_or_nothing_with_line_numbers(db):
    report = import_csv(db, CSV_BAD, valid_themes=THEMES)
    assert db["subscribers"].count == 0
    assert [e.split(":")[0] for e in report.errors] == ["line 3", "line 4", "line 5"]
    assert "telepathy" in report.errors[1] and "between 1 and 200" in report.errors[2]


def test_csv_import_skip_bad_imports_the_good_rows(db):
    report = import_csv(db, CSV_BAD, valid_themes=THEMES, skip_bad=True)
    assert (report.added, len(report.errors)) == (2, 3)
    rows = {r["email"]: r for r in list_subscribers(db)}
    assert set(rows) == {"ann@example.org", "eve@example.org"}
    assert rows["ann@example.org"]["themes"] == ["immunomodulation", "diagnosis"]
    assert rows["ann@example.org"]["max_items"] == 10 and rows["eve@example.org"]["max_items"] == 20


def test_cli_add_list_import_remove(env_isolated, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["subscribers", "add", "ann@example.org", "--name", "Ann", "--themes", "diagnosis"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(cli, ["subscribers", "add", "ann@exa\nmple.org"])
    assert bad.exit_code == 1 and "invalid e-mail address" in bad.output
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(CSV_BAD, encoding="utf-8")
    result = runner.invoke(cli, ["subscribers", "import", str(csv_file)])
    assert result.exit_code == 1 and "line 3" in result.output and "nothing imported" in result.output
    result = runner.invoke(cli, ["subscribers", "import", "--skip-bad", str(csv_file)])
    assert result.exit_code == 0 and "1 added, 1 updated, 3 skipped" in result.output
    listing = runner.invoke(cli, ["subscribers", "list"]).output
    assert "ann@example.org" in listing and "eve@example.org" in listing
    assert runner.invoke(cli, ["subscribers", "remove", "eve@example.org"]).exit_code == 0
    assert "eve@example.org" not in runner.invoke(cli, ["subscribers", "list", "--status", "active"]).output


# --- re-importing the same list every week (schedules/github-actions-weekly.yml does) ----------

WEEKLY_CSV = "email,name\nann@example.org,Ann\nbob@example.org,\n"


def test_reimport_never_reactivates_an_unsubscribed_address_or_resets_its_fields(db):
    add_subscriber(db, "ann@example.org", valid_themes=THEMES, name="Ann", themes="diagnosis", max_items=7,
                   frequency="monthly", send_empty=True)
    add_subscriber(db, "bob@example.org", valid_themes=THEMES, name="Bob", themes="symptomatic")
    remove_subscriber(db, "ann@example.org")  # she clicked "unsubscribe"
    report = import_csv(db, WEEKLY_CSV, valid_themes=THEMES)
    assert (report.added, report.updated, report.left_inactive) == (0, 1, ["ann@example.org"])
    rows = {r["email"]: r for r in list_subscribers(db)}
    ann, bob = rows["ann@example.org"], rows["bob@example.org"]
    assert ann["status"] == "unsubscribed"
    # columns the CSV lacks (themes, frequency, max_items, send_empty) and blank cells (Bob's name) stay
    assert (ann["themes"], ann["frequency"], ann["max_items"], ann["send_empty"]) == (["diagnosis"], "monthly", 7, 1)
    assert (bob["name"], bob["themes"], bob["status"]) == ("Bob", ["symptomatic"], "active")


def test_reimport_with_resubscribe_reactivates(db):
    add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    remove_subscriber(db, "ann@example.org")
    db.execute("update subscribers set bounces = 2")
    db.conn.commit()
    report = import_csv(db, WEEKLY_CSV, valid_themes=THEMES, resubscribe=True)
    assert (report.added, report.updated, report.left_inactive) == (1, 1, [])
    ann = list_subscribers(db)[0]
    assert (ann["email"], ann["status"], ann["bounces"]) == ("ann@example.org", "active", 0)


def test_csv_cells_given_do_update_and_all_resets_themes(db):
    add_subscriber(db, "ann@example.org", valid_themes=THEMES, themes="diagnosis", max_items=7)
    import_csv(db, "email,themes,max_items\nann@example.org,all,30\n", valid_themes=THEMES)
    ann = list_subscribers(db)[0]
    assert (ann["themes"], ann["max_items"]) == (None, 30)


def test_add_keeps_the_fields_it_is_not_given(db):
    add_subscriber(db, "ann@example.org", valid_themes=THEMES, name="Ann", themes="diagnosis", max_items=7)
    add_subscriber(db, "ann@example.org", valid_themes=THEMES, frequency="daily")
    ann = list_subscribers(db)[0]
    assert (ann["name"], ann["themes"], ann["max_items"], ann["frequency"]) == ("Ann", ["diagnosis"], 7, "daily")


def test_cli_import_reports_who_stayed_unsubscribed(env_isolated, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["subscribers", "add", "ann@example.org"]).exit_code == 0
    assert runner.invoke(cli, ["subscribers", "remove", "ann@example.org"]).exit_code == 0
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(WEEKLY_CSV, encoding="utf-8")
    result = runner.invoke(cli, ["subscribers", "import", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "1 added, 0 updated, 0 skipped, 1 left unsubscribed" in result.output
    assert "not re-activated" in result.output and "ann@example.org" in result.output
    assert "ann@example.org" not in runner.invoke(cli, ["subscribers", "list", "--status", "active"]).output
    again = runner.invoke(cli, ["subscribers", "import", "--resubscribe", str(csv_file)])
    assert again.exit_code == 0 and "ann@example.org" in runner.invoke(
        cli, ["subscribers", "list", "--status", "active"]).output
