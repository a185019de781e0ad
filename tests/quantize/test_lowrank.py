"""Low-rank factorization of FC layers against its definition; a layer with no activation
after it on both engines (golden and RTL, every word)."""

import numpy as np
import pytest

from quantize.backends import dense_layers
from quantize.digits import load_digits_split
from quantize.eie_engine import eie_layers
from quantize.image import load_image
from quantize.lowrank import (
    FactoredMlp,
    compress_factored,
    factorize,
    gradients,
    parse_ranks,
    rank_for_compression,
    rank_for_energy,
    svd_factor,
    truncation_error,
)
from quantize.model import Layer
from quantize.run import quantize_input, run_image
from quantize.storage import totals
from quantize.ternary import write_method_image
from quantize.train import init_mlp, train
from sim.golden import eie as eie_golden
from sim.golden.systolic import gemm


@pytest.fixture(scope="module")
def digits():
    xtr, ytr, xte, yte = load_digits_split()
    model = train(init_mlp([64, 40, 10], seed=1), xtr, ytr, epochs=10)
    return model, xtr, ytr, xte, yte


@pytest.mark.parametrize("shape", [(30, 20), (20, 50), (64, 64)])
def test_truncation_error_is_discarded_energy(shape):
    rng = np.random.default_rng(sum(shape))
    w = rng.standard_normal(shape)
    s_ref = np.linalg.svd(w, compute_uv=False)
    for rank in (1, 3, min(shape) // 2, min(shape)):
        u, v, s = svd_factor(w, rank)
        assert u.shape == (shape[0], rank) and v.shape == (rank, shape[1])
        assert np.allclose(s, s_ref)
        err = np.sum((w - u.astype(np.float64) @ v.astype(np.float64)) ** 2)
        assert err == pytest.approx(np.sum(s_ref[rank:] ** 2), rel=1e-4, abs=1e-4)
        assert truncation_error(s, rank) == pytest.approx(np.sum(s_ref[rank:] ** 2))
        assert np.linalg.matrix_rank(u @ v, tol=1e-4) == rank
        # The split is balanced: both factors carry sqrt(s).
        assert np.allclose(np.linalg.norm(u, axis=0), np.linalg.norm(v, axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="rank"):
        svd_factor(w, min(shape) + 1)


def test_rank_selection():
    s = np.array([4.0, 2.0, 1.0, 1.0, 0.5])
    total = np.sum(s ** 2)
    for energy in (0.1, 0.75, 0.9, 0.95, 0.99, 1.0):
        r = rank_for_energy(s, energy)
        assert np.sum(s[:r] ** 2) / total >= energy - 1e-12
        assert r == 1 or np.sum(s[:r - 1] ** 2) / total < energy
    assert rank_for_energy(s, 16 / total) == 1              # exactly the first value's share
    for shape, ratio in (((300, 64), 2.0), ((100, 300), 4.0), ((10, 100), 3.0)):
        r = rank_for_compression(shape, ratio)
        budget = shape[0] * shape[1] / ratio
        assert r * sum(shape) <= budget < (r + 1) * sum(shape)
    with pytest.raises(ValueError):
        rank_for_energy(s, 0.0)
    with pytest.raises(ValueError):
        rank_for_compression((10, 10), 1.0)
    assert parse_ranks("fc1=8, fc2=4", ["fc1", "fc2"]) == {"fc1": 8, "fc2": 4}
    with pytest.raises(ValueError, match="unknown"):
        parse_ranks("fc9=3", ["fc1"])
    with pytest.raises(ValueError, match="pairs"):
        parse_ranks("fc1=x", ["fc1"])


def test_factored_model_is_linear_between_factors(digits):
    model, xtr, *_ = digits
    f, info = factorize(model, ranks={"fc1": 12})
    assert [layer.name for layer in f.layers] == ["fc1.v", "fc1.u", "fc2"]
    assert f.relu_flags == [False, True, False]
    assert info["fc1"]["rank"] == 12
    assert info["fc1"]["error2"] == pytest.approx(info["fc1"]["discarded2"], rel=1e-3)
    v, u = f.layers[0], f.layers[1]
    x = xtr[:50]
    mid = x @ v.weight.T
    assert (mid < 0).any()                              # the linear layer passes negatives
    h = np.maximum(mid @ u.weight.T + u.bias, 0)
    ref = h @ f.layers[2].weight.T + f.layers[2].bias
    np.testing.assert_allclose(f.forward(x), ref, rtol=1e-5, atol=1e-5)
    # With every rank kept the factored net is the original one.
    full, _ = factorize(model, energy=1.0)
    assert len(full.layers) == 2          # no rank saves weights on 64x40: the layers stay
    with pytest.raises(ValueError, match="last layer"):
        FactoredMlp([Layer("a", np.ones((2, 2)), np.zeros(2))], [True])
    # A rank-5 layer: keeping all but 1e-6 of the energy finds rank 5 and loses nothing.
    rng = np.random.default_rng(4)
    wide = init_mlp([64, 300, 10], seed=0)
    wide.layers[0].weight = (rng.standard_normal((300, 5)) @ rng.standard_normal((5, 64))
                             * 0.05).astype(np.float32)
    fw, infow = factorize(wide, energy=0.999999)
    assert infow["fc1"]["rank"] == 5 and "fc2" not in infow
    np.testing.assert_allclose(fw.forward(x), wide.forward(x), rtol=1e-4, atol=1e-4)


def test_gradients_through_the_linear_layer(digits):
    """Finite differences of the loss: no ReLU derivative where the model has no ReLU."""
    model, xtr, ytr, *_ = digits
    f, _ = factorize(model, ranks={"fc1": 6})
    x, y = xtr[:64], ytr[:64]
    _, grads = gradients(f, x, y)
    rng = np.random.default_rng(0)
    for layer_i in (0, 1):
        w = f.layers[layer_i].weight
        for _ in range(5):
            i, j = rng.integers(w.shape[0]), rng.integers(w.shape[1])
            eps = 1e-3
            old = float(w[i, j])
            w[i, j] = old + eps
            up, _ = gradients(f, x, y)
            w[i, j] = old - eps
            down, _ = gradients(f, x, y)
            w[i, j] = old
            assert grads[layer_i][0][i, j] == pytest.approx((up - down) / (2 * eps),
                                                            rel=0.05, abs=2e-4)


def test_pruned_shared_factors(digits):
    model, xtr, ytr, xte, yte = digits
    c = compress_factored(model, ranks={"fc1": 16}, sparsity={"fc1.v": 0.5, "fc1.u": 0.5},
                          x_train=xtr, y_train=ytr, epochs=3, finetune_epochs=2)
    assert [s.bits for s in c.shared] == [4, 4, 4]
    for layer, s, p in zip(c.final.layers, c.shared, c.pruned.layers, strict=True):
        assert np.array_equal(layer.weight, s.weight())
        assert not layer.weight[~s.mask].any()
        assert np.array_equal(s.mask, p.mask)
        assert len(np.unique(layer.weight[s.mask])) <= 15
    assert c.shared[0].mask.mean() == pytest.approx(0.5, abs=0.01)
    assert c.shared[2].mask.all()                        # fc2 not pruned
    assert c.final.accuracy(xte, yte) > 0.8
    assert c.log["factors"]["fc1"]["rank"] == 16
    # Ratios compare with the unfactored model: the factors' dense bits are fc1's.
    t = totals(c.storage)
    assert t["dense_bits"] == 32 * sum(layer.weight.size for layer in model.layers)
    assert t["weights"] == 16 * (64 + 40) + 40 * 10
    assert [r.dense_bits for r in c.storage][2] == 32 * 400


@pytest.mark.rtl
@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_low_rank_image_rtl_equals_golden(digits, tmp_path, engine):
    model, xtr, ytr, xte, _ = digits
    c = compress_factored(model, ranks={"fc1": 8}, sparsity=0.3, x_train=xtr, y_train=ytr,
                          epochs=3, finetune_epochs=1, reserve_zero=engine == "eie")
    manifest = write_method_image(c, engine, tmp_path, xtr, pes=4, rows=4, cols=4)
    assert [layer["relu"] for layer in manifest["layers"]] == [False, True, False]
    image = load_image(tmp_path, engine=engine)
    x = xte[:10]
    xq = quantize_input(image, x)
    if engine == "eie":
        layers = dense_layers(eie_layers(image))
        mid = eie_golden.run(layers, xq[0], image.config)[0]
        assert (mid < 0).any()                           # written back without ReLU
    else:
        spec, arrays = manifest["layers"][0], image.layers[0]
        assert spec["act_min"] == -128 and spec["act_max"] == 127
        mid = gemm(xq, arrays["weight"], arrays["bias"], arrays["multiplier"],
                   arrays["shift"], spec["input"]["zero_point"], spec["output"]["zero_point"],
                   spec["act_min"], spec["act_max"])
        assert (mid < spec["output"]["zero_point"]).any()   # negative values survive
        real = (mid.astype(np.float64) - spec["output"]["zero_point"]) * spec["output"]["scale"]
        ref = c.final.activations(x)[1]
        assert np.abs(real - ref).max() < 0.05 * np.abs(ref).max()
    golden = run_image(image, x, "golden")
    rtl = run_image(image, x, "rtl")
    np.testing.assert_array_equal(rtl.raw, golden.raw)
    assert np.mean(golden.outputs.argmax(1) == c.final.forward(x).argmax(1)) >= 0.9
