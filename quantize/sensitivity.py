"""An accuracy budget the compressor keeps: per-layer sparsity and bits from sensitivity scans.

Deep Compression chose each layer's pruning rate from its sensitivity curve (accuracy
against sparsity, one layer pruned at a time) and each layer's codebook width likewise.
:func:`search` does that on a **validation split carved out of the training data** (seeded,
stratified by label; the test data is never an argument), then keeps the most compressive
choice whose accuracy on that split stays within ``max_loss`` points of the float model:

1. pruning curves of the float model, each layer alone over :data:`SPARSITIES`
   (no retraining);
2. candidate per-layer sparsities: for a tolerated single-layer drop ``t``, each layer its
   largest sparsity whose drop is at most ``t``; the candidates ordered by the paper
   accounting of their masks, most compressive first;
3. a bisection over that order, each candidate pruned with retraining on the rest of the
   training data (or post-training on calibration inputs) and checked on the split
   (optionally, ``refine``, then single layers one grid step further while it holds);
4. on the chosen pruned model, each layer alone shared at ``2..max_bits`` bits; each layer
   takes its smallest width within the budget, then the joint model is shared, fine-tuned
   and checked, widening the worst layer by one bit until it holds (else the next less
   compressive candidate; the last is no pruning at all).

Without labels the "accuracy" is agreement with the float model's answers on the split.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .compress import Compressed, CompressSpec, compress
from .model import Mlp
from .prune import prune_sparsity
from .share import MAX_BITS, MIN_BITS, share_weights
from .storage import layer_storage, totals

__all__ = ["SPARSITIES", "TOLERANCES", "validation_split", "Metric", "prune_scan",
           "bits_scan", "pick_bits", "Search", "search"]

#: Sparsity grid of the pruning curves.
SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
#: Tolerated single-layer drops (points, before retraining) that make the candidates.
TOLERANCES = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0)


def validation_split(n: int, fraction: float, seed: int, labels=None) -> tuple:
    """``(fit, val)`` index arrays over ``n`` rows: ``fraction`` of the rows (of each class
    when ``labels`` are given) held out, chosen by ``seed``; both sorted and disjoint."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--val-fraction {fraction}: use a number between 0 and 1")
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 inputs, got {n}")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else \
        [np.flatnonzero(np.asarray(labels) == c) for c in np.unique(labels)]
    val = []
    for rows in groups:
        take = int(round(fraction * rows.size))
        val.append(rng.permutation(rows)[:take])
    val = np.sort(np.concatenate(val)).astype(np.int64)
    if val.size == 0 or val.size == n:
        raise ValueError(f"--val-fraction {fraction} of {n} inputs leaves an empty split; "
                         f"give more data or another fraction")
    fit = np.setdiff1d(np.arange(n), val)
    return fit, val


@dataclass
class Metric:
    """Accuracy on the validation inputs ``x``: against ``y``, or (``y`` None) agreement
    with ``reference``'s answers."""

    x: np.ndarray
    y: np.ndarray | None = None
    reference: Mlp | None = None

    def __post_init__(self):
        if self.y is None:
            self.y = self.reference.forward(self.x).argmax(axis=1)

    @property
    def kind(self) -> str:
        return "accuracy" if self.reference is None else "agreement with the float model"

    def __call__(self, model: Mlp) -> float:
        return 100.0 * model.accuracy(self.x, self.y)


def prune_scan(model: Mlp, metric: Metric, sparsities=SPARSITIES) -> dict:
    """``{layer: {sparsity: drop in points}}``: each layer magnitude-pruned alone."""
    base = metric(model)
    out = {}
    for i, layer in enumerate(model.layers):
        out[layer.name] = {}
        for s in sparsities:
            m = model.copy()
            mask = prune_sparsity(layer.weight, s)
            m.layers[i].weight = np.where(mask, layer.weight, np.float32(0))
            out[layer.name][float(s)] = base - metric(m)
    return out


def bits_scan(model: Mlp, metric: Metric, reserve_zero: bool, bits=range(MIN_BITS, MAX_BITS + 1),
              init: str = "linear", seed: int = 0) -> dict:
    """``{layer: {bits: drop in points}}``: each layer weight-shared alone (its mask kept)."""
    base = metric(model)
    out = {}
    for i, layer in enumerate(model.layers):
        out[layer.name] = {}
        for b in bits:
            m = model.copy()
            s = share_weights(layer.weight, layer.mask, b, init=init, reserve_zero=reserve_zero,
                              seed=seed)
            m.layers[i].weight = s.weight()
            out[layer.name][int(b)] = base - metric(m)
    return out


def pick_bits(scan: dict, budget: float, max_bits: int) -> dict:
    """Each layer's smallest width (up to ``max_bits``) whose drop alone is within
    ``budget``; ``max_bits`` where none is."""
    out = {}
    for name, drops in scan.items():
        ok = [b for b, d in sorted(drops.items()) if b <= max_bits and d <= budget]
        out[name] = ok[0] if ok else max_bits
    return out


def _candidates(model: Mlp, curves: dict, spec: CompressSpec, bits: int) -> list[dict]:
    """Distinct per-layer sparsities from :data:`TOLERANCES`, most compressive first."""
    seen, out = set(), []
    for t in TOLERANCES:
        choice = {}
        for name, curve in curves.items():
            ok = [s for s, d in curve.items() if d <= t]
            choice[name] = max(ok) if ok else 0.0
        key = tuple(choice.values())
        if key in seen:
            continue
        seen.add(key)
        rows = []
        for layer in model.layers:
            mask = prune_sparsity(layer.weight, choice[layer.name])
            rows.append(layer_storage(layer.name, mask, np.zeros(mask.shape, np.uint8), bits,
                                      spec.index_bits))
        out.append({"tolerance": t, "sparsity": choice,
                    "predicted_ratio": totals(rows)["ratio_pq"]})
    out = sorted(out, key=lambda c: -c["predicted_ratio"])
    dense = dict.fromkeys(curves, 0.0)
    if tuple(dense.values()) not in seen:      # the last resort: sharing alone
        out.append({"tolerance": None, "sparsity": dense, "predicted_ratio": None})
    return out


@dataclass
class Search:
    """What :func:`search` chose and measured (accuracies in percent on the split)."""

    fit_size: int
    val_size: int
    metric: str
    float_val: float
    max_loss: float
    sparsity: dict
    bits: dict
    compressed: Compressed
    final_val: float
    prune_curves: dict
    bits_drops: dict
    tried: list = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return self.float_val - self.final_val <= self.max_loss + 1e-9

    def as_dict(self) -> dict:
        return {"fit_size": self.fit_size, "val_size": self.val_size, "metric": self.metric,
                "float_val": self.float_val, "final_val": self.final_val,
                "max_loss": self.max_loss, "within_budget": self.within_budget,
                "sparsity": self.sparsity, "bits": self.bits,
                "prune_curves": {k: {str(s): d for s, d in v.items()}
                                 for k, v in self.prune_curves.items()},
                "bits_drops": {k: {str(b): d for b, d in v.items()}
                               for k, v in self.bits_drops.items()},
                "tried": self.tried}


def search(model: Mlp, spec: CompressSpec, max_loss: float, x_train=None, y_train=None,
           calibration=None, val_fraction: float = 0.2, max_bits: int = MAX_BITS,
           refine: bool = False, progress=None) -> Search:
    """Per-layer sparsity and bits within ``max_loss`` points on a validation split of
    ``x_train`` (labels ``y_train``) or, without them, of ``calibration``; ``spec`` gives
    everything else (seed, retraining, distillation, reserved zero, accounting).
    ``refine``: after the bisection, push single layers one candidate further each. Off
    by default: each extra comparison on a small split is another chance to pass by luck
    (on the scikit-learn digits MLP it reached 51.7x holding the split, and lost 2 points
    on the test set; the bisection alone lost 0.25)."""
    say = progress or (lambda msg: None)
    if not (np.isfinite(max_loss) and max_loss >= 0):
        raise ValueError(f"--max-loss {max_loss}: use a non-negative number of points")
    if not MIN_BITS <= max_bits <= MAX_BITS:
        raise ValueError(f"max_bits {max_bits}: use {MIN_BITS} to {MAX_BITS}")
    labelled = x_train is not None
    if labelled and y_train is None:
        raise ValueError("--train needs --labels")
    data = np.asarray(x_train if labelled else calibration, np.float32)
    if data is None or data.ndim != 2:
        raise ValueError("--max-loss needs --train/--labels or --calibration inputs")
    labels = np.asarray(y_train, np.int64) if labelled else None
    fit, val = validation_split(len(data), val_fraction, spec.seed, labels)
    metric = Metric(data[val], labels[val] if labelled else None,
                    None if labelled else model)
    base = metric(model)
    say(f"validation split: {val.size} of {len(data)} {'training' if labelled else 'calibration'}"
        f" inputs (seed {spec.seed}); float {metric.kind} {base:.2f} %")

    def run(sparsity: dict, bits: dict, pruned=None) -> Compressed:
        s = replace(spec, sparsity=sparsity, quality=None, global_prune=False, bits=bits)
        if labelled:
            return compress(model, s, data[fit], labels[fit], pruned=pruned)
        return compress(model, s, calibration=data[fit])

    curves = prune_scan(model, metric)
    names = [layer.name for layer in model.layers]
    widest = dict.fromkeys(names, max_bits)
    cands = _candidates(model, curves, spec, max_bits)
    tried = []
    cache = {}

    def attempt(sparsity: dict):
        key = tuple(sparsity.values())
        if key not in cache:
            say(f"sparsity {_fmt(sparsity)}: pruning" + (" and retraining" if labelled else ""))
            got = run(sparsity, widest)
            acc = metric(got.pruned)
            tried.append({"sparsity": sparsity, "pruned_val": acc})
            say(f"  pruned: {acc:.2f} % on the split (budget {base - max_loss:.2f} %)")
            cache[key] = (got, acc)
        return cache[key]

    def passes(sparsity: dict) -> bool:
        return base - attempt(sparsity)[1] <= max_loss

    # Bisection over the candidates, most compressive first; the last (no pruning) is the
    # fallback.
    lo, hi = 0, len(cands) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if passes(cands[mid]["sparsity"]):
            hi = mid
        else:
            lo = mid + 1
    # Then one layer at a time one grid step further, largest layers first, while the
    # retrained model holds: the candidates move every layer together.
    chain = [cands[lo]["sparsity"]]
    order = sorted(model.layers, key=lambda layer: -layer.weight.size)
    moved = refine
    while moved:
        moved = False
        for layer in order:
            up = [s for s in SPARSITIES if s > chain[-1][layer.name]]
            if up and passes({**chain[-1], layer.name: up[0]}):
                chain.append({**chain[-1], layer.name: up[0]})
                moved = True
    while True:
        chosen = chain.pop()
        pruned = attempt(chosen)[0].pruned
        drops = bits_scan(pruned, metric, spec.reserve_zero, range(MIN_BITS, max_bits + 1),
                          spec.init, spec.seed)
        bits = pick_bits(drops, max_loss, max_bits)
        while True:
            say(f"sharing at bits {_fmt(bits)}"
                + (", fine-tuning centroids" if labelled else ""))
            final = run(chosen, bits, pruned if labelled else None)
            acc = metric(final.final)
            say(f"  shared: {acc:.2f} % on the split")
            narrow = [n for n in names if bits[n] < max_bits]
            if base - acc <= max_loss or not narrow:
                break
            worst = max(narrow, key=lambda n: drops[n][bits[n]])
            bits = {**bits, worst: bits[worst] + 1}
        if base - acc <= max_loss:
            break
        # Sharing cost more than pruning left: step back to the previous sparsities, then
        # to the next less compressive candidate.
        if not chain:
            if lo == len(cands) - 1:
                break
            lo += 1
            chain = [cands[lo]["sparsity"]]
    return Search(len(fit), len(val), metric.kind, base, max_loss, chosen, bits, final, acc,
                  curves, drops, tried)


def _fmt(d: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in d.items())
