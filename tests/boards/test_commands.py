"""``nnaccel synth`` and ``nnaccel board`` at the command line (no FPGA build here)."""

import json

from nnaccel.cli import main


def test_synth_json_last_line(tmp_path, capsys):
    assert main(["synth", "--board", "arty", "--engine", "mac", "--rows", "2", "--cols", "3",
                 "--build-dir", str(tmp_path), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    assert {"fmax_mhz", "resources", "bitstream"} <= set(report)
    assert report["config"] == {"rows": 2, "cols": 3} and report["bitstream"] is None


def test_errors_are_one_line(capsys):
    assert main(["synth", "--board", "vc707", "--engine", "mac"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown board 'vc707'" in err[0]
    assert main(["synth", "--board", "ulx3s", "--engine", "systolic", "--rows", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rows" in err[0]
    assert main(["synth", "--board", "ulx3s", "--engine", "mac", "--seed", "4-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed '4-1'" in err[0] and "range like 1-4" in err[0]
    assert main(["synth", "--board", "ulx3s", "--engine", "mac", "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--jobs 0" in err[0]


def test_board_run_bad_port(tmp_path, capsys):
    assert main(["board", "run", str(tmp_path), "--board", "ulx3s", "--port", "/dev/null0",
                 "--input", "x.npy", "-o", "y.npy"]) == 2
    assert "manifest.json" in capsys.readouterr().err
