"""``nnaccel board run`` with an EIE image, through the simulated board."""

import numpy as np
import pytest

from boards.engines import engine_config

from .test_board_sim import _run

#: Two PEs with memories for the 64-24-10 digits MLP at 70 % sparsity.
EIE_2PE = {"pes": 2, "spmat_depth": 256, "ptr_depth": 256, "act_depth": 32, "bias_depth": 32}


@pytest.mark.rtl
def test_board_run_eie_image(tmp_path):
    """A compressed MLP's EIE image, loaded once, three inputs run on chip layer after
    layer: the raw outputs equal the golden run of the same image."""
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.digits import load_digits_split
    from quantize.image import load_image
    from quantize.run import run_image
    from quantize.train import init_mlp, train
    config = engine_config("eie", EIE_2PE)
    xtr, ytr, xte, _ = load_digits_split()
    model = train(init_mlp([64, 24, 10], seed=1), xtr, ytr, epochs=5)
    compress_to_image(model, "eie", CompressSpec(bits=4, sparsity=0.7, reserve_zero=True),
                      tmp_path / "img", calibration=xtr, config=config)
    x = xte[:3]
    np.save(tmp_path / "x.npy", x)
    result = _run("eie", config, {}, testcase="test_image",
                  image=str(tmp_path / "img"), x=str(tmp_path / "x.npy"))
    golden = run_image(load_image(tmp_path / "img"), x, "golden")
    assert np.array_equal(np.asarray(result["raw"]), golden.raw)
    assert len(result["layer_cycles"]) == 2
    assert result["cycles"] == sum(result["layer_cycles"]) > 0
