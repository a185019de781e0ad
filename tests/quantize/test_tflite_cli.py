"""nnaccel compress MODEL.tflite and nnaccel run --raw: the model's own int8 in and out."""


import numpy as np
import pytest

from quantize.image import load_image
from tests.cli import refused as _refused
from tests.cli import run_cli as _run
from tests.quantize.test_tflite_conformance import FIXTURES, _litert, _vectors


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_compress_and_run_raw_equal_litert(model, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    img = tmp_path / "img"
    status, cap = _run(f"compress {FIXTURES / model}.tflite --engine systolic -o {img}", capsys)
    assert status == 0, cap.err
    image = load_image(img)
    qg = image.qgraph
    assert image.manifest["output"] == {"format": "int8", "scale": 1 / 256, "zero_point": -128}
    x, _ = _vectors(model, qg, 3000)
    np.save(tmp_path / "x.npy", x)
    status, cap = _run(f"run {img} --input {tmp_path / 'x.npy'} --raw -o {tmp_path / 'y.npy'}",
                       capsys)
    assert status == 0, cap.err
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8 and y.shape == (len(x), 10)
    np.testing.assert_array_equal(y, _litert(model, x, "reference"))
    # the weights are the model's: nothing pruned, per-layer rounding of the kernels kept
    gemms = [la for la in qg.layers if la.kind == "gemm"]
    assert all(la.p["rounding"] == ("single" if la.op == "Linear" else "double")
               for la in gemms)


def test_sparsity_prunes_only_when_asked(tmp_path, capsys):
    img = tmp_path / "img"
    status, cap = _run(f"compress {FIXTURES / 'mlp'}.tflite --engine systolic -o {img} "
                       f"--sparsity 0.5 --litert optimized", capsys)
    assert status == 0, cap.err
    gemms = [la for la in load_image(img).qgraph.layers if la.kind == "gemm"]
    for la in gemms:
        w = np.concatenate(la.p["weights"])
        assert abs(np.mean(w == 0) - 0.5) < 0.02
        assert la.p["rounding"] == "ruy_x86"


def test_refusals(tmp_path, capsys):
    model = f"{FIXTURES / 'mlp'}.tflite"
    _refused(f"compress {model} --engine systolic -o {tmp_path / 'a'} --calibration x.npy",
             capsys, r"--calibration is not used with a \.tflite")
    _refused(f"compress {model} --engine eie -o {tmp_path / 'a'}", capsys,
             r"runs on the systolic engine")
    _refused(f"compress {model} --engine systolic", capsys, r"-o/--output is required")
    img = tmp_path / "img"
    assert _run(f"compress {model} --engine systolic -o {img}", capsys)[0] == 0
    np.save(tmp_path / "f.npy", np.zeros((2, 64)))
    _refused(f"run {img} --input {tmp_path / 'f.npy'} --raw -o {tmp_path / 'y.npy'}", capsys,
             r"raw inputs must be a non-empty array of int8 codes")
    np.save(tmp_path / "w.npy", np.zeros((2, 63), np.int8))
    _refused(f"run {img} --input {tmp_path / 'w.npy'} --raw -o {tmp_path / 'y.npy'}", capsys,
             r"raw inputs must have shape N x 64, got \[2, 63\]")
