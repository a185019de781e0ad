"""``nnaccel spmv`` (golden engine; the RTL engine runs in the bench and slow tests)."""

import json

import pytest

from nnaccel.cli import main


def test_spmv_golden_json(capsys):
    assert main(["spmv", "--pes", "8", "--in-features", "300", "--out-features", "200",
                 "--density", "0.1", "--act-density", "0.4", "--seed", "3", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    for key in ("cycles", "ideal_cycles", "load_balance_efficiency", "padding_entries",
                "mismatches"):
        assert key in result
    assert result["mismatches"] == 0
    assert result["ideal_cycles"] >= result["work_cycles"] > 0


def test_spmv_bad_density(capsys):
    assert main(["spmv", "--pes", "4", "--density", "1.5"]) == 2
    assert "--density 1.5: use a fraction from 0 to 1" in capsys.readouterr().err


@pytest.mark.rtl
@pytest.mark.slow
def test_spmv_rtl(capsys):
    assert main(["spmv", "--pes", "4", "--in-features", "100", "--out-features", "90",
                 "--engine", "rtl", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mismatches"] == 0 and result["cycles"] >= result["work_cycles"]
    assert 0 < result["load_balance_efficiency"] <= 1
