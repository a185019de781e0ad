"""Low-rank factorization of FC layers: ``W ≈ U·V`` as two layers with no activation between.

With the SVD ``W = P·diag(s)·Qᵀ`` (``s`` descending), the rank-``r`` truncation
``W_r = P_r·diag(s_r)·Q_rᵀ`` is the best rank-``r`` approximation in the Frobenius norm
(Eckart-Young) and ``||W - W_r||²_F = Σ_{i > r} s_i²``. The layer becomes
``V = diag(√s_r)·Q_rᵀ`` (``r × in``, no bias, **no activation after it**) followed by
``U = P_r·diag(√s_r)`` (``out × r``, the original bias and activation); the square roots
split the scale evenly so both factors quantize alike. A layer is factored only if
``r·(in + out) < in·out``.

The rank comes from a target (``{"fc1": 32}``), a compression of the layer's parameters
(:func:`rank_for_compression`) or the fraction of ``Σ s²`` kept (:func:`rank_for_energy`).
The factors are ordinary layers: they can be fine-tuned, pruned
(:func:`quantize.prune.prune_sparsity`) and shared (:func:`quantize.share.share_weights`),
which :func:`compress_factored` does, ending in a :class:`~quantize.compress.Compressed`
that the image writers take. A :class:`FactoredMlp` carries a ReLU flag per layer
(``relu_flags``), which both engines' image writers read: EIE writes the linear layer back
without ReLU and the systolic engine clamps it to the full int8 range.
"""

import dataclasses

import numpy as np
from threadpoolctl import threadpool_limits

from .compress import Compressed, parse_bits, parse_sparsity
from .model import Layer, Mlp
from .prune import prune_sparsity
from .share import SharedLayer, share_weights
from .storage import DENSE_BITS, LayerStorage, layer_storage
from .ternary import Adam
from .train import Distill, loss_and_logit_grad

__all__ = ["FactoredMlp", "svd_factor", "truncation_error", "rank_for_energy",
           "rank_for_compression", "parse_ranks", "factorize", "gradients", "finetune",
           "compress_factored", "per_factor", "LowRankSpec", "compress_low_rank"]

#: Suffixes of a factored layer's two halves: ``fc1.v`` (r × in) then ``fc1.u`` (out × r).
FIRST, SECOND = ".v", ".u"


class FactoredMlp(Mlp):
    """An :class:`~quantize.model.Mlp` with a ReLU flag per layer (``relu_flags[i]``: a ReLU
    after layer ``i``; the last layer has none)."""

    def __init__(self, layers: list[Layer], relu_flags=None):
        super().__init__(layers)
        n = len(self.layers)
        flags = [i < n - 1 for i in range(n)] if relu_flags is None else list(relu_flags)
        if len(flags) != n:
            raise ValueError(f"{len(flags)} ReLU flags for {n} layers")
        if flags[-1]:
            raise ValueError("the last layer has no activation after it (its outputs are the "
                             "logits)")
        self.relu_flags = [bool(f) for f in flags]

    def copy(self) -> "FactoredMlp":
        return FactoredMlp([layer.copy() for layer in self.layers], self.relu_flags)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.activations(x)[-1]

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        h = np.asarray(x, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.sizes[0]:
            raise ValueError(f"inputs must have shape (batch, {self.sizes[0]}), got {h.shape}")
        out = [h]
        for layer, relu in zip(self.layers, self.relu_flags, strict=True):
            h = h @ layer.weight.T + layer.bias
            if relu:
                h = np.maximum(h, 0)
            out.append(h)
        return out


def svd_factor(weight: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, v, s)``: ``u`` (out × rank) and ``v`` (rank × in) with ``u @ v`` the rank-``rank``
    truncation of ``weight``, and all singular values ``s`` (descending)."""
    w = np.asarray(weight, np.float64)
    if not 1 <= rank <= min(w.shape):
        raise ValueError(f"rank {rank}: use 1 to {min(w.shape)} for a {w.shape[0]} x "
                         f"{w.shape[1]} layer")
    p, s, qt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:rank])
    return (p[:, :rank] * root).astype(np.float32), (root[:, None] * qt[:rank]).astype(
        np.float32), s


def truncation_error(s: np.ndarray, rank: int) -> float:
    """``Σ_{i > rank} s_i²``: the squared Frobenius error of the rank-``rank`` truncation."""
    return float(np.sum(np.square(np.asarray(s, np.float64)[rank:])))


def rank_for_energy(s: np.ndarray, energy: float) -> int:
    """The smallest rank whose singular values keep at least ``energy`` of ``Σ s²``."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"retained energy {energy}: use a fraction in (0, 1]")
    e = np.square(np.asarray(s, np.float64))
    kept = np.cumsum(e) / e.sum()
    return int(min(np.searchsorted(kept, energy * (1 - 1e-12)) + 1, e.size))


def rank_for_compression(shape: tuple[int, int], ratio: float) -> int:
    """The largest rank whose two factors hold at most ``in·out / ratio`` weights (>= 1)."""
    if ratio <= 1.0:
        raise ValueError(f"low-rank compression {ratio}: use a ratio above 1")
    out_f, in_f = shape
    return max(1, int(out_f * in_f / (ratio * (out_f + in_f))))


def parse_ranks(text: str | dict, names: list[str]) -> dict:
    """``fc1=64,fc2=32`` → ``{"fc1": 64, "fc2": 32}`` (layers not named stay whole)."""
    if isinstance(text, dict):
        out = dict(text)
    else:
        out = {}
        for part in filter(None, (p.strip() for p in str(text).split(","))):
            name, eq, value = part.partition("=")
            if not eq or not value.strip().isdigit():
                raise ValueError(f"--low-rank {text!r}: use layer=rank pairs, e.g. fc1=32")
            out[name.strip()] = int(value)
    unknown = sorted(set(out) - set(names))
    if unknown:
        raise ValueError(f"--low-rank names unknown layers {', '.join(unknown)} "
                         f"(layers: {', '.join(names)})")
    return out


def factorize(model: Mlp, ranks: dict | str | None = None, energy: float | None = None,
              ratio: float | None = None) -> tuple[FactoredMlp, dict]:
    """``(factored model, {layer: {"rank", "error2", "discarded2", "energy"}})``.

    Exactly one of ``ranks`` (layer → rank), ``energy`` (retained fraction of ``Σ s²``, every
    layer) or ``ratio`` (parameter compression of every layer) chooses the ranks; a layer
    whose factors would not be smaller stays whole."""
    if sum(a is not None for a in (ranks, energy, ratio)) != 1:
        raise ValueError("give one of ranks, energy or ratio")
    names = [layer.name for layer in model.layers]
    wanted = parse_ranks(ranks, names) if ranks is not None else {}
    relu = getattr(model, "relu_flags", [i < len(names) - 1 for i in range(len(names))])
    layers, flags, info = [], [], {}
    for layer, act in zip(model.layers, relu, strict=True):
        out_f, in_f = layer.shape
        s = np.linalg.svd(np.asarray(layer.weight, np.float64), compute_uv=False)
        if energy is not None:
            rank = rank_for_energy(s, energy)
        elif ratio is not None:
            rank = rank_for_compression(layer.shape, ratio)
        else:
            rank = wanted.get(layer.name)
        if rank is None or rank * (in_f + out_f) >= in_f * out_f:
            layers.append(layer.copy())
            flags.append(act)
            continue
        u, v, s = svd_factor(layer.weight, rank)
        err = float(np.sum((np.asarray(layer.weight, np.float64) - u.astype(np.float64)
                            @ v.astype(np.float64)) ** 2))
        layers += [Layer(layer.name + FIRST, v, np.zeros(rank)),
                   Layer(layer.name + SECOND, u, layer.bias.copy())]
        flags += [False, act]
        info[layer.name] = {"rank": rank, "error2": err, "discarded2": truncation_error(s, rank),
                            "energy": 1 - truncation_error(s, rank) / float(np.sum(s * s))}
    return FactoredMlp(layers, flags), info


def gradients(model: FactoredMlp, x: np.ndarray, y: np.ndarray, teacher=None,
              temperature: float = 1.0, weight: float = 0.0):
    """Mean softmax cross-entropy and ``[(dW, db)]`` per layer; a ReLU's derivative only
    where the model has one. With ``teacher`` (its logits for ``x``) the loss is
    :func:`quantize.train.loss_and_logit_grad`'s distillation loss."""
    acts = model.activations(x)
    if teacher is not None:
        loss, g = loss_and_logit_grad(acts[-1], y, teacher, temperature, weight)
        g = g.astype(np.float32)
    else:
        z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = float(-np.mean(np.log(p[np.arange(n), y] + 1e-12)))
        g = p
        g[np.arange(n), y] -= 1
        g /= n
    grads = [None] * len(model.layers)
    for i in range(len(model.layers) - 1, -1, -1):
        grads[i] = (g.T @ acts[i], g.sum(axis=0))
        if i:
            g = g @ model.layers[i].weight
            if model.relu_flags[i - 1]:
                g = g * (acts[i] > 0)
    return loss, grads


def finetune(model: FactoredMlp, x, y, epochs: int = 20, lr: float = 5e-4, batch: int = 64,
             seed: int = 0, shared: list[SharedLayer] | None = None,
             distill: Distill | None = None) -> FactoredMlp:
    """Train ``model`` in place (Adam, seeded batches). Masked layers keep pruned weights at
    0; with ``shared`` the codebooks train instead (each entry by its cluster's summed
    gradient, a reserved zero fixed) and the weights follow them. ``distill``: the float
    model's softened outputs mixed into the targets (Hinton)."""
    with threadpool_limits(1):
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.int64)
        rng = np.random.default_rng(seed)
        if shared is not None:
            for layer, s in zip(model.layers, shared, strict=True):
                layer.weight = s.weight()
            params = [p for s, layer in zip(shared, model.layers, strict=True)
                      for p in (s.codebook, layer.bias)]
        else:
            params = [p for layer in model.layers for p in (layer.weight, layer.bias)]
        opt = Adam(params, [lr] * len(params))
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start:start + batch]
                soft = {} if distill is None else {
                    "teacher": distill.logits[idx], "temperature": distill.temperature,
                    "weight": distill.weight}
                _, grads = gradients(model, x[idx], y[idx], **soft)
                flat = []
                for i, (layer, (dw, db)) in enumerate(zip(model.layers, grads, strict=True)):
                    if shared is not None:
                        s = shared[i]
                        dc = np.bincount(s.index[s.mask], weights=dw[s.mask],
                                         minlength=s.codebook.size)
                        if s.reserve_zero:
                            dc[0] = 0.0
                        flat += [dc, db]
                    else:
                        flat += [dw if layer.mask is None else dw * layer.mask, db]
                opt.step(params, flat)
                for i, layer in enumerate(model.layers):
                    if shared is not None:
                        if shared[i].reserve_zero:
                            shared[i].codebook[0] = 0.0
                        layer.weight = shared[i].weight()
                    elif layer.mask is not None:
                        layer.weight *= layer.mask
    return model


def per_factor(values, names: list[str]):
    """``values`` (``"fc1=0.6,fc3=0.5"``, a dict, or a bare number) with every name of a
    factored layer standing for both its factors: ``fc1=0.6`` → ``fc1.v=0.6,fc1.u=0.6``
    when ``names`` (the factored model's layers) hold ``fc1.v`` and ``fc1.u``. A factor
    named itself keeps its own value."""
    if values is None or isinstance(values, int | float | np.integer | np.floating):
        return values
    factored = {n.removesuffix(SECOND) for n in names if n.endswith(SECOND)}
    pairs = (list(values.items()) if isinstance(values, dict)
             else [p.strip().partition("=")[::2] if "=" in p else ("", p.strip())
                   for p in str(values).split(",") if p.strip()])
    explicit = {k.strip() for k, _ in pairs}
    out = []
    for k, v in pairs:
        k = k.strip()
        if k in factored:
            out += [(k + f, v) for f in (FIRST, SECOND) if k + f not in explicit]
        else:
            out.append((k, v))
    if isinstance(values, dict):
        return dict(out)
    return ",".join(f"{k}={v}" if k else str(v) for k, v in out)


def compress_factored(model: Mlp, *, ranks=None, energy=None, ratio=None, sparsity=None,
                      bits: int | dict | str = 4, reserve_zero: bool = True, x_train=None,
                      y_train=None,
                      epochs: int = 20, lr: float = 5e-4, finetune_epochs: int = 10,
                      finetune_lr: float = 1e-4, index_bits: int = 5, seed: int = 0,
                      progress=None) -> Compressed:
    """Factor (:func:`factorize`), fine-tune, prune the factors to ``sparsity`` (a number or
    ``{layer: sparsity}`` / ``"fc1=0.6"`` over the factored layers' names, e.g. ``fc1.v``, a
    factored layer's own name standing for both factors, :func:`per_factor`) and retrain,
    share ``bits``-bit codebooks (one width or per layer, named alike) and fine-tune them;
    without ``x_train``/``y_train`` no
    training (magnitude pruning and plain sharing). The storage rows of a factor count as
    dense its share (by weights) of the original layer's 32-bit weights, so the ratios
    compare with the unfactored model."""
    say = progress or (lambda msg: None)
    work, info = factorize(model, ranks, energy, ratio)
    names = [layer.name for layer in work.layers]
    widths = parse_bits(per_factor(bits, names), names)
    log = {"method": "low-rank", "factors": info, "trained": x_train is not None}
    if sparsity is not None:
        log["sparsity"] = parse_sparsity(per_factor(sparsity, names), names)
    log["bits"] = widths
    trained = x_train is not None
    if trained:
        if y_train is None:
            raise ValueError("training needs labels (y_train)")
        say(f"low-rank: fine-tuning the factors {epochs} epochs")
        finetune(work, x_train, y_train, epochs, lr, seed=seed)
        log["factored_train_accuracy"] = work.accuracy(x_train, y_train)
    if sparsity is not None:
        targets = log["sparsity"]
        for layer in work.layers:
            layer.mask = prune_sparsity(layer.weight, targets[layer.name])
            layer.weight = np.where(layer.mask, layer.weight, np.float32(0))
        if trained:
            say(f"low-rank: retraining the pruned factors {epochs} epochs")
            finetune(work, x_train, y_train, epochs, lr, seed=seed + 1)
    pruned = work.copy()
    shared = [share_weights(layer.weight, layer.mask, widths[layer.name],
                            reserve_zero=reserve_zero, seed=seed) for layer in work.layers]
    for layer, s in zip(work.layers, shared, strict=True):
        layer.weight = s.weight()
    if trained and finetune_epochs:
        say(f"low-rank: fine-tuning the codebooks {finetune_epochs} epochs")
        finetune(work, x_train, y_train, finetune_epochs, finetune_lr, seed=seed + 2,
                 shared=shared)
        log["final_train_accuracy"] = work.accuracy(x_train, y_train)
    storage = [layer_storage(layer.name, s.mask, s.index, s.bits, index_bits)
               for layer, s in zip(work.layers, shared, strict=True)]
    return Compressed(model.copy(), pruned, work, shared, _dense_as_original(storage, model),
                      log)


@dataclasses.dataclass(frozen=True)
class LowRankSpec:
    """What :func:`compress_low_rank` does (``nnaccel compress --low-rank`` /
    ``--low-rank-energy``).

    Parameters
    ----------
    ranks : dict or str or None
        Rank per layer (``{"fc1": 64}`` or ``"fc1=64,fc2=32"``); layers not named stay whole.
    energy : float or None
        Instead of ``ranks``: every layer at the smallest rank keeping this fraction of
        ``sum s**2``.
    sparsity, bits :
        Pruning and sharing of the factors (:func:`compress_factored`).
    epochs, finetune_epochs, seed, index_bits :
        Training with labels, and the paper accounting's relative-index bits.

    Raises
    ------
    ValueError
        Unless exactly one of ``ranks`` and ``energy`` is given, ``energy`` in (0, 1].
    """

    ranks: dict | str | None = None
    energy: float | None = None
    sparsity: float | dict | str | None = None
    bits: int | dict | str = 4
    epochs: int = 20
    finetune_epochs: int = 10
    seed: int = 0
    index_bits: int = 5

    def __post_init__(self):
        if (self.ranks is None) == (self.energy is None):
            raise ValueError("low rank: give ranks per layer (--low-rank fc1=64) or a "
                             "retained energy (--low-rank-energy 0.95), one of them")
        if self.energy is not None and not 0.0 < self.energy <= 1.0:
            raise ValueError(f"--low-rank-energy {self.energy}: use a fraction in (0, 1]")
        if self.epochs < 0:
            raise ValueError(f"low-rank epochs {self.epochs}: use 0 or more")


def compress_low_rank(model: Mlp, spec: LowRankSpec, reserve_zero: bool = True, x_train=None,
                      y_train=None, progress=None) -> Compressed:
    """:func:`compress_factored` as ``spec`` says; ``ValueError`` when no layer would be
    factored (every rank asked for stores no fewer weights than the layer)."""
    c = compress_factored(model, ranks=spec.ranks, energy=spec.energy, sparsity=spec.sparsity,
                          bits=spec.bits, reserve_zero=reserve_zero, x_train=x_train,
                          y_train=y_train, epochs=spec.epochs,
                          finetune_epochs=spec.finetune_epochs, index_bits=spec.index_bits,
                          seed=spec.seed, progress=progress)
    if not c.log["factors"]:
        shapes = ", ".join(f"{layer.name} {layer.shape[0]}x{layer.shape[1]}"
                           for layer in model.layers)
        raise ValueError(f"low rank: no layer gets smaller at these ranks (a rank r pays "
                         f"r*(in+out) weights; {shapes})")
    return c


def _dense_as_original(storage: list[LayerStorage], model: Mlp) -> list[LayerStorage]:
    """The dense size a factor replaces: its share (by weights) of the original layer's
    32-bit weights, so ratios and totals compare with the unfactored model."""
    original = {layer.name: layer.weight.size * DENSE_BITS for layer in model.layers}
    rows = {}
    for row in storage:
        base = row.name.removesuffix(FIRST).removesuffix(SECOND)
        rows.setdefault(base if base in original else row.name, []).append(row)
    out = []
    for name, group in rows.items():
        if len(group) == 1:
            out += group
            continue
        size = sum(r.weights for r in group)
        shares = [original[name] * r.weights // size for r in group]
        shares[-1] += original[name] - sum(shares)
        out += [dataclasses.replace(r, dense_bits=d) for r, d in zip(group, shares, strict=True)]
    return out
