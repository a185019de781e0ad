"""Ternary (TTQ) and binary weights: quantizers, gradients and images against their
definitions; RTL == golden on both engines."""

import numpy as np
import pytest

from quantize.digits import load_digits_split
from quantize.huffman import huffman_bits
from quantize.image import load_image, write_image
from quantize.run import run_image
from quantize.storage import relative_indices
from quantize.ternary import (
    QuantSpec,
    binarize,
    dense_code_bits,
    eie_config,
    quantize_mlp,
    ste_binary,
    ste_ternary,
    ternarize,
    ternary_threshold,
    write_method_image,
)
from quantize.train import gradients, init_mlp, train


@pytest.fixture(scope="module")
def digits():
    xtr, ytr, xte, yte = load_digits_split()
    model = train(init_mlp([64, 24, 10], seed=1), xtr, ytr, epochs=10)
    return model, xtr, ytr, xte, yte


def test_threshold_rule():
    v = np.array([[0.5, -0.02, 0.03], [-1.0, 0.04, 0.06]], np.float32)
    assert ternary_threshold(v, 0.05) == pytest.approx(0.05)        # t * max|v|
    index, wp, wn = ternarize(v, 0.05)
    # Above delta: +; below -delta: -; |v| <= delta: 0 (0.05 itself would be 0).
    assert index.tolist() == [[2, 0, 0], [1, 0, 2]]
    assert wp == pytest.approx((0.5 + 0.06) / 2) and wn == pytest.approx(1.0)
    # The sparsity rule keeps the largest 1 - sparsity of |v|.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((50, 40)).astype(np.float32)
    index, _, _ = ternarize(w, ternary_threshold(w, sparsity=0.75))
    assert np.count_nonzero(index) == 500
    assert np.abs(w[index != 0]).min() > np.abs(w[index == 0]).max()


def test_scales_are_least_squares():
    """For a fixed support, Wp and Wn minimise the squared error; binary a = mean|w| too."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 20)).astype(np.float32)
    index, wp, wn = ternarize(w, ternary_threshold(w, 0.3))

    def err(p, n):
        q = np.where(index == 2, p, np.where(index == 1, -n, 0))
        return float(np.sum((w - q) ** 2))
    for dp, dn in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert err(wp + dp, wn + dn) > err(wp, wn)
    index, a = binarize(w)
    signs = np.where(index == 2, 1.0, -1.0)
    assert set(np.unique(index)) == {1, 2} and np.array_equal(signs, np.where(w >= 0, 1, -1))
    for d in (1e-3, -1e-3):
        assert np.sum((w - (a + d) * signs) ** 2) > np.sum((w - a * signs) ** 2)
    _, rows = binarize(w, per_channel=True)
    assert np.allclose(rows, np.abs(w).mean(axis=1))


def _loss(model, x, y):
    loss, _ = gradients(model, x, y)
    return loss


def test_ste_scale_gradients_match_finite_differences(digits):
    """dL/dWp and dL/dWn (and binary dL/da) equal the loss's derivative along the scale."""
    model, xtr, ytr, _, _ = digits
    x, y = xtr[:200], ytr[:200]
    w = model.layers[0].weight
    index, wp, wn = ternarize(w, ternary_threshold(w, 0.05))
    work = model.copy()

    def with_scales(p, n):
        work.layers[0].weight = np.where(index == 2, p, np.where(index == 1, -n, 0)).astype(
            np.float32)
        return work

    _, grads = gradients(with_scales(wp, wn), x, y)
    _, dwp, dwn = ste_ternary(index, grads[0][0], wp, wn)
    eps = 1e-3
    fd_p = (_loss(with_scales(wp + eps, wn), x, y) - _loss(with_scales(wp - eps, wn), x, y))
    fd_n = (_loss(with_scales(wp, wn + eps), x, y) - _loss(with_scales(wp, wn - eps), x, y))
    assert dwp == pytest.approx(fd_p / (2 * eps), rel=0.02, abs=1e-5)
    assert dwn == pytest.approx(fd_n / (2 * eps), rel=0.02, abs=1e-5)
    signs = np.where(w >= 0, 1.0, -1.0)

    def with_a(a):
        work.layers[0].weight = (a * signs).astype(np.float32)
        return work
    a = float(np.abs(w).mean())
    _, grads = gradients(with_a(a), x, y)
    _, da = ste_binary(w, grads[0][0], clip=1.0)
    fd = (_loss(with_a(a + eps), x, y) - _loss(with_a(a - eps), x, y)) / (2 * eps)
    assert da == pytest.approx(fd, rel=0.02, abs=1e-5)


def test_ste_latent_gradients():
    rng = np.random.default_rng(2)
    g = rng.standard_normal((6, 5))
    index = rng.integers(0, 3, (6, 5))
    latent, _, _ = ste_ternary(index, g, wp=0.7, wn=0.3)
    for (i, j), k in np.ndenumerate(index):
        assert latent[i, j] == pytest.approx(g[i, j] * {0: 1.0, 1: 0.3, 2: 0.7}[k])
    v = rng.uniform(-2, 2, (6, 5))
    latent, ds = ste_binary(v, g, clip=1.0, per_channel=True)
    assert np.array_equal(latent, np.where(np.abs(v) <= 1.0, g, 0.0))
    assert np.allclose(ds, [sum(g[i, j] * (1 if v[i, j] >= 0 else -1) for j in range(5))
                            for i in range(6)])


def test_spec_checks():
    with pytest.raises(ValueError, match="ternary or binary"):
        QuantSpec("quaternary")
    with pytest.raises(ValueError, match="per-channel"):
        QuantSpec("ternary", per_channel=True)
    with pytest.raises(ValueError, match="sparsity"):
        QuantSpec("binary", sparsity=0.5)


@pytest.mark.parametrize("mode", ["ternary", "binary"])
def test_quantized_model_and_storage(digits, mode):
    model, xtr, ytr, xte, yte = digits
    spec = QuantSpec(mode, epochs=4)
    post = quantize_mlp(model, QuantSpec(mode, epochs=0))
    trained = quantize_mlp(model, spec, xtr, ytr)
    assert trained.final.accuracy(xte, yte) > post.final.accuracy(xte, yte)
    for layer, s, row in zip(trained.final.layers, trained.shared, trained.storage,
                             strict=True):
        levels = set(np.unique(layer.weight).tolist())
        cb = s.codebook
        assert cb[0] == 0 and cb[1] < 0 < cb[2]
        assert np.array_equal(s.weight(), layer.weight)
        if mode == "ternary":
            assert levels <= {0.0, float(cb[1]), float(cb[2])}
            assert row.bits == 2 and np.array_equal(s.mask, layer.weight != 0)
        else:
            assert levels == {float(cb[1]), float(cb[2])} and cb[1] == -cb[2]
            assert s.mask.all() and row.bits == 1
            # Every weight kept: the dense row kind, 1 bit a weight (two symbols, each a
            # 1-bit Huffman code) plus the 2-entry codebook and its code-length table.
            n = layer.weight.size
            assert row.index_bits == 0 and row.fillers == 0
            assert row.pq_bits == n + 2 * 32
            assert row.huffman_bits == n + 2 * 32 + 2 * 8
        # Both row kinds from their definitions; the row is the one with fewer Huffman bits.
        k = 2 ** row.bits
        codes = s.index if mode == "ternary" else (s.index == 2).astype(np.int64)
        runs, symbols = relative_indices(s.mask, spec.index_bits, codes)
        sparse_pq = runs.size * (row.bits + spec.index_bits) + k * 32
        sparse_huff = (huffman_bits(symbols, k) + huffman_bits(runs, 2 ** spec.index_bits)
                       + k * 32 + (k + 2 ** spec.index_bits) * 8)
        dense_pq = codes.size * row.bits + k * 32
        dense_huff = huffman_bits(np.where(s.mask, codes, 0), k) + k * 32 + k * 8
        if dense_huff < sparse_huff:
            assert (row.index_bits, row.pq_bits, row.huffman_bits) == (0, dense_pq, dense_huff)
        else:
            assert (row.index_bits, row.pq_bits, row.huffman_bits) == (
                spec.index_bits, sparse_pq, sparse_huff)
    per_weight = 1 if mode == "binary" else 2
    assert dense_code_bits(trained) == sum(layer.weight.size * per_weight + 64
                                           for layer in model.layers)


def test_per_channel_binary_is_systolic_only(digits, tmp_path):
    model, xtr, ytr, xte, _ = digits
    c = quantize_mlp(model, QuantSpec("binary", per_channel=True, epochs=1), xtr, ytr)
    for layer in c.final.layers:
        a = np.abs(layer.weight)
        assert np.allclose(a, a[:, :1]) and not np.allclose(a, a.flat[0])  # one scale a row
    with pytest.raises(ValueError, match="2-bit"):
        eie_config(c, 4, xtr)
    with pytest.raises(ValueError, match="reserved"):
        from hw.eie import PRESETS
        write_image(c, "eie", PRESETS["test4"], tmp_path / "eie", calibration=xtr)
    write_method_image(c, "systolic", tmp_path / "sys", xtr, rows=4, cols=4)
    image = load_image(tmp_path / "sys")
    for arrays in image.layers:
        for column in arrays["weight"].T:           # one output channel
            assert set(np.abs(np.unique(column)).tolist()) == {127}


def test_systolic_ternary_rows_keep_three_levels(digits, tmp_path):
    model, xtr, ytr, _, _ = digits
    c = quantize_mlp(model, QuantSpec("ternary", epochs=1), xtr, ytr)
    write_method_image(c, "systolic", tmp_path, xtr, rows=4, cols=4)
    image = load_image(tmp_path)
    for layer, arrays in zip(c.final.layers, image.layers, strict=True):
        wp, wn = float(layer.weight.max()), float(-layer.weight.min())
        for column in arrays["weight"].T:
            values = set(np.unique(column).tolist())
            assert len(values - {0}) <= 2 and max(abs(v) for v in values) == 127
        # The int8 levels keep the ratio Wp / Wn (to half an int8 step).
        big, small = max(wp, wn), min(wp, wn)
        q = np.unique(np.abs(arrays["weight"][arrays["weight"] != 0]))
        assert q.min() == round(127 * small / big)


@pytest.mark.rtl
@pytest.mark.parametrize("engine", ["eie", "systolic"])
@pytest.mark.parametrize("mode", ["ternary", "binary"])
def test_rtl_equals_golden(digits, tmp_path, engine, mode):
    """Every output word of a trained ternary / binary MLP, RTL against golden."""
    model, xtr, ytr, xte, _ = digits
    per_channel = mode == "binary" and engine == "systolic"
    c = quantize_mlp(model, QuantSpec(mode, per_channel=per_channel, epochs=2), xtr, ytr)
    manifest = write_method_image(c, engine, tmp_path, xtr, pes=4, rows=4, cols=4)
    if engine == "eie":
        assert manifest["config"]["index_bits"] == 2
    image = load_image(tmp_path, engine=engine)
    x = xte[:10]
    golden = run_image(image, x, "golden")
    rtl = run_image(image, x, "rtl")
    np.testing.assert_array_equal(rtl.raw, golden.raw)
    assert rtl.cycles > 0
    # The engine computes the quantized net: its classes agree with the float ternary net.
    agree = np.mean(golden.outputs.argmax(1) == c.final.forward(x).argmax(1))
    assert agree >= 0.9


def test_two_bit_eie_image_golden_matches_float(digits, tmp_path):
    model, xtr, ytr, xte, _ = digits
    c = quantize_mlp(model, QuantSpec("ternary", epochs=2), xtr, ytr)
    write_method_image(c, "eie", tmp_path, xtr, pes=4)
    image = load_image(tmp_path, engine="eie")
    assert image.config.index_bits == 2 and image.config.zrun_bits in (2, 6)
    out = run_image(image, xte, "golden").outputs
    ref = c.final.forward(xte)
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.98


def test_per_layer_sparsity_with_ramp(digits):
    model, xtr, ytr, _, _ = digits
    spec = QuantSpec("ternary", sparsity="fc1=0.9", epochs=4, ramp_epochs=2)
    c = quantize_mlp(model, spec, xtr, ytr)
    fc1, fc2 = c.shared
    # The quantile rule at the end, whatever the ramp did: 10 % of fc1 kept; fc2 (not named,
    # sparsity 0) keeps every non-zero weight; indices stay within the 2-bit codebook.
    assert fc1.mask.sum() == pytest.approx(0.1 * fc1.mask.size, abs=1)
    assert fc2.mask.all() and set(np.unique(fc2.index).tolist()) <= {1, 2}
    for s in c.shared:
        assert s.index.max() <= 2 and s.codebook[1] < 0 < s.codebook[2]
    with pytest.raises(ValueError, match="ramp_epochs"):
        QuantSpec("ternary", epochs=3, ramp_epochs=4)
