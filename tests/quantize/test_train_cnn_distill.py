"""CNN trainer distillation: the mixed loss's gradients equal central finite differences of
``(1 - a) · CE + a · T² · KL`` written out here; a student equal to its teacher at weight 1
has zero gradient; the targets have to match the inputs row for row."""

import numpy as np
import pytest

from quantize.train import Distill
from quantize.train_cnn import gradients, teacher, train

from .test_train_cnn import tiny


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def distill_loss(logits, y, t_logits, temperature, weight):
    ce = -np.mean(log_softmax(logits)[np.arange(len(y)), y])
    log_q = log_softmax(t_logits / temperature)
    kl = np.mean(np.sum(np.exp(log_q) * (log_q - log_softmax(logits / temperature)), axis=1))
    return (1 - weight) * ce + weight * temperature ** 2 * kl


def _params(g):
    return {n.name: [n.weight.astype(np.float64), n.bias.astype(np.float64)]
            for n in g.nodes if n.weight is not None}


def test_distillation_gradients_match_finite_differences():
    g = tiny()
    rng = np.random.default_rng(1)   # the plain gradient test's batch: no ReLU or max tie
    x, y = rng.standard_normal((5, 2, 5, 6)), rng.integers(0, 4, 5)
    t_logits = 2.0 * rng.standard_normal((5, 4))
    params = _params(g)
    soft = {"teacher": t_logits, "temperature": 3.0, "weight": 0.7}
    loss, grads = gradients(g, x, y, params, **soft)
    assert abs(loss - distill_loss(g.forward(x).astype(np.float64), y, t_logits, 3.0, 0.7)) \
        < 1e-5
    eps = 1e-6
    for name, pair in params.items():
        for k, p in enumerate(pair):
            num = np.zeros_like(p)
            for i in np.ndindex(p.shape):
                keep = p[i]
                p[i] = keep + eps
                up = gradients(g, x, y, params, **soft)[0]
                p[i] = keep - eps
                down = gradients(g, x, y, params, **soft)[0]
                p[i] = keep
                num[i] = (up - down) / (2 * eps)
            np.testing.assert_allclose(grads[name][k], num, rtol=1e-5, atol=1e-8,
                                       err_msg=f"{name} {'weight' if k == 0 else 'bias'}")


def test_a_student_equal_to_its_teacher_has_no_soft_gradient():
    g = tiny(1)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 2, 5, 6)), rng.integers(0, 4, 6)
    d = teacher(g, x, temperature=2.0, weight=1.0)
    _, grads = gradients(g, x, y, _params(g), d.logits, d.temperature, d.weight)
    for dw, db in grads.values():
        # graph.forward (the teacher) runs in float32: zero to its rounding.
        assert np.abs(dw).max() < 1e-6 and np.abs(db).max() < 1e-6
    # At weight 0 the teacher is ignored: plain cross-entropy, which is not stationary here.
    plain = gradients(g, x, y, _params(g))[1]
    zero = gradients(g, x, y, _params(g), d.logits, 2.0, 0.0)[1]
    for name in plain:
        np.testing.assert_array_equal(plain[name][0], zero[name][0])
    assert max(np.abs(dw).max() for dw, _ in plain.values()) > 1e-3


def test_distilled_training_moves_towards_the_teacher():
    g, other = tiny(0), tiny(5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 2, 5, 6)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    d = teacher(other, x, temperature=1.0, weight=1.0)

    def gap(graph):
        return float(np.mean((log_softmax(graph.forward(x)) - log_softmax(d.logits)) ** 2))

    trained = train(g, x, y, epochs=30, lr=1e-2, batch=16, seed=0, distill=d)
    assert gap(trained) < 0.2 * gap(g)
    with pytest.raises(ValueError, match="63 teacher outputs for 64 training inputs"):
        train(g, x, y, epochs=1, distill=Distill(d.logits[:63], 1.0, 1.0))
