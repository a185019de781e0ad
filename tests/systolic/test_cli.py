"""``nnaccel gemm`` and ``nnaccel verilog`` for the systolic engine."""

import json

import pytest

from nnaccel.cli import main


def test_gemm_golden_json_last_line(capsys):
    assert main(["gemm", "--rows", "4", "--cols", "4", "--m", "9", "--k", "10", "--n", "7",
                 "--engine", "golden", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert {"cycles", "useful_macs", "utilization"} <= set(report)
    # The golden model is the reference: nothing to compare it with, no mismatch figure.
    assert "mismatches" not in report and "mismatches" not in out
    assert report["useful_macs"] == 9 * 10 * 7
    assert report["cycles_source"] == "model"
    assert report["utilization"] == pytest.approx(
        9 * 10 * 7 / (4 * 4 * report["cycles"]))


def test_gemm_bad_size_is_one_line_error(capsys):
    assert main(["gemm", "--m", "0", "--k", "3", "--n", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nnaccel: error: --m 0: use a positive integer"]


def test_verilog_bad_config_is_one_line_error(capsys, tmp_path):
    assert main(["verilog", "--engine", "systolic", "--rows", "0",
                 "-o", str(tmp_path / "x.v")]) == 2
    assert "rows=0" in capsys.readouterr().err


@pytest.mark.rtl
def test_gemm_rtl_command(capsys):
    assert main(["gemm", "--rows", "4", "--cols", "4", "--m", "6", "--k", "9", "--n", "5",
                 "--engine", "rtl", "--stall", "0.2", "--json", "--act-depth", "1024",
                 "--weight-depth", "1024", "--acc-depth", "256", "--param-depth", "64"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mismatches"] == 0
    assert report["counters"]["useful_macs"] == 6 * 9 * 5
    assert report["cycles"] > report["counters"]["busy"]


def test_verilog_writes_a_module(tmp_path, capsys):
    out = tmp_path / "s.v"
    assert main(["verilog", "--engine", "systolic", "--rows", "2", "--cols", "2",
                 "--act-depth", "16", "--weight-depth", "16", "--acc-depth", "8",
                 "--param-depth", "4", "-o", str(out)]) == 0
    assert "module systolic_top(" in out.read_text()
