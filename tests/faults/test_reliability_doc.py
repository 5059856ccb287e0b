"""docs/reliability.md stays honest: every row of its fault table names a test that exists, and
its totals are computed from the table and the suite, never typed by hand.

The totals live between ``<!-- totals:start -->`` and ``<!-- totals:end -->``. After adding rows
(or tests under tests/faults), regenerate them with::

    .venv/bin/python tests/faults/test_reliability_doc.py

Adding a fault is adding one table row: ``| area | fault tried | guarantee | test |`` (the test as
`` `faults/test_x.py::test_name[param]` ``, `` `…[param]` `` for another case of the test before
it, `` `::other_test` `` for another test in its file, or ``(same test)``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "reliability.md"
START, END = "<!-- totals:start -->", "<!-- totals:end -->"
_REF = re.compile(r"`([^`]+)`")


def _table(text: str, header: str) -> list[list[str]]:
    """The rows (cells) of the markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def fault_rows(text: str) -> list[list[str]]:
    return _table(text, "| area | fault tried |")


def bad_input_rows(text: str) -> list[list[str]]:
    return _table(text, "| bad input |")


def references(rows: list[list[str]]) -> list[list[tuple[str, str, str]]]:
    """Per row, the (file, test function, parameter id) it cites, resolving ``…[x]`` and
    ``(same test)`` against the row above."""
    resolved, previous = [], None
    for row in rows:
        refs = []
        for ref in _REF.findall(row[3]):
            match = re.fullmatch(r"(?:(faults/[\w/]+\.py|test_\w+\.py)?::(\w+)|…)?(?:\[(.+)\])?", ref)
            assert match and any(match.groups()), f"not a test reference: {ref!r} (row {row[1]!r})"
            path, name, param = match.groups()
            if path is None:
                assert previous, f"'{ref}' with no test before it (row {row[1]!r})"
                path, name = previous[0], name or previous[1]   # `::other_test`: the same file
            refs.append((path, name, param or ""))
            previous = refs[-1]
        if not refs and "(same test)" in row[3] and previous:
            refs = [previous]
        resolved.append(refs)
    return resolved


def faults_test_count() -> int:
    """How many tests pytest collects under tests/faults (a subprocess: the suite's own count)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          str(TESTS / "faults")], capture_output=True, text=True, cwd=TESTS.parent, check=True)
    return sum(1 for line in out.stdout.splitlines() if "::" in line)


def render_totals(text: str, faults_tests: int) -> str:
    rows = fault_rows(text)
    areas = Counter(row[0] for row in rows)
    refs = {(path, name) for row_refs in references(rows) for path, name, _ in row_refs}
    by_area = ", ".join(f"{n} {area}" for area, n in areas.items())
    return "\n".join([
        START,
        f"- **faults tried: {len(rows)}** ({by_area}), one row each in the table above;",
        f"- **faults survived: {len(rows)} of {len(rows)}**: each row names the test that proves it "
        f"({len(refs)} test functions), and the suite passes;",
        f"- `tests/faults` holds **{faults_tests} tests** (as pytest collects them, parameters included);",
        f"- **bad inputs** with their one line: **{len(bad_input_rows(text))}** (the table below).",
        END,
    ])


def _block(text: str) -> str:
    return text[text.index(START):text.index(END) + len(END)]


def test_every_fault_row_names_a_test_that_exists():
    rows = fault_rows(DOC.read_text(encoding="utf-8"))
    assert len(rows) > 40
    for row, refs in zip(rows, references(rows)):
        assert len(row) == 4 and row[0] and row[1] and row[2], row
        assert refs, f"row {row[1]!r} names no test"
        for path, name, param in refs:
            source = (TESTS / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} does not exist (row {row[1]!r})"
            if param and not re.fullmatch(r"\d+", param):
                assert param in source or param.replace("'", "\\'") in source, f"{path}::{name}[{param}]?"


def test_the_totals_are_the_tables_and_the_suites_own_counts(request):
    text = DOC.read_text(encoding="utf-8")
    documented = _block(text)
    on_disk = {p.name for p in (TESTS / "faults").glob("test_*.py")}
    collected = [item for item in request.session.items if "/faults/" in str(item.path)]
    filtered = any(request.config.getoption(name) for name in ("keyword", "markexpr", "deselect"))
    if not filtered and {Path(str(item.path)).name for item in collected} == on_disk:
        count = len(collected)          # this session collected all of tests/faults: its own count
    else:                               # run alone: read the documented count back (checked in full runs)
        count = int(re.search(r"holds \*\*(\d+) tests\*\*", documented).group(1))
    expected = render_totals(text, count)
    assert documented == expected, ("docs/reliability.md totals are out of date; run "
                                    "`.venv/bin/python tests/faults/test_reliability_doc.py`. Expected:\n" + expected)


if __name__ == "__main__":
    content = DOC.read_text(encoding="utf-8")
    DOC.write_text(content.replace(_block(content), render_totals(content, faults_test_count())), encoding="utf-8")
    print(render_totals(content, faults_test_count()))
