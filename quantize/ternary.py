"""Ternary and binary weights for MLPs, as 2-bit codebooks both engines run.

* **ternary** (trained ternary quantization, Zhu, Han, Mao, Dally 2017): per layer, latent
  float weights ``v``, a threshold ``delta = t * max|v|`` (or the ``sparsity`` quantile of
  ``|v|``), and ``w = +Wp`` where ``v > delta``, ``-Wn`` where ``v < -delta``, else 0, with
  ``Wp, Wn > 0`` learned. Gradients (straight-through): ``dL/dWp`` is the sum of ``dL/dw``
  over the positive set, ``dL/dWn`` minus the sum over the negative set, and the latent
  weights get ``Wp * g``, ``g`` and ``Wn * g`` in the positive, zero and negative sets.
* **binary** (BinaryConnect with a scale, as BWN/XNOR-Net): ``w = a * sign(v)``
  (``sign(0) = +1``), ``a`` per layer or per output channel, starting at ``mean|v|`` (the
  least-squares scale); ``dL/da`` is the sum of ``g * sign(v)``, the latent weights get
  ``g`` where ``|v| <= clip`` and 0 outside (the hard-tanh estimator), ``clip`` being the
  float layer's ``max|w|``; latents stay clipped there.

With ``x_train``/``y_train`` the quantized net trains (Adam, mini-batches in a seeded order,
the project's :func:`quantize.train.gradients` on the quantized weights); without them the
quantizer is post-training: ternary ``Wp``/``Wn`` are the means of the weights above and
below the threshold (the least-squares scales for that support), binary ``a = mean|w|``.

The result is a :class:`quantize.compress.Compressed`: each layer a
:class:`~quantize.share.SharedLayer` with ``bits=2`` and codebook ``[0, -Wn, +Wp, 0]``
(binary: ``[0, -a, +a, 0]``, every weight kept). On EIE that is a 4-entry codebook with the
reserved zero (``index_bits=2``, :func:`eie_config`); the systolic engine quantizes each
output channel to int8 by its largest magnitude, so a row keeps its 2 or 3 levels and the
scale goes into the requantization multiplier. A per-channel binary layer has a scale per
row that a layer codebook cannot hold: it is written with ``reserve_zero=False``, which the
EIE writer refuses, and runs on the systolic engine only.
"""

from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from hw.eie import csc
from hw.eie.config import EieConfig

from .compress import Compressed, parse_sparsity
from .eie_engine import choose_eie_fracs, eie_config_for
from .engines import image_engine
from .image import write_image
from .model import Mlp
from .share import SharedLayer
from .storage import DENSE_BITS, LayerStorage, layer_storage
from .train import Distill, gradients

__all__ = ["QuantSpec", "ternary_threshold", "ternarize", "binarize", "ste_ternary",
           "ste_binary", "quantize_mlp", "dense_code_bits", "eie_config", "write_method_image",
           "Adam", "MODES"]

MODES = ("ternary", "binary")
#: Zero-run widths an EIE entry with a 2-bit index may have in a 64-bit word: 4-bit entries
#: (16 a word) or 8-bit ones (8 a word); 6-bit entries do not tile the word.
EIE_ZRUN_BITS = (2, 6)
#: Trained scales stay at least this fraction of the float layer's ``max|w|``.
SCALE_FLOOR = 1e-3


@dataclass
class QuantSpec:
    """What to quantize and how.

    Parameters
    ----------
    mode : str
        ``ternary`` or ``binary``.
    threshold : float
        Ternary threshold ``t`` as a fraction of each layer's ``max|v|`` (TTQ: 0.05).
    sparsity : float, dict, str or None
        Ternary only: the threshold is this quantile of ``|v|`` instead (TTQ's second
        scheme), so each layer keeps ``1 - sparsity`` of its weights; per layer as
        ``{"fc1": 0.9}`` or ``"fc1=0.9,fc3=0.6"`` (:func:`quantize.compress.parse_sparsity`;
        a layer not named gets 0).
    ramp_epochs : int
        With training and ``sparsity``: the sparsity rises linearly to its target over
        this many epochs (0: the target from the start).
    per_channel : bool
        Binary only: one scale per output channel (systolic only) instead of per layer.
    epochs, lr, scale_lr, batch, seed :
        Training (with labels): Adam on latents and biases at ``lr``, on scales at
        ``scale_lr``.
    cosine : bool
        With training: every learning rate decays along a half cosine from its value in the
        first epoch to 0 after the last (the end of training settles instead of jittering).
    distill, temperature :
        With training: weight in [0, 1] of the float model's outputs softened at
        ``temperature`` in the targets (:class:`quantize.train.Distill`; 0: labels only).
    index_bits : int
        Relative-index bits of the paper's storage accounting (as
        :class:`~quantize.compress.CompressSpec`).
    """

    mode: str = "ternary"
    threshold: float = 0.05
    sparsity: float | dict | str | None = None
    ramp_epochs: int = 0
    per_channel: bool = False
    epochs: int = 30
    lr: float = 5e-4
    scale_lr: float = 1e-3
    batch: int = 64
    seed: int = 0
    index_bits: int = 5
    cosine: bool = False
    distill: float = 0.0
    temperature: float = 4.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: use ternary or binary")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"ternary threshold {self.threshold}: use a fraction in [0, 1) "
                             f"of max |w|")
        if isinstance(self.sparsity, float | int) and not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"ternary sparsity {self.sparsity}: use a value in [0, 1)")
        if not 0 <= self.ramp_epochs <= max(self.epochs, 0):
            raise ValueError(f"ramp_epochs {self.ramp_epochs}: use 0 to epochs "
                             f"({self.epochs})")
        if self.mode == "ternary" and self.per_channel:
            raise ValueError("per-channel scales are for binary weights; ternary scales are "
                             "per layer (Wp, Wn)")
        if self.mode == "binary" and self.sparsity is not None:
            raise ValueError("binary weights keep every weight; sparsity is for ternary")
        Distill(np.zeros((0, 1)), self.temperature, self.distill)    # one-line range errors


def ternary_threshold(v: np.ndarray, threshold: float = 0.05,
                      sparsity: float | None = None) -> float:
    """``delta``: ``threshold * max|v|``, or the ``sparsity`` quantile of ``|v|`` (0 for
    sparsity 0: only exact zeros are 0)."""
    a = np.abs(np.asarray(v, np.float64))
    if sparsity is not None:
        return float(np.quantile(a, sparsity, method="lower")) if sparsity > 0 else 0.0
    return float(threshold * a.max())


def ternarize(v: np.ndarray, delta: float, wp: float | None = None, wn: float | None = None):
    """``(index, wp, wn)``: index 2 where ``v > delta``, 1 where ``v < -delta``, else 0;
    scales given or, if ``None``, the means of ``v`` (``-v``) over those sets (0 for an
    empty set)."""
    v = np.asarray(v, np.float32)
    pos, neg = v > delta, v < -delta
    index = (2 * pos + neg).astype(np.uint8)
    if wp is None:
        wp = float(v[pos].mean()) if pos.any() else 0.0
    if wn is None:
        wn = float(-v[neg].mean()) if neg.any() else 0.0
    return index, float(wp), float(wn)


def binarize(v: np.ndarray, per_channel: bool = False, scale=None):
    """``(index, scale)``: index 2 where ``v >= 0``, else 1; ``scale`` (scalar or ``[out]``)
    given or ``mean|v|`` over the layer or each row."""
    v = np.asarray(v, np.float32)
    index = np.where(v >= 0, 2, 1).astype(np.uint8)
    if scale is None:
        scale = np.abs(v).mean(axis=1) if per_channel else float(np.abs(v).mean())
    return index, scale


def _levels(index, lo, hi) -> np.ndarray:
    """Weights from an index (0 → 0, 1 → -lo, 2 → +hi); ``lo``/``hi`` scalars or rows."""
    lo = np.asarray(lo, np.float32).reshape(-1, 1) if np.ndim(lo) else np.float32(lo)
    hi = np.asarray(hi, np.float32).reshape(-1, 1) if np.ndim(hi) else np.float32(hi)
    return np.where(index == 2, hi, np.where(index == 1, -lo, np.float32(0))).astype(np.float32)


def ste_ternary(index: np.ndarray, g: np.ndarray, wp: float, wn: float):
    """TTQ gradients from ``g = dL/dw``: ``(latent, dWp, dWn)``."""
    pos, neg = index == 2, index == 1
    latent = np.where(pos, wp * g, np.where(neg, wn * g, g))
    return latent, float(g[pos].sum()), float(-g[neg].sum())


def ste_binary(v: np.ndarray, g: np.ndarray, clip: float, per_channel: bool = False):
    """Binary gradients from ``g = dL/dw``: ``(latent, dscale)``; the latent gradient is
    ``g`` inside ``|v| <= clip`` and 0 outside."""
    sign = np.where(v >= 0, 1.0, -1.0)
    dscale = (g * sign).sum(axis=1) if per_channel else float((g * sign).sum())
    return np.where(np.abs(v) <= clip, g, 0.0), dscale


class Adam:
    """Adam on a list of arrays, updated in place (scalars travel as 1-element arrays)."""

    def __init__(self, params, lrs, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lrs, self.b1, self.b2, self.eps = list(lrs), beta1, beta2, eps
        self.m = [np.zeros_like(p, dtype=np.float64) for p in params]
        self.v = [np.zeros_like(p, dtype=np.float64) for p in params]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        for p, g, m, v, lr in zip(params, grads, self.m, self.v, self.lrs, strict=True):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * np.square(g)
            mh = m / (1 - self.b1 ** self.t)
            vh = v / (1 - self.b2 ** self.t)
            p -= (lr * mh / (np.sqrt(vh) + self.eps)).astype(p.dtype)


@dataclass
class _Layer:
    """One layer's trainable state: latent weights, scales (``lo`` = Wn or a, ``hi`` = Wp or
    a, 1-element or per-row arrays), the threshold rule or the clip."""

    latent: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    clip: float
    sparsity: float | None = None
    fraction: float = 1.0
    index: np.ndarray = field(default=None)

    def quantize(self, spec: QuantSpec) -> np.ndarray:
        if spec.mode == "ternary":
            target = None if self.sparsity is None else self.sparsity * self.fraction
            delta = ternary_threshold(self.latent, spec.threshold, target)
            self.index, _, _ = ternarize(self.latent, delta, 0.0, 0.0)
            return _levels(self.index, self.lo[0], self.hi[0])
        self.index, _ = binarize(self.latent, spec.per_channel, 0.0)
        scale = self.hi if spec.per_channel else self.hi[0]
        return _levels(self.index, scale, scale)

    def backward(self, g: np.ndarray, spec: QuantSpec) -> tuple:
        if spec.mode == "ternary":
            latent, dwp, dwn = ste_ternary(self.index, g, float(self.hi[0]), float(self.lo[0]))
            return latent, np.array([dwn]), np.array([dwp])
        latent, ds = ste_binary(self.latent, g, self.clip, spec.per_channel)
        return latent, np.zeros_like(self.lo), np.atleast_1d(ds)


def _init_layer(w: np.ndarray, spec: QuantSpec, sparsity: float | None) -> _Layer:
    v = np.array(w, np.float32)
    if spec.mode == "ternary":
        _, wp, wn = ternarize(v, ternary_threshold(v, spec.threshold, sparsity))
        return _Layer(v, np.array([wn]), np.array([wp]), float(np.abs(v).max()), sparsity)
    _, a = binarize(v, spec.per_channel)
    a = np.atleast_1d(np.asarray(a, np.float64))
    return _Layer(v, np.zeros_like(a), a, float(np.abs(v).max()))     # binary: lo unused


def _train(work: Mlp, states: list[_Layer], spec: QuantSpec, x, y, progress, teacher=None):
    rng = np.random.default_rng(spec.seed)
    params, lrs = [], []
    for layer, st in zip(work.layers, states, strict=True):
        params += [st.latent, st.hi, layer.bias] + ([st.lo] if spec.mode == "ternary" else [])
        lrs += [spec.lr, spec.scale_lr, spec.lr] + ([spec.scale_lr] if spec.mode == "ternary"
                                                    else [])
    opt = Adam(params, lrs)
    soft = ({} if teacher is None or spec.distill == 0.0 else
            {"temperature": spec.temperature, "weight": spec.distill})
    for epoch in range(spec.epochs):
        if spec.cosine:
            opt.lrs = [lr * 0.5 * (1 + np.cos(np.pi * epoch / spec.epochs)) for lr in lrs]
        for st in states:
            st.fraction = min(1.0, (epoch + 1) / spec.ramp_epochs) if spec.ramp_epochs else 1.0
        order = rng.permutation(len(x))
        for start in range(0, len(x), spec.batch):
            idx = order[start:start + spec.batch]
            for layer, st in zip(work.layers, states, strict=True):
                layer.weight = st.quantize(spec)
            _, grads = gradients(work, x[idx], y[idx],
                                 **({"teacher": teacher[idx], **soft} if soft else {}))
            flat = []
            for st, (dw, db) in zip(states, grads, strict=True):
                latent, dlo, dhi = st.backward(dw.astype(np.float64), spec)
                flat += [latent, dhi, db] + ([dlo] if spec.mode == "ternary" else [])
            opt.step(params, flat)
            for st in states:
                np.clip(st.latent, -st.clip, st.clip, out=st.latent)
                # A scale trained to 0 leaves an int8 weight scale no bias fits under.
                floor = SCALE_FLOOR * st.clip
                np.maximum(st.lo, floor if spec.mode == "ternary" else 0.0, out=st.lo)
                np.maximum(st.hi, floor, out=st.hi)
        if progress:
            progress(f"{spec.mode} training: epoch {epoch + 1}/{spec.epochs}")


def quantize_mlp(model: Mlp, spec: QuantSpec, x_train=None, y_train=None,
                 progress=None) -> Compressed:
    """Ternary or binary ``model`` (not modified) as a :class:`Compressed`; trained when
    ``x_train``/``y_train`` are given, post-training otherwise."""
    work = model.copy()
    for layer in work.layers:
        layer.mask = None
    names = [layer.name for layer in work.layers]
    targets = (parse_sparsity(spec.sparsity, names) if spec.sparsity is not None
               else dict.fromkeys(names))
    states = [_init_layer(layer.weight, spec, targets[layer.name]) for layer in work.layers]
    log = {"method": spec.mode, "trained": x_train is not None}
    if spec.mode == "ternary":
        log.update({"threshold": spec.threshold} if spec.sparsity is None
                   else {"sparsity": targets})
    else:
        log["per_channel"] = spec.per_channel
    if x_train is not None:
        log["epochs"] = spec.epochs
    if x_train is not None:
        if y_train is None:
            raise ValueError("training needs labels (y_train)")
        x = np.asarray(x_train, np.float32)
        y = np.asarray(y_train, np.int64).reshape(-1)
        log["float_train_accuracy"] = model.accuracy(x, y)
        if spec.distill:
            log["distill"] = {"weight": spec.distill, "temperature": spec.temperature}
        with threadpool_limits(1):
            _train(work, states, spec, x, y, progress,
                   model.forward(x) if spec.distill else None)
    for st in states:
        st.fraction = 1.0
    shared, pruned = [], work.copy()
    for layer, p, st in zip(work.layers, pruned.layers, states, strict=True):
        layer.weight = st.quantize(spec)
        mask = st.index != 0
        p.weight = np.where(mask, st.latent, np.float32(0)).astype(np.float32)
        if spec.mode == "binary" and spec.per_channel:
            codebook = np.array([0, -1, 1, 0], np.float32)      # signs; scales per row
            shared.append(SharedLayer(codebook, st.index.copy(), mask, 2, False))
        else:
            hi = st.hi[0]
            lo = st.lo[0] if spec.mode == "ternary" else hi
            shared.append(SharedLayer(np.array([0, -lo, hi, 0], np.float32), st.index.copy(),
                                      mask, 2, True))
        layer.mask = mask if spec.mode == "ternary" else None
        if spec.mode == "ternary":
            log[f"{layer.name}_scales"] = {"wp": float(st.hi[0]), "wn": float(st.lo[0]),
                                           "density": float(mask.mean())}
    storage = [_storage(layer.name, s, spec) for layer, s in zip(work.layers, shared,
                                                                  strict=True)]
    if x_train is not None:
        log["final_train_accuracy"] = work.accuracy(x, y)
    return Compressed(model.copy(), pruned, work, shared, storage, log)


def _storage(name: str, s: SharedLayer, spec: QuantSpec) -> LayerStorage:
    """The paper's accounting at the true bits: ternary 2-bit codes (3 levels), binary
    1-bit codes (index 1, 2 stored as 0, 1), per-channel binary with a 32-bit scale per
    row; a layer is counted as a dense row (no relative index) when that is smaller, as it
    always is for a binary layer."""
    if spec.mode == "binary":
        row = layer_storage(name, s.mask, (s.index == 2).astype(np.uint8), 1,
                            spec.index_bits, dense=True)
        if spec.per_channel:
            # One 32-bit scale per output channel in place of the 2-entry codebook.
            extra = (s.mask.shape[0] - 2) * DENSE_BITS
            row = replace(row, pq_bits=row.pq_bits + extra,
                          huffman_bits=row.huffman_bits + extra)
        return row
    return layer_storage(name, s.mask, s.index, 2, spec.index_bits, dense=True)


def dense_code_bits(compressed: Compressed) -> int:
    """Bits of every weight as a plain code with no relative index: 2 bits a ternary weight
    (3 levels), 1 bit a binary one, plus 32 bits per non-zero level (per row for a
    per-channel binary layer), without Huffman coding. The paper's accounting
    (:func:`quantize.storage.layer_storage` with ``dense=True``) Huffman-codes the same
    stream and counts one pair of scales per layer."""
    binary = compressed.log.get("method") == "binary"
    total = 0
    for layer, s in zip(compressed.final.layers, compressed.shared, strict=True):
        levels = 2 if s.reserve_zero else layer.shape[0]
        total += layer.weight.size * (1 if binary else 2) + levels * DENSE_BITS
    return total


def eie_config(compressed: Compressed, pes: int, inputs=None, **fields) -> EieConfig:
    """An EIE config with ``index_bits=2`` for ``compressed`` (2-bit codebooks): fixed-point
    formats from ``inputs``, the zero-run width of :data:`EIE_ZRUN_BITS` that packs its
    entries into the fewest words, memories that fit."""
    for s in compressed.shared:
        if s.bits != 2 or not s.reserve_zero:
            raise ValueError("the 2-bit EIE config is for ternary or per-layer binary layers "
                             "(2-bit codebooks with entry 0 reserved for 0)")
    act_frac, weight_frac = choose_eie_fracs(compressed, inputs)
    best = None
    for zrun in EIE_ZRUN_BITS:
        probe = EieConfig(pes=pes, index_bits=2, zrun_bits=zrun, acc_width=64)
        words = np.zeros(pes, np.int64)
        for s in compressed.shared:
            words += -(-csc.encode(s.index, probe).entry_counts // probe.entries_per_word)
        if best is None or int(words.max()) < best[0]:
            best = (int(words.max()), zrun)
    return eie_config_for(compressed, pes, act_frac, weight_frac, index_bits=2,
                          zrun_bits=best[1], **fields)


def write_method_image(compressed: Compressed, engine: str, out_dir, calibration, *,
                       pes: int = 8, rows: int = 8, cols: int = 8, config=None,
                       source: str | None = None) -> dict:
    """Write ``compressed`` as an ``engine`` image (returns the manifest): EIE sized by
    :func:`eie_config` when its layers are 2-bit codebooks, else by the engine's own
    config; systolic by its own. ``calibration`` inputs set the number formats."""
    entry = image_engine(engine)
    if config is None:
        if engine == "eie" and all(s.bits == 2 for s in compressed.shared):
            config = eie_config(compressed, pes, calibration)
        else:
            bits = compressed.shared[0].bits
            config = entry.config_for(compressed, calibration, _Bits(bits),
                                      {"pes": pes, "rows": rows, "cols": cols},
                                      lambda msg: None)
    return write_image(compressed, engine, config, out_dir, calibration=calibration,
                       source=source, force=True)


@dataclass
class _Bits:
    """The one field of a compress spec an engine's ``config_for`` reads."""

    bits: int
