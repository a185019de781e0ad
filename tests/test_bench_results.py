"""The results renderer: records in, docs/results.md and the README's table out."""

import json

import pytest

from sim.bench import results
from sim.bench.boards import CASES, RECORD


def _systolic_figures(array, cycles):
    run = {"array": array, "m": 4, "k": 8, "n": 8, "cycles": cycles, "utilization": 0.5,
           "model_cycles": cycles - 2, "mismatches": 0, "sim_cycles_per_second": 1000.0,
           "counters": {"weight_stall": 3, "output_stall": 0}, "useful_macs": 256}
    return {"builds": {array: {"build_seconds": 12.0, "cached": False}}, "runs": [run]}


@pytest.fixture
def records_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RECORDS", tmp_path / "records")
    return tmp_path


def test_missing_suites_say_not_measured():
    text = results.render({})
    # One section per suite, each saying it has no record.
    assert text.count(results.NOT_MEASURED) == len(results._SECTIONS)
    assert results.headline({}).count("not measured in this record") == 5


def test_record_keeps_other_arrays_rows(records_dir):
    out = records_dir / "bench"
    out.mkdir()
    (out / "systolic.json").write_text(json.dumps(_systolic_figures("8x8", 100)))
    results.record("systolic", out, seconds=5)
    (out / "systolic.json").write_text(json.dumps(_systolic_figures("4x4", 70)))
    path = results.record("systolic", out, seconds=6)
    rec = json.loads(path.read_text())
    assert [(r["array"], r["cycles"]) for r in rec["runs"]] == [("8x8", 100), ("4x4", 70)]
    assert set(rec["builds"]) == {"8x8", "4x4"}
    assert rec["measured"]["bench_seconds"] == 6
    # A rerun of one array replaces its rows only.
    (out / "systolic.json").write_text(json.dumps(_systolic_figures("8x8", 90)))
    rec = json.loads(results.record("systolic", out).read_text())
    assert [(r["array"], r["cycles"]) for r in rec["runs"]] == [("4x4", 70), ("8x8", 90)]
    text = results.render({"systolic": rec})
    assert "| 8×8 | 4×8×8 | 90 | 50.0 % | 3 | 0 | 88 | 0 |" in text
    assert "Arrays not measured in this record: 16×16, 32×32." in text
    assert "| 8×8 | 12 | 1 000 |" in text


def test_boards_keeps_its_own_record(records_dir):
    assert results.record("boards", records_dir) is None
    assert not (records_dir / "records").exists()


def test_check_names_the_refresh_command(monkeypatch, tmp_path):
    monkeypatch.setattr(results, "RESULTS_MD", tmp_path / "results.md")
    monkeypatch.setattr(results, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text("no table here\n")
    problems = results.check({})
    assert len(problems) == 2
    assert "python -m sim.bench.results'" in problems[0]
    assert "--headline" in problems[1]
    (tmp_path / "results.md").write_text(results.render({}))
    start, end = results.HEADLINE_MARKERS
    (tmp_path / "README.md").write_text(f"{start}\n{results.headline({})}\n{end}\n")
    assert results.check({}) == []


def test_results_are_rendered_from_the_committed_records():
    """docs/results.md and the README's headline table are what the records render to.

    Neither is typed by hand: ``make bench`` regenerates docs/results.md, and a stale
    README table is refreshed from ``python -m sim.bench.results --headline``.
    """
    record = json.loads(RECORD.read_text())
    assert [c["name"] for c in record] == [n for n in CASES if n in {c["name"] for c in record}]
    assert results.check() == [], "\n".join(results.check())
    records = results.load()
    assert results.RESULTS_MD.read_text() == results.render(records)
    start, end = results.HEADLINE_MARKERS
    readme = (results.REPO / "README.md").read_text()
    table = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == results.headline(records)
    # The synthesis record's Fmax reaches both files through the renderer.
    fmax = f"{next(iter(record[0]['fmax_mhz'].values())):.1f}"
    assert fmax in table and fmax in results.RESULTS_MD.read_text()
