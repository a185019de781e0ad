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

With labels, :func:`search_methods` weighs methods instead: ternary (TTQ), prune+share and
low-rank+prune candidates, each estimated by k-fold cross-validation over all the training
data (every input predicted by models trained without it, so one input is ``100 / N``
points rather than ``100 / (fraction · N)``), a bisection per method, the most compressive
within the budget retrained on all of it.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from .compress import Compressed, CompressSpec, compress
from .lowrank import LowRankSpec, compress_factored
from .model import Mlp
from .prune import prune_sparsity
from .share import MAX_BITS, MIN_BITS, share_weights
from .storage import layer_storage, totals
from .ternary import QuantSpec, quantize_mlp, ternarize, ternary_threshold

__all__ = ["SPARSITIES", "TOLERANCES", "validation_split", "Metric", "prune_scan",
           "bits_scan", "pick_bits", "Search", "search", "METHODS", "folds", "Candidate",
           "candidates", "build", "method_spec", "MethodSearch", "search_methods"]

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
    """Accuracy in percent of a model (an :class:`Mlp` or a graph: anything with
    ``forward``) on the validation inputs ``x``: against ``y``, or (``y`` None) agreement
    with ``reference``'s arg-max answers."""

    x: np.ndarray
    y: np.ndarray | None = None
    reference: object | None = None

    def __post_init__(self):
        if self.y is None:
            self.y = self.reference.forward(self.x).argmax(axis=1)

    @property
    def kind(self) -> str:
        return "accuracy" if self.reference is None else "agreement with the float model"

    def __call__(self, model) -> float:
        return 100.0 * float(np.mean(model.forward(self.x).argmax(axis=1) == self.y))


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


#: Methods :func:`search_methods` weighs, in the order it tries them.
METHODS = ("ternary", "prune+share", "low-rank")
#: Sparsity levels of the hidden layers in the candidate grid; the output layer (the
#: smallest, a few percent of the weights, and the most sensitive) takes
#: :data:`OUTPUT_GAP` less.
LEVELS = (0.7, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96)
OUTPUT_GAP = 0.6
#: Ranks of the hidden layers and sparsities of their factors for the low-rank candidates
#: (the output layer's factors, if any, and unfactored layers: :data:`LOW_RANK_OUTPUT`).
RANKS = (12, 16, 24)
FACTOR_SPARSITIES = (0.5, 0.6, 0.7)
LOW_RANK_OUTPUT = 0.3
#: Ternary training in the search: epochs, of which the sparsity ramps over the first half,
#: cosine learning rate; distillation weight when it is tried.
TERNARY_EPOCHS = 100
DISTILL_WEIGHT = 0.5


def folds(n: int, k: int, seed: int, labels=None) -> list[tuple]:
    """``k`` pairs ``(fit, val)`` of sorted index arrays over ``n`` rows: every row in
    exactly one ``val``; with ``labels`` each class spread evenly over the folds (seeded)."""
    if not 2 <= k <= n:
        raise ValueError(f"--folds {k}: use 2 to the number of inputs ({n})")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else \
        [np.flatnonzero(np.asarray(labels) == c) for c in np.unique(labels)]
    which = np.empty(n, np.int64)
    start = 0
    for rows in groups:
        # Round-robin over a permutation, continuing where the last class stopped, keeps
        # the folds' sizes within one of each other.
        which[rng.permutation(rows)] = (start + np.arange(rows.size)) % k
        start += rows.size
    return [(np.flatnonzero(which != f), np.flatnonzero(which == f)) for f in range(k)]


@dataclass
class Candidate:
    """One setting of one method: ``setting`` holds ``sparsity`` (per layer), and ``bits``
    (prune+share) or ``ranks`` (low-rank); ``distill`` for the methods that take it."""

    method: str
    setting: dict
    predicted_ratio: float
    distill: bool = False

    @property
    def label(self) -> str:
        parts = [f"{k} {_fmt(v) if isinstance(v, dict) else v}" for k, v in self.setting.items()]
        return f"{self.method}: " + "; ".join(parts) + (", distilled" if self.distill else "")


def _sparsities(model: Mlp) -> list[dict]:
    """Per-layer sparsities to try: every hidden layer at a level of :data:`LEVELS`, the
    output layer :data:`OUTPUT_GAP` lower. One level for all hidden layers keeps the
    candidates in one order of both size and (roughly) accuracy, which the bisection
    assumes; the sensitivity scan's per-layer candidates of :func:`search` (the output
    layer pruned 85 % and more at 50x) broke that order."""
    names = [layer.name for layer in model.layers]
    return [{n: (s if i < len(names) - 1 else round(max(0.0, s - OUTPUT_GAP), 2))
             for i, n in enumerate(names)} for s in LEVELS]


def _ternary_ratio(model: Mlp, sparsity: dict, index_bits: int) -> float:
    rows = []
    for layer in model.layers:
        w = layer.weight
        delta = ternary_threshold(w, sparsity=sparsity[layer.name])
        index, _, _ = ternarize(w, delta)
        rows.append(layer_storage(layer.name, index != 0, index, 2, index_bits, dense=True))
    return totals(rows)["ratio_huffman"]


def _shared_ratio(model: Mlp, sparsity: dict, bits: dict, index_bits: int) -> float:
    rows = []
    for layer in model.layers:
        mask = prune_sparsity(layer.weight, sparsity[layer.name])
        rows.append(layer_storage(layer.name, mask, np.ones(mask.shape, np.uint8)
                                  * ((1 << bits[layer.name]) - 1), bits[layer.name],
                                  index_bits))
    return totals(rows)["ratio_huffman"]


def candidates(model: Mlp, method: str, spec: CompressSpec, max_bits: int,
               ranks: dict | None = None) -> list[Candidate]:
    """``method``'s candidates, most compressive (by the paper accounting of their masks,
    before training) first; ternary and prune+share ones distilled from the float model.
    ``ranks`` (low-rank only): these ranks instead of :data:`RANKS`."""
    names = [layer.name for layer in model.layers]
    out = []
    if method == "ternary":
        for s in _sparsities(model):
            out.append(Candidate("ternary", {"sparsity": s},
                                 _ternary_ratio(model, s, spec.index_bits)))
    elif method == "prune+share":
        for s in _sparsities(model):
            for b in sorted({min(2, max_bits), min(3, max_bits)}):
                bits = dict.fromkeys(names, b)
                out.append(Candidate("prune+share", {"sparsity": s, "bits": bits},
                                     _shared_ratio(model, s, bits, spec.index_bits)))
    elif method == "low-rank":
        choices = [ranks] if ranks is not None else \
            [{n: r for n in names[:-1]} for r in RANKS]
        for r in choices:
            for fs in FACTOR_SPARSITIES:
                sparsity = {n: (fs if n in r else LOW_RANK_OUTPUT) for n in names}
                c = compress_factored(model, ranks=r, sparsity=sparsity, bits=max_bits,
                                      reserve_zero=spec.reserve_zero,
                                      index_bits=spec.index_bits, seed=spec.seed)
                if c.log["factors"]:
                    out.append(Candidate("low-rank", {"ranks": dict(r), "sparsity": sparsity},
                                         totals(c.storage)["ratio_huffman"]))
    else:
        raise ValueError(f"method {method!r}: use one of {', '.join(METHODS)}")
    if method != "low-rank":
        out = [replace(c, distill=True) for c in out]
    return sorted(out, key=lambda c: -c.predicted_ratio)


def build(model: Mlp, cand: Candidate, spec: CompressSpec, x, y, epochs: int | None = None,
          max_bits: int = MAX_BITS, progress=None) -> Compressed:
    """``cand`` applied to ``model`` with training on ``x``/``y``; ``epochs`` shortens
    every method's training (tests)."""
    s = cand.setting
    if cand.method == "prune+share":
        c = replace(spec, sparsity=s["sparsity"], bits=s["bits"], quality=None,
                    global_prune=False, distill=cand.distill)
        if epochs is not None:
            c = replace(c, retrain_epochs=epochs, finetune_epochs=epochs)
        return compress(model, c, x, y)
    if cand.method == "ternary":
        n = TERNARY_EPOCHS if epochs is None else epochs
        q = QuantSpec("ternary", sparsity=s["sparsity"], epochs=n, ramp_epochs=n // 2,
                      cosine=True, distill=DISTILL_WEIGHT if cand.distill else 0.0,
                      temperature=spec.temperature, seed=spec.seed,
                      index_bits=spec.index_bits)
        return quantize_mlp(model, q, x, y)
    n = {} if epochs is None else {"epochs": epochs, "finetune_epochs": epochs}
    return compress_factored(model, ranks=s["ranks"], sparsity=s["sparsity"], bits=max_bits,
                             reserve_zero=spec.reserve_zero, x_train=x, y_train=y,
                             index_bits=spec.index_bits, seed=spec.seed, **n)


def method_spec(cand: Candidate, spec: CompressSpec, max_bits: int = MAX_BITS):
    """What the image writers take for ``cand``'s method: a QuantSpec (ternary), a
    LowRankSpec, or ``None`` (prune + share by ``spec``)."""
    if cand.method == "ternary":
        return QuantSpec("ternary", sparsity=cand.setting["sparsity"], seed=spec.seed,
                         index_bits=spec.index_bits)
    if cand.method == "low-rank":
        return LowRankSpec(ranks=cand.setting["ranks"], sparsity=cand.setting["sparsity"],
                           bits=max_bits, seed=spec.seed, index_bits=spec.index_bits)
    return None


@dataclass
class MethodSearch:
    """What :func:`search_methods` chose and measured: the k-fold estimates (accuracy in
    percent over every training input, each predicted by a model trained without its
    fold), and the chosen candidate retrained on all the training data."""

    folds: int
    val_size: int
    float_val: float
    max_loss: float
    chosen: Candidate
    final_val: float
    compressed: Compressed
    method: object
    tried: list = field(default_factory=list)
    metric: str = "accuracy"

    @property
    def within_budget(self) -> bool:
        return self.float_val - self.final_val <= self.max_loss + 1e-9

    @property
    def sparsity(self) -> dict:
        return self.chosen.setting["sparsity"]

    @property
    def bits(self) -> dict:
        return {layer.name: int(s.bits) for layer, s in
                zip(self.compressed.final.layers, self.compressed.shared, strict=True)}

    def as_dict(self) -> dict:
        return {"folds": self.folds, "val_size": self.val_size, "metric": self.metric,
                "float_val": self.float_val, "final_val": self.final_val,
                "max_loss": self.max_loss, "within_budget": self.within_budget,
                "method": self.chosen.method, "setting": self.chosen.setting,
                "distill": self.chosen.distill, "label": self.chosen.label,
                "bits": self.bits, "tried": self.tried}


def search_methods(model: Mlp, spec: CompressSpec, max_loss: float, x_train, y_train,
                   methods=METHODS, k: int = 5, max_bits: int = MAX_BITS,
                   ranks: dict | None = None, epochs: int | None = None,
                   progress=None) -> MethodSearch:
    """The most compressive candidate of ``methods`` whose ``k``-fold accuracy on the
    training data stays within ``max_loss`` points of the float model's, retrained on all
    of ``x_train``/``y_train``.

    Each candidate is trained ``k`` times, each time without one fold, and predicts that
    fold: the estimate counts every training input once (a point is ``100 / len(x_train)``
    inputs, not ``100 / (fraction · len)`` as on one split). Per method, a bisection over
    its candidates (most compressive first) finds the first that holds; its ratio is the
    mean of the fold models'. The best ratio among the methods wins. Ternary and
    prune+share candidates train distilled from the float model (:data:`DISTILL_WEIGHT`,
    ``spec.temperature``); the winner is then also estimated on the labels alone and the
    better estimate kept (with ``spec.distill``, not: distilled it is). Nothing holding,
    the candidate with the best estimate is kept (``within_budget`` False)."""
    say = progress or (lambda msg: None)
    if not (np.isfinite(max_loss) and max_loss >= 0):
        raise ValueError(f"--max-loss {max_loss}: use a non-negative number of points")
    if not MIN_BITS <= max_bits <= MAX_BITS:
        raise ValueError(f"max_bits {max_bits}: use {MIN_BITS} to {MAX_BITS}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods {', '.join(unknown) or '(none)'}: use some of "
                         f"{', '.join(METHODS)}")
    x = np.asarray(x_train, np.float32)
    y = np.asarray(y_train, np.int64)
    split = folds(len(x), k, spec.seed, y)
    base = 100.0 * model.accuracy(x, y)
    say(f"{k}-fold estimates over {len(x)} training inputs (seed {spec.seed}); float "
        f"accuracy {base:.2f} %, budget {base - max_loss:.2f} %")
    tried, cache, known = [], {}, {}

    def estimate(cand: Candidate) -> dict:
        if cand.label not in cache:
            known[cand.label] = cand
            right, ratios = 0, []
            for fit, val in split:
                c = build(model, cand, spec, x[fit], y[fit], epochs, max_bits)
                right += int(np.sum(c.final.forward(x[val]).argmax(axis=1) == y[val]))
                ratios.append(totals(c.storage)["ratio_huffman"])
            row = {"candidate": cand.label, "method": cand.method,
                   "val_accuracy": 100.0 * right / len(x), "errors": len(x) - right,
                   "ratio": float(np.mean(ratios)), "predicted_ratio": cand.predicted_ratio}
            row["holds"] = base - row["val_accuracy"] <= max_loss + 1e-9
            tried.append(row)
            cache[cand.label] = row
            say(f"  {cand.label}: {row['val_accuracy']:.2f} % ({row['errors']} errors), "
                f"{row['ratio']:.1f}x{'' if row['holds'] else ', over budget'}")
        return cache[cand.label]

    picks = []
    for method in methods:
        cands = candidates(model, method, spec, max_bits, ranks)
        say(f"{method}: {len(cands)} candidates, bisection")
        lo, hi = 0, len(cands)
        while lo < hi:
            mid = (lo + hi) // 2
            if estimate(cands[mid])["holds"]:
                hi = mid
            else:
                lo = mid + 1
        if lo < len(cands):
            picks.append(cands[lo])
    if picks:
        best = max(picks, key=lambda c: estimate(c)["ratio"])
        if not spec.distill and best.method != "low-rank":
            other = replace(best, distill=False)
            if estimate(other)["val_accuracy"] > estimate(best)["val_accuracy"]:
                best = other
    else:
        best = known[max(tried, key=lambda row: row["val_accuracy"])["candidate"]]
    say(f"chosen {best.label}; retraining on all {len(x)} training inputs")
    final = build(model, best, spec, x, y, epochs, max_bits)
    return MethodSearch(k, len(x), base, max_loss, best, estimate(best)["val_accuracy"],
                        final, method_spec(best, spec, max_bits), tried)
