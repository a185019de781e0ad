"""NumPy training of MLPs: float training, masked retraining after pruning, and trained
quantization (centroid fine-tuning) after weight sharing.

Softmax cross-entropy, Adam, mini-batches in a seeded order. In masked retraining the
gradient of a pruned weight is zeroed so it stays exactly 0. In centroid fine-tuning each
codebook entry moves by the summed gradient of the weights in its cluster (Han et al.
2016, §3.1); a reserved zero entry never moves.
"""

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .model import Layer, Mlp

__all__ = ["init_mlp", "train", "finetune_centroids", "gradients", "Distill",
           "loss_and_logit_grad"]


@dataclass(frozen=True)
class Distill:
    """Distillation targets: ``logits`` (float[N, classes]) of the teacher for the training
    inputs, row for row; ``temperature`` T > 0; ``weight`` a in [0, 1] of the soft term."""

    logits: np.ndarray
    temperature: float = 4.0
    weight: float = 0.5

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"--temperature {self.temperature}: use a positive number")
        if not (np.isfinite(self.weight) and 0.0 <= self.weight <= 1.0):
            raise ValueError(f"--distill-weight {self.weight}: use a number in [0, 1]")


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def loss_and_logit_grad(logits, y, teacher=None, temperature: float = 1.0,
                        weight: float = 0.0):
    """Mean loss over the batch and its gradient with respect to ``logits``.

    Without ``teacher`` (its logits) the loss is cross-entropy with the labels ``y``;
    with it, ``(1 - weight) · CE + weight · T² · KL(softmax(teacher/T) ‖ softmax(logits/T))``.
    """
    logits = np.asarray(logits)
    n = logits.shape[0]
    p = _softmax(logits)
    loss = float(-np.mean(np.log(p[np.arange(n), y] + 1e-12)))
    g = p.copy()
    g[np.arange(n), y] -= 1
    if teacher is None or weight == 0.0:
        return loss, g / n
    t = temperature
    q = _softmax(np.asarray(teacher, np.float64) / t)
    pt = _softmax(logits.astype(np.float64) / t)
    kl = float(np.mean(np.sum(q * (np.log(q + 1e-300) - np.log(pt + 1e-300)), axis=1)))
    loss = (1 - weight) * loss + weight * t * t * kl
    # d/dz of T² · KL(q ‖ softmax(z/T)) is T · (softmax(z/T) − q).
    g = (1 - weight) * g + weight * t * (pt - q)
    return loss, g / n


def init_mlp(sizes: list[int], seed: int = 0, names=None) -> Mlp:
    """He-initialised MLP with ``sizes = [in, hidden..., out]``; layers fc1, fc2, …"""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        layers.append(Layer(names[i] if names else f"fc{i + 1}", w, np.zeros(n_out)))
    return Mlp(layers)


def gradients(model: Mlp, x: np.ndarray, y: np.ndarray, teacher=None,
              temperature: float = 1.0, weight: float = 0.0):
    """Mean loss and ``[(dW, db)]`` per layer for one batch; ``teacher`` (the teacher's
    logits for ``x``) adds the distillation term (:func:`loss_and_logit_grad`)."""
    acts = model.activations(x)
    loss, g = loss_and_logit_grad(acts[-1], y, teacher, temperature, weight)
    g = g.astype(np.float32)
    grads = [None] * len(model.layers)
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        grads[i] = (g.T @ acts[i], g.sum(axis=0))
        if i:
            g = (g @ layer.weight) * (acts[i] > 0)
    return loss, grads


class _Adam:
    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=False):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            mh = m / (1 - self.b1 ** self.t)
            vh = v / (1 - self.b2 ** self.t)
            p -= (self.lr * mh / (np.sqrt(vh) + self.eps)).astype(p.dtype)


def _batches(n, batch, rng):
    order = rng.permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]


def train(model: Mlp, x, y, epochs: int = 60, lr: float = 1e-3, batch: int = 64,
          seed: int = 0, weight_decay: float = 0.0, progress=None,
          distill: Distill | None = None) -> Mlp:
    """Train ``model`` in place; layers with a ``mask`` keep pruned weights at 0.
    ``distill``: mix the teacher's softened outputs into the targets."""
    with threadpool_limits(1):  # small matrices; one thread is faster and reproducible
        return _train(model, x, y, epochs, lr, batch, seed, weight_decay, progress, distill)


def _teacher(distill, idx):
    if distill is None:
        return {}
    return {"teacher": distill.logits[idx], "temperature": distill.temperature,
            "weight": distill.weight}


def _check_distill(distill, x):
    if distill is not None and np.shape(distill.logits)[0] != len(x):
        raise ValueError(f"distillation: {np.shape(distill.logits)[0]} teacher outputs for "
                         f"{len(x)} training inputs")


def _train(model, x, y, epochs, lr, batch, seed, weight_decay, progress, distill):
    _check_distill(distill, x)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    rng = np.random.default_rng(seed)
    params = [p for layer in model.layers for p in (layer.weight, layer.bias)]
    opt = _Adam(params, lr)
    for epoch in range(epochs):
        for idx in _batches(len(x), batch, rng):
            _, grads = gradients(model, x[idx], y[idx], **_teacher(distill, idx))
            flat = []
            for layer, (dw, db) in zip(model.layers, grads, strict=False):
                if weight_decay:
                    dw = dw + weight_decay * layer.weight
                if layer.mask is not None:
                    dw = dw * layer.mask
                flat += [dw.astype(np.float32), db.astype(np.float32)]
            opt.step(params, flat)
        for layer in model.layers:
            if layer.mask is not None:
                layer.weight *= layer.mask
        if progress:
            progress(epoch + 1, epochs)
    return model


def finetune_centroids(model: Mlp, shared: list, x, y, epochs: int = 20, lr: float = 1e-4,
                       batch: int = 64, seed: int = 0, progress=None,
                       distill: Distill | None = None) -> Mlp:
    """Trained quantization: update every layer's codebook by its clusters' summed
    gradients (biases train too); ``model``'s weights track the codebooks."""
    with threadpool_limits(1):
        return _finetune(model, shared, x, y, epochs, lr, batch, seed, progress, distill)


def _finetune(model, shared, x, y, epochs, lr, batch, seed, progress, distill):
    _check_distill(distill, x)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    rng = np.random.default_rng(seed)
    kept = [np.flatnonzero(s.mask) for s in shared]
    labels = [s.index.reshape(-1)[k].astype(np.int64) for s, k in zip(shared, kept, strict=True)]
    for layer, s in zip(model.layers, shared, strict=True):
        layer.weight = s.weight()
    params = [p for s, layer in zip(shared, model.layers, strict=True)
              for p in (s.codebook, layer.bias)]
    opt = _Adam(params, lr)
    for epoch in range(epochs):
        for idx in _batches(len(x), batch, rng):
            _, grads = gradients(model, x[idx], y[idx], **_teacher(distill, idx))
            flat = []
            for s, k, lab, (dw, db) in zip(shared, kept, labels, grads, strict=True):
                dc = np.bincount(lab, weights=dw.reshape(-1)[k], minlength=s.codebook.size)
                if s.reserve_zero:
                    dc[0] = 0.0
                flat += [dc.astype(np.float32), db.astype(np.float32)]
            opt.step(params, flat)
            for layer, s, k, lab in zip(model.layers, shared, kept, labels, strict=True):
                if s.reserve_zero:
                    s.codebook[0] = 0.0
                layer.weight.reshape(-1)[k] = s.codebook[lab]
        if progress:
            progress(epoch + 1, epochs)
    return model
