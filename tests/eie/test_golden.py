"""The golden model against a scalar implementation of its docstring's definition."""

import numpy as np
import pytest

from hw.eie import EieConfig
from sim.golden import eie as golden


def _scalar(weights, acts, config, bias, relu):
    out = []
    lo, hi = -(1 << (config.act_width - 1)), (1 << (config.act_width - 1)) - 1
    for i, row in enumerate(weights.tolist()):
        acc = 0
        for w, a in zip(row, acts.tolist(), strict=True):
            acc += (w * a) // (1 << config.weight_frac)     # floor
        acc += 0 if bias is None else int(bias[i])
        y = min(max(acc, lo), hi)
        out.append(max(y, 0) if relu else y)
    return out


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
def test_matches_definition(relu, use_bias):
    config = EieConfig(pes=4)
    rng = np.random.default_rng(int(relu) * 2 + int(use_bias))
    w = rng.integers(-32768, 32768, (23, 17)) * (rng.random((23, 17)) < 0.5)
    a = rng.integers(-32768, 32768, 17) * (rng.random(17) < 0.7)
    bias = rng.integers(-32768, 32768, 23) if use_bias else None
    got = golden.layer(w, a, config, bias=bias, relu=relu)
    assert got.tolist() == _scalar(w, a, config, bias, relu)


def test_truncation_is_floor():
    config = EieConfig(pes=1, weight_frac=12)
    # -1 * 1 >> 12 is -1 (floor), not 0 (toward zero).
    assert golden.layer(np.array([[-1]]), np.array([1]), config, relu=False).tolist() == [-1]
    assert golden.layer(np.array([[1]]), np.array([1]), config, relu=False).tolist() == [0]


def test_codebook_lookup_and_chain():
    config = EieConfig(pes=2)
    cb = np.arange(16) * 100
    idx = np.array([[1, 2], [3, 0]])
    direct = golden.layer(cb[idx], np.array([4096, 8192]), config)
    assert golden.layer(idx, np.array([4096, 8192]), config, codebook=cb).tolist() == \
        direct.tolist()
    outs = golden.run([{"weights": idx, "codebook": cb}, {"weights": idx, "codebook": cb}],
                      np.array([4096, 8192]), config)
    assert outs[1].tolist() == golden.layer(idx, outs[0], config, codebook=cb).tolist()
