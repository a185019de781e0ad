"""RTL == golden for compressed MLPs on both engines (cocotb + Verilator)."""

import numpy as np
import pytest

from quantize.commands import compress_to_image
from quantize.compress import CompressSpec
from quantize.digits import SPARSITY, load_digits_split, train_digits_mlp
from quantize.image import load_image
from quantize.run import run_image
from quantize.train import init_mlp, train


def _presets(engine):
    if engine == "eie":
        from hw.eie import PRESETS
        return PRESETS["test4"]
    from hw.systolic.config import PRESETS
    return PRESETS["4x4"]


@pytest.mark.rtl
@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_small_mlp_rtl_equals_golden(tmp_path, engine):
    xtr, ytr, xte, _ = load_digits_split()
    model = train(init_mlp([64, 24, 10], seed=1), xtr, ytr, epochs=10)
    spec = CompressSpec(bits=4, sparsity=0.7, reserve_zero=engine == "eie")
    compress_to_image(model, engine, spec, tmp_path, calibration=xtr,
                      config=_presets(engine))
    image = load_image(tmp_path, engine=engine)
    x = xte[:12]
    golden = run_image(image, x, "golden")
    rtl = run_image(image, x, "rtl")
    np.testing.assert_array_equal(rtl.raw, golden.raw)
    np.testing.assert_array_equal(rtl.outputs, golden.outputs)
    assert rtl.cycles > 0


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_digits_mlp_rtl_equals_golden_on_every_test_image(tmp_path, engine):
    xtr, ytr, xte, yte = load_digits_split()
    model = train_digits_mlp(xtr, ytr)
    spec = CompressSpec(bits=4, sparsity=SPARSITY, reserve_zero=engine == "eie")
    compress_to_image(model, engine, spec, tmp_path, x_train=xtr, y_train=ytr,
                      pes=8, rows=8, cols=8)
    image = load_image(tmp_path, engine=engine)
    golden = run_image(image, xte, "golden")
    rtl = run_image(image, xte, "rtl")
    np.testing.assert_array_equal(rtl.raw, golden.raw)
    assert np.mean(rtl.outputs.argmax(axis=1) == yte) >= model.accuracy(xte, yte) - 0.02
