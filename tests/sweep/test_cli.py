"""``nnaccel sweep`` end to end: its own local cluster, the files, a rerun that skips."""

import csv

import pytest

from nnaccel.cli import main

pytest.importorskip("distributed", reason="the [cluster] extra installs dask")

SPEC = """
measures = ["model"]
boards = ["icebreaker"]
[systolic]
rows = [2, 4]
cols = "rows"
workloads = ["gemm:16x16x16", "gemm:3x40x5"]
"""


def test_sweep_command(tmp_path, capsys):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    results = tmp_path / "out" / "tiny.jsonl"
    assert main(["sweep", str(spec), "--workers", "1", "--results", str(results)]) == 0
    out = capsys.readouterr()
    assert "4 points: 0 already in" in out.out and "4 run (0 failed)" in out.out
    assert "sweep: 4/4 done, 0 failed, 0 to go" in out.err
    rows = list(csv.DictReader((tmp_path / "out" / "tiny.csv").read_text().splitlines()))
    assert len(rows) == 4
    for r in rows:
        # No synthesis: throughput at the iCEBreaker's 12 MHz target.
        assert (r["board"], r["fmax_source"], float(r["fmax_mhz"])) == ("icebreaker",
                                                                         "target", 12.0)
        assert float(r["gops"]) == pytest.approx(2 * int(r["macs"]) * 12e6
                                                 / int(r["cycles"]) / 1e9)
    assert (tmp_path / "out" / "tiny-size.png").exists()
    assert main(["sweep", str(spec), "--serial", "--results", str(results)]) == 0
    assert "4 points: 4 already in" in capsys.readouterr().out
