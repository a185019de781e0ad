"""The README states what the code does: config tables, commands and make targets."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from hw.eie import EieConfig
from hw.systolic import SystolicConfig
from nnaccel.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _config_table(name: str) -> dict:
    """``{field: default text}`` of the README's table after the line naming ``name``."""
    after = README.split(f"`{name}` (", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", after.split("\n\n", 2)[1], re.M)
    return {field: default.strip() for field, default in rows}


@pytest.mark.parametrize("config", [SystolicConfig, EieConfig])
def test_config_tables_are_the_dataclass_defaults(config):
    table = _config_table(config.__name__)
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    assert list(table) == list(fields)
    for name, default in fields.items():
        shown = f'`"{default}"`' if isinstance(default, str) else str(default)
        assert table[name] == shown, name


def test_commands_exist():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    named = set(re.findall(r"^\| `nnaccel (\w+)", README, re.M))
    assert named == set(sub.choices)


def test_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    named = set(re.findall(r"`make ([\w-]+)", README))
    assert named <= targets, named - targets


def test_linked_docs_exist():
    missing = [link for link in re.findall(r"\]\((docs/[\w./-]+\.md)", README)
               if not (REPO / link).exists()]
    # docs/host-link.md, formal.md and soak.md are written beside this README.
    assert set(missing) <= {"docs/host-link.md", "docs/formal.md", "docs/soak.md"}, missing


def test_readme_is_short_and_has_no_history():
    assert len(README.splitlines()) <= 250
    assert not re.search(r"\bstep \d+|\bissue \d+", README, re.I)
