"""Tucker-2 of convolutions (quantize/tucker.py) against its definition: a float64 direct
convolution written here from the sum that defines it, the HOSVD error identities, and the
factored graph in int8 on the systolic engine's RTL against golden."""

import numpy as np
import pytest

from hw.systolic.config import PRESETS
from quantize.graph import Graph, Node
from quantize.graph_quant import quantize_graph
from quantize.graph_run import plan_config, run_graph
from quantize.train_cnn import init_cnn
from quantize.tucker import (
    SUFFIXES,
    ranks_for_compression,
    ranks_for_energy,
    reconstruct,
    tucker2,
    tucker_graph,
    tucker_params,
)

from .test_graph_blocks import STALL


def conv(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0)):
    """``y[n,o,p,q] = b[o] + Σ_{c,i,j} w[o,c,i,j]·x_pad[n,c,p·sh+i,q·sw+j]`` in float64."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - kh) // stride[0] + 1
    ow = (xp.shape[3] - kw) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow)) + np.asarray(b, np.float64)[:, None, None]
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride[0] * (oh - 1) + 1:stride[0],
                       j:j + stride[1] * (ow - 1) + 1:stride[1]]
            y += np.einsum("oc,ncpq->nopq", w[:, :, i, j], patch)
    return y


def weight(o=12, c=6, k=3, seed=0):
    return np.random.default_rng(seed).normal(size=(o, c, k, k))


def three_convs(t, x, bias, stride, pads):
    """The factored layer as its definition: 1×1 by U₁ᵀ, k×k by G, 1×1 by U₀ plus bias."""
    h = conv(x, t["u1"].T[:, :, None, None], np.zeros(t["u1"].shape[1]))
    h = conv(h, t["core"], np.zeros(t["core"].shape[0]), stride, pads)
    return conv(h, t["u0"][:, :, None, None], bias)


@pytest.mark.parametrize("stride,pads", [((1, 1), (1, 1, 1, 1)), ((2, 1), (0, 2, 1, 0))])
def test_full_ranks_reproduce_the_convolution(stride, pads):
    w, b = weight(), np.random.default_rng(1).normal(size=12)
    x = np.random.default_rng(2).normal(size=(3, 6, 7, 9))
    t = tucker2(w, 12, 6)
    assert t["error2"] < 1e-20 * t["energy2"]
    np.testing.assert_allclose(three_convs(t, x, b, stride, pads), conv(x, w, b, stride, pads),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("stride,pads", [((1, 1), (1, 1, 1, 1)), ((2, 2), (1, 0, 0, 1))])
def test_three_convolutions_equal_the_core_contracted_weight(stride, pads):
    """Padding between the 1×1 and the k×k commutes because the first 1×1 has no bias."""
    w, b = weight(seed=3), np.random.default_rng(4).normal(size=12)
    x = np.random.default_rng(5).normal(size=(2, 6, 8, 8))
    t = tucker2(w, 5, 3)
    w_hat = reconstruct(t["core"], t["u0"], t["u1"])
    np.testing.assert_allclose(three_convs(t, x, b, stride, pads),
                               conv(x, w_hat, b, stride, pads), rtol=0, atol=1e-10)


@pytest.mark.parametrize("r_out,r_in", [(4, 2), (8, 3), (11, 5), (12, 2), (3, 6)])
def test_hosvd_error_identities(r_out, r_in):
    """Orthogonal projections: ``||W − Ŵ||² = ||W||² − ||G||²`` (HOSVD and HOOI).
    HOSVD: ``max(d0, d1) <= ||W − Ŵ||² <= d0 + d1`` with ``dm`` mode m's discarded
    ``Σ σ²``, and equality with ``d0 + d1`` when only one mode is truncated. HOOI (from
    the HOSVD start) never has a larger error."""
    w = weight(seed=6)
    t = tucker2(w, r_out, r_in)
    d0 = float(np.sum(t["s0"][r_out:] ** 2))
    d1 = float(np.sum(t["s1"][r_in:] ** 2))
    assert t["discarded2"] == pytest.approx(d0 + d1, rel=1e-12)
    assert t["error2"] == pytest.approx(t["energy2"] - np.sum(t["core"] ** 2), rel=1e-9)
    assert max(d0, d1) * (1 - 1e-9) <= t["error2"] <= (d0 + d1) * (1 + 1e-9)
    if r_out == 12 or r_in == 6:
        assert t["error2"] == pytest.approx(d0 + d1, rel=1e-9)
    np.testing.assert_allclose(t["u0"].T @ t["u0"], np.eye(r_out), atol=1e-12)
    np.testing.assert_allclose(t["u1"].T @ t["u1"], np.eye(r_in), atol=1e-12)
    h = tucker2(w, r_out, r_in, hooi=4)
    assert h["error2"] <= t["error2"] * (1 + 1e-12)
    assert h["error2"] == pytest.approx(h["energy2"] - np.sum(h["core"] ** 2), rel=1e-9)


def test_rank_choice():
    w = weight(seed=7)
    r0, r1 = ranks_for_energy(w, 0.9)
    for mode, r in ((0, r0), (1, r1)):
        s2 = np.linalg.svd(np.moveaxis(w, mode, 0).reshape(w.shape[mode], -1),
                           compute_uv=False) ** 2
        assert s2[:r].sum() >= 0.9 * s2.sum() > s2[:r - 1].sum()
    assert ranks_for_energy(w, 1.0) == (12, 6)
    r = ranks_for_compression((32, 16, 3, 3), 3.0)
    assert tucker_params((32, 16, 3, 3), *r) <= 32 * 16 * 9 / 3
    assert tucker_params((32, 16, 3, 3), r[0] + 2, r[1] + 1) > 32 * 16 * 9 / 3
    with pytest.raises(ValueError, match="ranks"):
        tucker2(w, 13, 2)


def test_graph_rewrite_is_three_convolutions_with_inferred_shapes():
    g = init_cnn()
    tg, info = tucker_graph(g, {"conv2": (16, 8)})
    names = [n.name for n in tg.nodes]
    i = names.index("conv2.in")
    assert names[i:i + 4] == ["conv2" + s for s in SUFFIXES] + ["relu2"]
    assert [tg.node("conv2" + s).shape for s in SUFFIXES] == [(8, 4, 4), (16, 4, 4),
                                                              (32, 4, 4)]
    assert tg.node("conv2.core").attrs["pads"] == (1, 1, 1, 1)
    assert info["conv2"]["params"] == 16 * 8 + 16 * 8 * 9 + 32 * 16
    x = np.random.default_rng(8).random((5, 1, 8, 8))
    w_hat = reconstruct(tg.node("conv2.core").weight, tg.node("conv2.out").weight[:, :, 0, 0],
                        tg.node("conv2.in").weight[:, :, 0, 0].T)
    ref = Graph(g.input_name, g.input_shape,
                [Node(n.name, n.op, n.inputs, n.output, n.attrs,
                      {"weight": w_hat, "bias": n.bias}) if n.name == "conv2" else n
                 for n in g.nodes])
    # The graph stores float32 parameters: equal to float32 rounding of the weights.
    np.testing.assert_allclose(tg.forward(x), ref.forward(x), rtol=1e-5, atol=1e-5)
    full, _ = tucker_graph(g, {"conv2": (32, 16)})       # not smaller: left whole
    assert [n.name for n in full.nodes] == names[:i] + ["conv2"] + names[i + 3:]
    with pytest.raises(ValueError, match="not a groups=1 Conv2d"):
        tucker_graph(g, {"fc": (2, 2)})


@pytest.mark.rtl
def test_rtl_equals_golden_on_a_tucker_graph():
    """Both 3×3 convolutions factored (the first 1×1 conv of conv1 has one input channel);
    every output word with random idle and backpressure cycles on every stream."""
    g = init_cnn()
    tg, info = tucker_graph(g, {"conv1": (4, 1), "conv2": (12, 6)})
    assert set(info) == {"conv1", "conv2"}
    rng = np.random.default_rng(9)
    qg = quantize_graph(tg, rng.random((64, 1, 8, 8)))
    x = rng.random((3, 1, 8, 8))
    base = PRESETS["4x4"]
    cfg = plan_config(qg, len(x), base=base)
    golden = run_graph(qg, x, "golden", config=cfg)
    rtl = run_graph(qg, x, "rtl", config=cfg, stall=STALL, seed=3)
    np.testing.assert_array_equal(rtl.output, golden.output)
    engine = [r["name"] for r in rtl.layers if r["where"] == "engine"]
    assert engine == [f"conv{k}{s}" for k in (1, 2) for s in SUFFIXES] + ["fc"]
    assert all(r["cycles"] > 0 for r in rtl.layers if r["where"] == "engine")
