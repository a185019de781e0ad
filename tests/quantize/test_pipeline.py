"""The digits MLP through compression, images and the golden models of both engines."""

import json

import numpy as np
import pytest

from quantize.commands import compress_to_image
from quantize.compress import CompressSpec, compress, parse_sparsity
from quantize.digits import SPARSITY, load_digits_split, train_digits_mlp
from quantize.image import FORMAT_VERSION, load_image
from quantize.run import eie_layers, run_image


@pytest.fixture(scope="module")
def digits():
    xtr, ytr, xte, yte = load_digits_split()
    model = train_digits_mlp(xtr, ytr, epochs=30)
    return model, xtr, ytr, xte, yte


def test_parse_sparsity():
    names = ["fc1", "fc2", "fc3"]
    assert parse_sparsity("0.5,fc3=0.1", names) == {"fc1": 0.5, "fc2": 0.5, "fc3": 0.1}
    assert parse_sparsity("fc1=0.9", names) == {"fc1": 0.9, "fc2": 0.0, "fc3": 0.0}
    with pytest.raises(ValueError, match="unknown layers fc7"):
        parse_sparsity("fc7=0.5", names)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        parse_sparsity("1.5", names)


def test_retraining_path(digits):
    model, xtr, ytr, xte, yte = digits
    spec = CompressSpec(bits=4, sparsity=SPARSITY, retrain_epochs=10, finetune_epochs=5)
    c = compress(model, spec, xtr, ytr)
    for orig, layer, s in zip(model.layers, c.final.layers, c.shared, strict=True):
        assert np.all(layer.weight[~s.mask] == 0)
        assert len(np.unique(layer.weight[s.mask])) <= 15
        assert np.array_equal(layer.weight, s.weight())
        assert layer.weight is not orig.weight
    density = sum(int(s.mask.sum()) for s in c.shared) / sum(s.mask.size for s in c.shared)
    assert density == pytest.approx(0.0746, abs=0.001)
    assert c.final.accuracy(xte, yte) >= model.accuracy(xte, yte) - 0.03


def test_post_training_beats_magnitude(digits):
    model, xtr, ytr, xte, yte = digits
    spec = CompressSpec(bits=4, sparsity=0.85)
    guided = compress(model, spec, calibration=xtr[:500]).final.accuracy(xte, yte)
    blind = compress(model, spec).final.accuracy(xte, yte)
    assert guided > blind


@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_image_golden_end_to_end(digits, tmp_path, engine):
    model, xtr, ytr, xte, yte = digits
    spec = CompressSpec(bits=4, sparsity=SPARSITY, reserve_zero=engine == "eie",
                        retrain_epochs=10, finetune_epochs=5)
    c, manifest = compress_to_image(model, engine, spec, tmp_path, pes=4, rows=4, cols=4,
                                    x_train=xtr, y_train=ytr)
    image = load_image(tmp_path, engine=engine)
    assert image.manifest["format_version"] == FORMAT_VERSION
    if engine == "eie":
        from hw.eie import csc
        for s, layer in zip(c.shared, eie_layers(image), strict=True):
            np.testing.assert_array_equal(csc.decode(layer["csc"]), s.index)
    result = run_image(image, xte, "golden")
    assert result.outputs.shape == (len(xte), 10)
    float_pred = c.final.forward(xte).argmax(axis=1)
    agree = np.mean(result.outputs.argmax(axis=1) == float_pred)
    assert agree >= 0.97  # quantized engine arithmetic vs the float compressed model
    err = np.abs(result.outputs - c.final.forward(xte))
    assert np.median(err) < 0.05 * np.abs(c.final.forward(xte)).max()
    table = manifest["compression"]
    assert table["compression_ratio"] > 30 and table["image_bytes"] > 0
    # Every memory file is accounted and check-summed.
    listed = sum(f["bytes"] for spec in manifest["layers"] for f in spec["files"].values()
                 if f["memory"])
    assert listed == table["image_bytes"]


def test_image_refusals(digits, tmp_path):
    import dataclasses
    model, xtr, *_ = digits
    spec = CompressSpec(bits=4, sparsity=0.8)
    compress_to_image(model, "eie", spec, tmp_path, pes=4, calibration=xtr[:200])
    image = load_image(tmp_path)
    other = dataclasses.replace(image.config, pes=8)
    with pytest.raises(ValueError, match="pes=4.*but the engine is.*pes=8"):
        load_image(tmp_path, config=other)
    with pytest.raises(ValueError, match="made for the eie engine, not for systolic"):
        load_image(tmp_path, engine="systolic")
    first = image.manifest["layers"][0]["files"]["spmat"]["path"]
    raw = bytearray((tmp_path / first).read_bytes())
    raw[0] ^= 1
    (tmp_path / first).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_image(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format version 99"):
        load_image(tmp_path)


@pytest.mark.parametrize("kwargs", [{"quality": 1.0}, {"sparsity": 0.8, "global_prune": True}])
def test_quality_and_global_pruning(digits, kwargs):
    model, *_ = digits
    c = compress(model, CompressSpec(bits=3, reserve_zero=False, **kwargs))
    kept = [s.mask.mean() for s in c.shared]
    if "quality" in kwargs:
        for layer, s in zip(model.layers, c.shared, strict=True):
            t = layer.weight.std()
            assert np.all(np.abs(layer.weight[s.mask]) >= t * (1 - 1e-6))
    else:
        assert sum(s.mask.sum() for s in c.shared) == round(0.2 * sum(s.mask.size
                                                                      for s in c.shared))
    assert all(0 < k < 1 for k in kept)
    for layer in c.final.layers:
        assert len(np.unique(layer.weight)) <= 2 ** 3 + 1
