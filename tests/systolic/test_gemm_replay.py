"""``nnaccel gemm --operands``: a given GEMM replayed from an .npz file
(quantize/gemm_replay.py)."""

import json

import numpy as np
import pytest

from nnaccel.cli import main
from quantize.gemm_replay import load_operands
from sim.golden.systolic import accumulate, requantize


def _operands(rng, m=7, k=10, n=6, **extra):
    ops = {"a": rng.integers(-128, 128, (m, k)).astype(np.int8),
           "w": rng.integers(-128, 128, (k, n)).astype(np.int8),
           "bias": rng.integers(-5000, 5000, n).astype(np.int32),
           "multiplier": rng.integers(1 << 30, 1 << 31, n).astype(np.int32),
           "shift": rng.integers(-12, -8, n).astype(np.int32),
           "input_zero_point": np.int8(-3), "output_zero_point": np.int8(11)}
    ops.update(extra)
    return ops


def _save(tmp_path, ops, name="ops.npz"):
    path = tmp_path / name
    np.savez(path, **ops)
    return str(path)


def _want(ops, rounding="double", w=None):
    acc = accumulate(ops["a"], ops["w"] if w is None else w, ops["bias"],
                     int(ops.get("input_zero_point", 0)))
    return requantize(acc, ops["multiplier"], ops["shift"], int(ops.get("output_zero_point", 0)),
                      int(ops.get("act_min", -128)), int(ops.get("act_max", 127)), rounding)


@pytest.mark.parametrize("rounding", ["double", "single", "ruy_x86"])
def test_replay_on_golden_writes_the_definition(tmp_path, capsys, rounding):
    rng = np.random.default_rng(40)
    ops = _operands(rng, act_min=np.int8(-100), act_max=np.int8(90))
    out = tmp_path / "y.npy"
    assert main(["gemm", "--operands", _save(tmp_path, ops), "--rounding", rounding,
                 "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["m"], report["k"], report["n"], report["rounding"]) == (7, 10, 6, rounding)
    y = np.load(out)
    assert y.dtype == np.int8 and (y == _want(ops, rounding)).all()
    assert y.min() >= -100 and y.max() <= 90


def test_out_by_in_layout_and_the_files_rounding(tmp_path, capsys):
    rng = np.random.default_rng(41)
    ops = _operands(rng, m=5, k=9, n=4, rounding=np.str_("single"))
    w_kn = ops["w"]
    ops_oi = {**ops, "w": np.ascontiguousarray(w_kn.T)}
    out = tmp_path / "y.npy"
    assert main(["gemm", "--operands", _save(tmp_path, ops_oi), "--weights-layout", "oi",
                 "--output", str(out)]) == 0
    assert "rounding single" in capsys.readouterr().out
    assert (np.load(out) == _want(ops, "single", w_kn)).all()
    # the same file read as K x N is a shape error naming K
    assert main(["gemm", "--operands", _save(tmp_path, ops_oi)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'w'" in err[0] and "K=9" in err[0]
    # a --rounding that contradicts the file's
    assert main(["gemm", "--operands", _save(tmp_path, ops_oi), "--weights-layout", "oi",
                 "--rounding", "double"]) == 2
    assert "names 'single'" in capsys.readouterr().err


def test_scalar_multiplier_and_shift_apply_to_every_channel(tmp_path):
    rng = np.random.default_rng(42)
    ops = _operands(rng, multiplier=np.int32(1 << 30), shift=np.int32(-10))
    job = load_operands(_save(tmp_path, ops)).job
    assert (job.multiplier == 1 << 30).all() and (job.shift == -10).all()
    assert job.multiplier.shape == (6,)


@pytest.mark.parametrize("change, words", [
    ({"bias": None}, ["missing key 'bias'", "int32 (N,)"]),
    ({"a": None}, ["missing key 'a'", "int8 (M, K)"]),
    ({"a": np.zeros((3, 10), np.float32)}, ["'a'", "int8 (M, K)", "float32 (3, 10)"]),
    ({"a": np.full((3, 10), 200, np.int16)}, ["'a'", "values from 200 to 200"]),
    ({"w": np.zeros((10,), np.int8)}, ["'w'", "(K, N)", "int8 (10,)"]),
    ({"bias": np.zeros(5, np.int32)}, ["'bias'", "int32 (N,)", "(5,)", "N=6"]),
    ({"bias": np.full(6, 1 << 33, np.int64)}, ["'bias'", "values from 8589934592"]),
    ({"multiplier": np.full(6, -1, np.int32)}, ["'multiplier'", "[0, 2147483647]"]),
    ({"shift": np.full(6, 31, np.int32)}, ["'shift'", "[-31, 30]", "values from 31"]),
    ({"shift": np.zeros((6, 1), np.int32)}, ["'shift'", "(N,) or a scalar"]),
    ({"output_zero_point": np.int32(128)}, ["'output_zero_point'", "int8 scalar"]),
    ({"input_zero_point": np.zeros(2, np.int8)}, ["'input_zero_point'", "int8 scalar"]),
    ({"rounding": np.str_("nearest")}, ["'rounding'", "double, single, ruy_x86"]),
    ({"rounding": np.int8(1)}, ["'rounding'", "string scalar"]),
    ({"multipliers": np.zeros(6)}, ["unknown key 'multipliers'"]),
    ({"act_min": np.int8(10), "act_max": np.int8(0)}, ["act_min=10 > act_max=0"]),
])
def test_a_bad_key_is_one_line_naming_it(tmp_path, capsys, change, words):
    rng = np.random.default_rng(43)
    ops = _operands(rng)
    for key, value in change.items():
        if value is None:
            del ops[key]
        else:
            ops[key] = value
    assert main(["gemm", "--operands", _save(tmp_path, ops)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err[0]


def test_bad_files_and_flag_mixes(tmp_path, capsys):
    def error(*argv):
        assert main(["gemm", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    assert "no such file" in error("--operands", str(tmp_path / "none.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert "not an .npz archive" in error("--operands", str(junk))
    objects = tmp_path / "obj.npz"
    np.savez(objects, a=np.array([{"x": 1}], dtype=object))
    assert "Python objects" in error("--operands", str(objects))
    ops = _save(tmp_path, _operands(np.random.default_rng(44)))
    assert "drop them" in error("--operands", ops, "--m", "3")
    assert "--operands FILE.npz" in error("--m", "3", "--k", "4")
    assert "only applies to --operands" in error("--m", "3", "--k", "4", "--n", "2",
                                                 "--weights-layout", "oi")
    assert "would overwrite" in error("--operands", ops, "--output", ops)


def test_help_states_the_default_layout(capsys):
    with pytest.raises(SystemExit):
        main(["gemm", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: kn)" in text and "ruy_x86" in text


@pytest.mark.rtl
def test_replay_on_the_rtl_matches_golden(tmp_path, capsys):
    rng = np.random.default_rng(45)
    ops = _operands(rng, m=9, k=11, n=7, rounding=np.str_("ruy_x86"))
    out = tmp_path / "y.npy"
    assert main(["gemm", "--operands", _save(tmp_path, ops), "--engine", "rtl", "--rows", "4",
                 "--cols", "4", "--act-depth", "1024", "--weight-depth", "1024",
                 "--acc-depth", "256", "--param-depth", "64", "--stall", "0.2",
                 "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mismatches"] == 0 and report["rounding"] == "ruy_x86"
    assert (np.load(out) == _want(ops, "ruy_x86")).all()
