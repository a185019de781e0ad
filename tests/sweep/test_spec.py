"""Sweep specs: the points they stand for, and one line naming the key of a bad one."""

import re
import tomllib
from pathlib import Path

import pytest

from nnaccel.cli import main
from sim.sweep.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "measures": ["model", "synth"],
    "boards": ["ulx3s", "icebreaker"],
    "seeds": [1, 2],
    "systolic": {"rows": [4, 8], "cols": "rows", "workloads": ["gemm:64x64x64",
                                                                "conv:AlexNet/conv2"]},
    "eie": {"pes": [2, 4], "queue_depth": [2, 8], "workloads": ["eie:all"]},
}


def test_points_multiply_out():
    sweep = parse_spec(GOOD)
    by = {}
    for p in sweep.points:
        by.setdefault((p.engine, p.measure), []).append(p)
    # systolic: 2 square arrays x 2 workloads; synth: 2 arrays x 2 boards x 2 seeds
    assert len(by[("systolic", "model")]) == 4
    assert len(by[("systolic", "synth")]) == 8
    assert {dict(p.axes)["cols"] for p in by[("systolic", "model")]} == {4, 8}
    assert all(dict(p.axes)["rows"] == dict(p.axes)["cols"] for p in sweep.points
               if p.engine == "systolic")
    # eie: 4 configs x the nine benchmark layers; 4 configs x 2 boards x 2 seeds
    assert len(by[("eie", "model")]) == 36
    assert len(by[("eie", "synth")]) == 16
    assert len({p.ident() for p in sweep.points}) == len(sweep.points)


def test_repo_specs_load():
    model = load_spec(REPO / "docs/sweeps/model.toml")
    assert sum(p.measure == "model" for p in model.points) >= 60
    for path in sorted((REPO / "docs/sweeps").glob("synth-*.toml")):
        assert any(p.measure == "synth" for p in load_spec(path).points), path


def test_docs_example_loads():
    text = (REPO / "docs/sweep.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    sweep = parse_spec(tomllib.loads(example))
    # 3 arrays x (1 workload + 2 seeds on 1 board)
    assert len(sweep.points) == 9


def _bad(**changes):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        elif value is None:
            del raw[section]
        else:
            raw[section] = value
    return raw


@pytest.mark.parametrize("raw, named", [
    (_bad(speed=3), "speed"),
    (_bad(systolic__row=[4]), "row"),
    (_bad(systolic__rows=[0, 4]), "rows = 0"),
    (_bad(eie__queue_depth=[0]), "queue_depth = 0"),
    (_bad(systolic__rounding=["even"]), "rounding"),
    (_bad(systolic__rows=[]), "rows = []"),
    (_bad(measures=[]), "measures"),
    (_bad(measures=["fast"]), "measures"),
    (_bad(boards=["de10"]), "boards"),
    (_bad(boards=[]), "boards"),
    (_bad(seeds=[]), "seeds"),
    (_bad(systolic__workloads=[]), "workloads"),
    (_bad(systolic__workloads=["gemm:0x4x4"]), "gemm:0x4x4"),
    (_bad(systolic__workloads=["eie:Alex-6"]), "eie:Alex-6"),
    (_bad(eie__workloads=["eie:Alex-9"]), "eie:Alex-9"),
    (_bad(systolic__act_depth=16), "act_depth"),
    (_bad(systolic=None, eie=None), "engine"),
    (_bad(systolic__rows=4.5), "rows = 4.5"),
])
def test_bad_spec_names_the_key(raw, named):
    with pytest.raises(ValueError) as e:
        parse_spec(raw)
    assert named in str(e.value)
    assert "\n" not in str(e.value)


def test_cli_bad_spec_is_one_line(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('measures = ["model"]\n[eie]\npes = [4, 300]\nworkloads = ["eie:all"]\n')
    assert main(["sweep", str(spec), "--results", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "bad.toml" in err and "[eie]" in err and "pes = 300" in err
    assert not (tmp_path / "r.jsonl").exists()
