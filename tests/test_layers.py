"""The package's layers, as the README's layout section describes them, checked on the source.

Every ``import`` in ``bot/`` — module-level or inside a function (function-level imports are how
the old scorer ↔ store circle hid) — may reach only its own layer or one below, and SQL is written
only in ``bot/store/``. A new module must be given a layer here, so the map stays the README's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"

# Bottom → top. A module's layer is that of the longest prefix listed.
LAYERS: list[list[str]] = [
    ["bot", "bot.errors", "bot.redact", "bot.faults", "bot.config", "bot.clock", "bot.dates", "bot.links", "bot.lock",
     "bot.profiles"],
    ["bot.store", "bot.sources"],
    ["bot.ranking", "bot.fetch", "bot.replay"],
    ["bot.search", "bot.digest"],
    ["bot.pipeline", "bot.demo", "bot.status", "bot.export", "bot.datasette", "bot.starter", "bot.web"],
    ["bot.cli"],
]
# Same layer, but neither may import the other: the store keeps no HTTP, the sources no SQL.
APART = [("bot.store", "bot.sources")]
LEVEL = {prefix: n for n, names in enumerate(LAYERS) for prefix in names}

SQL = re.compile(r"\.execute\(|\.executemany\(|\.executescript\(|\.query\(|\bdb\[|\.table\(|"
                 r"\.conn\b|\.table_names\(|\bsqlite3\.connect\b|\bsqlite_utils\.Database\(")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def prefix_of(name: str) -> str:
    # "bot" itself is only the package's __init__ (__version__), not a catch-all for the rest.
    best = max((p for p in LEVEL if name == p or (p != "bot" and name.startswith(p + "."))),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"{name} is in no layer: give it one in tests/test_layers.py and the README")
    return best


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every bot import in the file, wherever it is written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "bot"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "bot":
            if node.module == "bot":    # from bot import store  → bot.store
                found += [(node.lineno, f"bot.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


MODULE_FILES = sorted(p for p in BOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    for path in MODULE_FILES:
        prefix_of(module_name(path))


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: str(p.relative_to(BOT.parent)))
def test_imports_reach_only_down(path):
    here = prefix_of(module_name(path))
    wrong = []
    for line, target in imports_of(path):
        if target == "bot.__version__":
            continue
        there = prefix_of(target)
        if LEVEL[there] > LEVEL[here] or {(here, there), (there, here)} & set(APART):
            wrong.append(f"{path.name}:{line} ({here}, layer {LEVEL[here]}) imports {target} "
                         f"({there}, layer {LEVEL[there]})")
    assert not wrong, "\n".join(wrong)


def test_sql_is_written_only_in_the_store():
    outside = []
    for path in MODULE_FILES:
        if module_name(path).startswith("bot.store"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if SQL.search(code):
                outside.append(f"{path.relative_to(BOT.parent)}:{number}: {line.strip()}")
    assert not outside, "SQL outside bot/store/:\n" + "\n".join(outside)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The two checks above would see a violation (so a green run means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(db):\n    from bot.cli import base\n    return db.execute('select 1')\n")
    assert (2, "bot.cli") in imports_of(bad)
    assert SQL.search("    return db.execute('select 1')")
    assert LEVEL[prefix_of("bot.cli.base")] > LEVEL[prefix_of("bot.store.schema")]
