"""CNN trainer: conv/pool/linear gradients equal central finite differences; the trained
digits CNN beats the MLP on the test split; masked retraining keeps pruned weights at 0."""

import numpy as np
import pytest

from quantize.digits import load_digits_split
from quantize.graph import Graph, Node
from quantize.prune import prune_sparsity
from quantize.train_cnn import accuracy, gradients, init_cnn, retrain, train, train_digits_cnn

#: The 64-300-100-10 MLP's float test accuracy on the same split (352 of 360).
MLP_ACCURACY = 0.9778


def tiny(seed=0) -> Graph:
    """Strided conv with uneven padding, overlapping padded max-pool, a second conv: every
    index path of the backward passes, on few enough weights to difference them all."""
    rng = np.random.default_rng(seed)

    def r(*shape):  # small enough that no logit saturates the softmax
        return 0.5 * rng.standard_normal(shape)

    return Graph("x", (2, 5, 6), [
        Node("a", "Conv2d", "x", "a", {"stride": (2, 1), "pads": (1, 0, 2, 1)},
             {"weight": r(3, 2, 3, 2), "bias": r(3)}),
        Node("ra", "Relu", "a", "ra"),
        Node("p", "MaxPool2d", "ra", "p", {"kernel": (2, 2), "stride": (1, 1),
                                           "pads": (1, 1, 0, 0)}),
        Node("b", "Conv2d", "p", "b", {}, {"weight": r(2, 3, 2, 2), "bias": r(2)}),
        Node("q", "MaxPool2d", "b", "q", {"kernel": (2, 3), "stride": (1, 2)}),
        Node("f", "Flatten", "q", "f"),
        Node("fc", "Linear", "f", "fc", {}, {"weight": r(4, 4), "bias": r(4)}),
    ])


def cross_entropy(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def test_gradients_match_finite_differences():
    g = tiny()
    assert [n.shape for n in g.nodes] == [(3, 3, 6), (3, 3, 6), (3, 3, 6), (2, 2, 5),
                                          (2, 1, 2), (4,), (4,)]
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 2, 5, 6)), rng.integers(0, 4, 5)
    params = {n.name: [n.weight.astype(np.float64), n.bias.astype(np.float64)]
              for n in g.nodes if n.weight is not None}
    loss, grads = gradients(g, x, y, params)
    assert abs(loss - cross_entropy(g.forward(x).astype(np.float64), y)) < 1e-5
    eps = 1e-6
    for name, pair in params.items():
        for k, p in enumerate(pair):
            num = np.zeros_like(p)
            for i in np.ndindex(p.shape):
                keep = p[i]
                p[i] = keep + eps
                up = gradients(g, x, y, params)[0]
                p[i] = keep - eps
                down = gradients(g, x, y, params)[0]
                p[i] = keep
                num[i] = (up - down) / (2 * eps)
            assert np.any(num != 0), (name, k)
            np.testing.assert_allclose(grads[name][k], num, rtol=1e-5, atol=1e-8,
                                       err_msg=f"{name} {'weight' if k == 0 else 'bias'}")


@pytest.fixture(scope="module")
def digits():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    return x_tr, y_tr, x_te, y_te


@pytest.fixture(scope="module")
def trained(digits):
    return train_digits_cnn(digits[0], digits[1])


def test_trained_cnn_beats_the_mlp(digits, trained):
    _, _, x_te, y_te = digits
    assert [n.op for n in trained.nodes] == ["Conv2d", "Relu", "MaxPool2d", "Conv2d", "Relu",
                                             "MaxPool2d", "Flatten", "Linear"]
    assert [n.weight.shape for n in trained.nodes if n.weight is not None] == \
        [(16, 1, 3, 3), (32, 16, 3, 3), (10, 128)]
    assert all(n.weight.dtype == np.float32 for n in trained.nodes if n.weight is not None)
    assert accuracy(trained, x_te, y_te) > MLP_ACCURACY


def test_training_is_deterministic(digits):
    x, y = digits[0][:300].reshape(-1, 1, 8, 8), digits[1][:300]
    g0 = init_cnn(channels=(4, 8))
    a, b = train(g0, x, y, epochs=2), train(g0, x, y, epochs=2)
    c = train(g0, x, y, epochs=2, seed=1)
    for na, nb, nc, n0 in zip(a.nodes, b.nodes, c.nodes, g0.nodes, strict=True):
        if na.weight is not None:
            np.testing.assert_array_equal(na.weight, nb.weight)
            np.testing.assert_array_equal(na.bias, nb.bias)
            assert not np.array_equal(na.weight, nc.weight)
            assert not np.array_equal(na.weight, n0.weight)


def test_retrain_keeps_pruned_weights_at_zero(digits, trained):
    x_tr, y_tr, x_te, y_te = digits
    masks = {name: prune_sparsity(trained.node(name).weight, s)
             for name, s in (("conv2", 0.8), ("fc", 0.6))}
    pruned = retrain(trained, masks, x_tr.reshape(-1, 1, 8, 8), y_tr, epochs=0)
    acc_pruned = accuracy(pruned, x_te, y_te)
    seen = []
    out = retrain(trained, masks, x_tr.reshape(-1, 1, 8, 8), y_tr, epochs=4,
                  progress=lambda e, n: seen.append((e, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for name, m in masks.items():
        w = out.node(name).weight
        assert np.all(w[~m] == 0) and np.count_nonzero(w[m]) == np.count_nonzero(m)
        assert not np.array_equal(w[m], trained.node(name).weight[m])
    assert not np.array_equal(out.node("conv1").weight, trained.node("conv1").weight)
    assert np.count_nonzero(out.node("conv1").weight) == 16 * 9
    assert accuracy(out, x_te, y_te) >= max(acc_pruned, 0.95)


def test_bad_masks_and_untrainable_graphs_refused(trained):
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"mask for 'conv9': no Conv2d/Linear node"):
        retrain(trained, {"conv9": np.ones((1,))}, x, [0, 1])
    with pytest.raises(ValueError, match=r"mask for 'fc' has shape \(128, 10\); the weight "
                                         r"has \(10, 128\)"):
        retrain(trained, {"fc": np.ones((128, 10))}, x, [0, 1])
    with pytest.raises(ValueError, match=r"inputs have shape \(2, 64\)"):
        train(trained, x.reshape(2, 64), [0, 1])
    w = {"weight": np.ones((2, 1, 1, 1)), "bias": np.zeros(2)}
    fc = {"weight": np.ones((3, 32)), "bias": np.zeros(3)}
    sigmoid = Graph("x", (1, 4, 4), [
        Node("dw", "Conv2d", "x", "dw", {"groups": 1}, w),
        Node("s", "Sigmoid", "dw", "s"), Node("f", "Flatten", "s", "f"),
        Node("fc", "Linear", "f", "fc", {}, fc)])
    with pytest.raises(ValueError, match=r"node 's' \(Sigmoid\): not trainable"):
        train(sigmoid, np.zeros((1, 1, 4, 4)), [0])
    skip = Graph("x", (1, 4, 4), [
        Node("c", "Conv2d", "x", "c", {}, w), Node("f", "Flatten", "c", "f"),
        Node("fc", "Linear", "f", "fc", {}, fc), Node("r", "Relu", "fc", "r")])
    with pytest.raises(ValueError, match=r"node 'r' \(Relu\): the last node must be a "
                                         r"Linear"):
        train(skip, np.zeros((1, 1, 4, 4)), [0])
