"""An accuracy budget for graphs (CNNs): per-node sparsity and bits from sensitivity scans.

The graph counterpart of :mod:`quantize.sensitivity` (Deep Compression's per-layer
sensitivity analysis), over the weight nodes of a :class:`~quantize.graph.Graph`
(``Conv2d`` and ``Linear``, each weight seen as its ``O × rest`` matrix as in
:mod:`quantize.compress_graph`). On a **validation split carved out of the training data**
(:func:`quantize.sensitivity.validation_split`: seeded, stratified by label; the test data
is never an argument), :func:`search_graph` keeps the most compressive per-node sparsity and
bits whose accuracy on that split stays within ``max_loss`` points of the float graph:

1. pruning curves of the float graph, each weight node alone magnitude-pruned over
   :data:`SPARSITIES` (no retraining; sparsity 0 is the float graph, a drop of exactly 0);
2. candidate per-node sparsities: for each tolerated single-node drop ``t`` of
   :data:`quantize.sensitivity.TOLERANCES`, each node its largest sparsity whose drop is at
   most ``t``; the distinct candidates ordered by the paper accounting of their masks at
   ``max_bits`` (codebook + relative index), most compressive first, no pruning last;
3. a bisection over that order, each candidate pruned by
   :func:`quantize.compress_graph.compress_graph` with masked retraining on the rest of the
   training data (or plain magnitude pruning without labels) and checked on the split;
4. on the chosen pruned graph, each node alone shared at ``2..max_bits`` bits; each node
   takes its smallest width within the budget, then the nodes are shared together (the
   codebooks fine-tuned on the fitting data) and checked, widening the node whose own drop
   at its width is worst by one bit until it holds; if it never does, the next less
   compressive candidate (the last is no pruning at all).

Without labels the "accuracy" is agreement with the float graph's answers on the split of
the calibration inputs, and nothing is retrained.

With ``int8_calibration`` the budget applies to what runs on the systolic engine: every
candidate's accuracy on the split (steps 3 and 4) is that of its int8 golden model
(:func:`quantize.graph_quant.quantize_graph` on those inputs, optionally Winograd,
:func:`quantize.graph_run.run_graph`), still against the *float* graph's accuracy. The
scans of steps 1 and 2 stay float: they rank the nodes and pick a starting width, and
every choice they lead to is then judged in int8.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .compress_graph import CompressedGraph, compress_graph, weight_nodes
from .graph import Graph, Node
from .graph_quant import quantize_graph
from .graph_run import add_winograd, run_graph
from .prune import prune_sparsity
from .sensitivity import TOLERANCES, Metric, pick_bits, validation_split
from .share import MAX_BITS, MIN_BITS, share_weights
from .storage import check_index_bits, layer_storage, totals
from .train_cnn import teacher

__all__ = ["SPARSITIES", "prune_scan_graph", "bits_scan_graph", "GraphScans",
           "scan_graph", "GraphSearch", "Int8Metric", "search_graph", "format_scans"]

#: Sparsity grid of the pruning curves. Lower than the MLP grid at the start: a CNN's first
#: convolution holds few weights per output and rarely takes 50 %.
SPARSITIES = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97,
              0.98)


def _matrix(w: np.ndarray) -> np.ndarray:
    return w.reshape(w.shape[0], -1)


def _with_weight(graph: Graph, name: str, weight: np.ndarray) -> Graph:
    nodes = [Node(n.name, n.op, n.inputs, n.output, n.attrs,
                  {"weight": weight.reshape(n.weight.shape).astype(n.weight.dtype),
                   "bias": n.bias})
             if n.name == name else n for n in graph.nodes]
    return Graph(graph.input_name, graph.input_shape, nodes)


def prune_scan_graph(graph: Graph, metric: Metric, sparsities=SPARSITIES) -> dict:
    """``{node: {sparsity: drop in points}}``: each weight node magnitude-pruned alone (on
    its ``O × rest`` matrix), no retraining. Sparsity 0 keeps every weight: drop 0."""
    base = metric(graph)
    out = {}
    for node in weight_nodes(graph):
        w = _matrix(node.weight)
        out[node.name] = {}
        for s in sparsities:
            pruned = np.where(prune_sparsity(w, s), w, 0)
            out[node.name][float(s)] = base - metric(_with_weight(graph, node.name, pruned))
    return out


def bits_scan_graph(graph: Graph, metric: Metric, masks: dict | None = None,
                    bits=range(MIN_BITS, MAX_BITS + 1), init: str = "linear",
                    seed: int = 0) -> dict:
    """``{node: {bits: drop in points}}``: each weight node alone k-means shared (codebook
    entry 0 the pruned 0.0, as :func:`quantize.compress_graph.compress_graph` shares it),
    keeping ``masks[node]`` (every weight when ``masks`` is None)."""
    base = metric(graph)
    out = {}
    for node in weight_nodes(graph):
        w = _matrix(node.weight)
        keep = np.ones(w.shape, bool) if masks is None else _matrix(masks[node.name])
        out[node.name] = {}
        for b in bits:
            s = share_weights(w, keep, int(b), init=init, reserve_zero=True, seed=seed)
            out[node.name][int(b)] = base - metric(_with_weight(graph, node.name, s.weight()))
    return out


def _prepare(graph, max_bits, x_train, y_train, calibration, val_fraction, seed):
    """``(data, labels, fit, val, metric)`` after checking the arguments (one line each)."""
    if not isinstance(max_bits, int | np.integer) or not MIN_BITS <= max_bits <= MAX_BITS:
        raise ValueError(f"max_bits {max_bits}: use {MIN_BITS} to {MAX_BITS}")
    if not weight_nodes(graph):
        raise ValueError("the graph has no Conv2d or Linear node; nothing to compress")
    labelled = x_train is not None
    if labelled and y_train is None:
        raise ValueError("training inputs need labels (--train needs --labels)")
    if not labelled and y_train is not None:
        raise ValueError("labels need training inputs (--labels needs --train)")
    if not labelled and calibration is None:
        raise ValueError("--max-loss/--sensitivity need --train/--labels or --calibration "
                         "inputs")
    flag = "--train" if labelled else "--calibration"
    data = _batch(graph, x_train if labelled else calibration, np.float32, flag)
    labels = None
    if labelled:
        labels = np.asarray(y_train)
        classes = int(np.prod(graph.output_shape))
        if labels.ndim != 1 or len(labels) != len(data):
            raise ValueError(f"{len(data)} training inputs but labels of shape {labels.shape}; "
                             f"give one label per input")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(f"labels must be 0..{classes - 1} for a graph with {classes} "
                             f"outputs, found {int(labels.min())}..{int(labels.max())}")
        labels = labels.astype(np.int64)
    fit, val = validation_split(len(data), val_fraction, seed, labels)
    metric = Metric(data[val], labels[val] if labelled else None,
                         None if labelled else graph)
    return data, labels, fit, val, metric


class Int8Metric:
    """``metric`` (same split, same answers) scored on a graph's int8 golden model: the
    graph quantized from ``calibration`` (with ``winograd``: its 3×3 stride-1 convolutions,
    or the named ones, on Winograd F(2×2,3×3) calibrated on the same inputs) and run by
    :func:`quantize.graph_run.run_graph` on the golden engine."""

    def __init__(self, metric: Metric, calibration: np.ndarray, winograd=False):
        self.x, self.y, self.calibration = metric.x, metric.y, calibration
        self.winograd = winograd
        self.kind = metric.kind

    def quantize(self, graph: Graph):
        """The int8 graph this metric scores (what a graph image holds)."""
        qg = quantize_graph(graph, self.calibration)
        if self.winograd is not False:
            qg = add_winograd(qg, self.calibration,
                              None if self.winograd is True else list(self.winograd))
        return qg

    def __call__(self, graph: Graph) -> float:
        out = run_graph(self.quantize(graph), self.x, "golden").float_output
        return 100.0 * float(np.mean(out.argmax(axis=1) == self.y))


def _int8_inputs(graph: Graph, calibration) -> np.ndarray:
    return _batch(graph, calibration, np.float64, "int8 calibration")


def _batch(graph: Graph, inputs, dtype, what: str) -> np.ndarray:
    """``inputs`` as a finite batch of the graph's input shape; a one-line error naming
    ``what`` otherwise."""
    data = np.asarray(inputs, dtype)
    size = int(np.prod(graph.input_shape))
    if data.ndim == 0 or data.size == 0 or data.size % size or len(data) * size != data.size:
        raise ValueError(f"{what}: inputs of shape {data.shape} are not a non-empty batch of "
                         f"the graph's input shape {tuple(graph.input_shape)}")
    data = data.reshape(-1, *graph.input_shape)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{what}: inputs contain NaN or Inf")
    return data


@dataclass
class GraphScans:
    """The float graph's scans on the validation split (:func:`scan_graph`): pruning
    curves, bits drops (nothing pruned) and each node's smallest bits within ``max_loss``."""

    fit_size: int
    val_size: int
    metric: str
    float_val: float
    max_loss: float
    prune_curves: dict
    bits_drops: dict
    bits: dict


def scan_graph(graph: Graph, x_train=None, y_train=None, calibration=None, *,
               max_loss: float = 0.5, val_fraction: float = 0.2, seed: int = 0,
               max_bits: int = MAX_BITS, init: str = "linear") -> GraphScans:
    """``--sensitivity`` alone: the float graph's pruning curves and bits drops on the
    validation split of ``x_train``/``y_train`` (or of ``calibration``, as agreement), and
    the smallest bits per node within ``max_loss`` points."""
    _check_budget(max_loss)
    _, _, fit, val, metric = _prepare(graph, max_bits, x_train, y_train, calibration,
                                      val_fraction, seed)
    curves = prune_scan_graph(graph, metric)
    drops = bits_scan_graph(graph, metric, None, range(MIN_BITS, max_bits + 1), init, seed)
    return GraphScans(len(fit), len(val), metric.kind, metric(graph), max_loss, curves, drops,
                      pick_bits(drops, max_loss, max_bits))


def _check_budget(max_loss):
    if (isinstance(max_loss, bool) or not isinstance(max_loss, int | float | np.number)
            or not (np.isfinite(max_loss) and max_loss >= 0)):
        raise ValueError(f"--max-loss {max_loss}: use a non-negative number of points")


def _candidates(graph: Graph, curves: dict, bits: int, index_bits: int) -> list[dict]:
    """Distinct per-node sparsities from :data:`TOLERANCES`, most compressive first (paper
    accounting of the masks at ``bits``), no pruning last."""
    seen, out = set(), []
    weights = {n.name: _matrix(n.weight) for n in weight_nodes(graph)}
    for t in TOLERANCES:
        choice = {name: max((s for s, d in curve.items() if d <= t), default=0.0)
                  for name, curve in curves.items()}
        key = tuple(choice.values())
        if key in seen:
            continue
        seen.add(key)
        rows = []
        for name, w in weights.items():
            mask = prune_sparsity(w, choice[name])
            rows.append(layer_storage(name, mask, np.zeros(mask.shape, np.uint8), bits,
                                      index_bits))
        out.append({"tolerance": t, "sparsity": choice,
                    "predicted_ratio": totals(rows)["ratio_pq"]})
    out.sort(key=lambda c: -c["predicted_ratio"])
    dense = dict.fromkeys(curves, 0.0)
    if tuple(dense.values()) not in seen:
        out.append({"tolerance": None, "sparsity": dense, "predicted_ratio": None})
    return out


@dataclass
class GraphSearch:
    """What :func:`search_graph` chose and measured (accuracies in percent on the split).

    Members
    -------
    fit, val : int arrays
        Rows of the training (or calibration) inputs used for retraining, and held out.
    compressed : CompressedGraph
        The chosen graph, pruned (retrained on the ``fit`` rows) and shared; what an image
        is written from.
    prune_curves : dict
        Per node, the float graph's drop (points) at each sparsity, pruned alone.
    bits_drops : dict
        Per node, the chosen pruned graph's drop at each width, shared alone.
    picks : dict
        Per node, its smallest width within the budget alone (before any widening).
    tried : list of dict
        Every pruning candidate retrained, and every sharing checked, in order (with an
        int8 judge, ``pruned_val_int8``/``shared_val_int8`` beside the float figures).
    final_val_int8, float_val_int8 : float or None
        With an int8 judge: the chosen graph's int8 golden accuracy on the split (what the
        budget was applied to), and the uncompressed graph's; None when the search judged
        the float compressed graph.
    int8 : str or None
        What the int8 judge was ("int8 golden model, scales from N calibration inputs", and
        the Winograd layers), or None.
    """

    fit: np.ndarray
    val: np.ndarray
    metric: str
    float_val: float
    max_loss: float
    sparsity: dict
    bits: dict
    compressed: CompressedGraph
    final_val: float
    prune_curves: dict
    bits_drops: dict
    picks: dict
    tried: list = field(default_factory=list)
    final_val_int8: float | None = None
    float_val_int8: float | None = None
    int8: str | None = None

    @property
    def fit_size(self) -> int:
        return int(self.fit.size)

    @property
    def val_size(self) -> int:
        return int(self.val.size)

    @property
    def judged_val(self) -> float:
        """The accuracy the budget was applied to: int8 when judged so, else float."""
        return self.final_val if self.final_val_int8 is None else self.final_val_int8

    @property
    def within_budget(self) -> bool:
        return self.float_val - self.judged_val <= self.max_loss + 1e-9

    def summary(self, labelled: bool = True) -> str:
        """Two lines for the CLI: the choice, and the split's float and compressed figures."""
        t = self.compressed.totals()
        verdict = "kept" if self.within_budget else "MISSED"
        head = (f"chosen: sparsity {_pairs(self.sparsity)}, bits {_pairs(self.bits)} "
                f"({t['ratio_huffman']:.1f}x Huffman, {t['ratio_pq']:.1f}x P+Q)\n"
                f"validation split ({self.val_size} of {self.val_size + self.fit_size} "
                f"{'training' if labelled else 'calibration'} inputs, held out): float "
                f"{self.float_val:.2f} %, compressed {self.final_val:.2f} %")
        if self.final_val_int8 is None:
            return f"{head} {self.metric} (budget {self.max_loss:g} points: {verdict})"
        return (f"{head} float, {self.final_val_int8:.2f} % int8 {self.metric} (budget "
                f"{self.max_loss:g} points on the int8 model: {verdict})\n"
                f"int8 judge: {self.int8}; the uncompressed graph in int8 "
                f"{self.float_val_int8:.2f} %")

    def as_dict(self) -> dict:
        t = self.compressed.totals()
        return {"fit_size": self.fit_size, "val_size": self.val_size, "metric": self.metric,
                "float_val": self.float_val, "final_val": self.final_val,
                "final_val_int8": self.final_val_int8, "float_val_int8": self.float_val_int8,
                "int8": self.int8, "max_loss": self.max_loss, "within_budget": self.within_budget,
                "sparsity": self.sparsity, "bits": self.bits, "picks": self.picks,
                "ratio_pq": t["ratio_pq"], "ratio_huffman": t["ratio_huffman"],
                "kept": t["kept"], "weights": t["weights"],
                "prune_curves": {k: {str(s): d for s, d in v.items()}
                                 for k, v in self.prune_curves.items()},
                "bits_drops": {k: {str(b): d for b, d in v.items()}
                               for k, v in self.bits_drops.items()},
                "tried": self.tried}


def search_graph(graph: Graph, max_loss: float, x_train=None, y_train=None, calibration=None,
                 *, val_fraction: float = 0.2, seed: int = 0, max_bits: int = MAX_BITS,
                 index_bits: int = 5, prune_steps: int = 4, retrain_epochs: int = 10,
                 finetune_epochs: int = 5, init: str = "linear", distill: tuple | None = None,
                 int8_calibration=None, winograd=False, progress=None) -> GraphSearch:
    """Per-node sparsity and bits of ``graph`` within ``max_loss`` points on a validation
    split (module docstring).

    Parameters
    ----------
    graph : Graph
        The float graph; with labels, one :mod:`quantize.train_cnn` can train.
    max_loss : float
        Allowed drop in points (percent) of the split's accuracy from the float graph's.
    x_train, y_train : arrays, optional
        Training inputs (``[n, *input_shape]`` or flattened rows) and integer labels: the
        split is carved out of them (stratified), the rest retrains.
    calibration : array, optional
        Without labels: inputs whose split measures agreement with the float graph.
    val_fraction, seed : float, int
        Share of the inputs held out, and the seed of the split, pruning and k-means.
    max_bits : int
        Widest codebook considered (and the width the pruning candidates retrain at).
    index_bits, prune_steps, retrain_epochs, finetune_epochs, init
        As :func:`quantize.compress_graph.compress_graph` (``retrain_epochs`` after each of
        ``prune_steps`` pruning steps, ``finetune_epochs`` of codebook fine-tuning; both
        need labels).
    distill : (temperature, weight), optional
        Retraining and fine-tuning also follow the float graph's softened outputs on the
        fitting inputs (:func:`quantize.train_cnn.teacher`).
    int8_calibration : array, optional
        Inputs the int8 scales come from (as for the image written afterwards): with them,
        every candidate is judged on its int8 golden model (module docstring). They must
        not be the held-out split: with labels, fitting rows of ``x_train`` (or other
        inputs, such as the command's ``--calibration`` less any held-out rows); without,
        the rows of ``calibration`` outside the split (``fit``). ``None``: the float
        compressed graph is judged, as without an int8 image.
    winograd : bool or list of str
        With ``int8_calibration``: the int8 model judged runs every 3×3 stride-1
        convolution (True) or the named ones on Winograd F(2×2,3×3)
        (:func:`quantize.graph_run.add_winograd`, calibrated on the same inputs).
    progress : callable, optional
        Called with one line of text per stage.

    Raises
    ------
    ValueError
        A negative or non-finite ``max_loss``, ``max_bits`` outside 2..8, no inputs, inputs
        that are not batches of the graph's input shape, labels that do not match the
        inputs or the graph's outputs, a split that leaves either part empty, int8
        calibration inputs that are not a batch of the graph's input shape, or (with
        ``int8_calibration``) an uncompressed graph whose int8 model alone already loses
        more than ``max_loss`` (one line each).
    """
    say = progress or (lambda msg: None)
    _check_budget(max_loss)
    check_index_bits(index_bits)
    data, labels, fit, val, metric = _prepare(graph, max_bits, x_train, y_train, calibration,
                                              val_fraction, seed)
    labelled = labels is not None
    if distill is not None and not labelled:
        raise ValueError("distillation retrains: give training inputs and labels")
    if winograd is not False and int8_calibration is None:
        raise ValueError("winograd is part of the int8 model judged: give int8_calibration")
    base = metric(graph)
    say(f"validation split: {val.size} of {len(data)} "
        f"{'training' if labelled else 'calibration'} inputs (seed {seed}); float "
        f"{metric.kind} {base:.2f} %")
    judge = base_int8 = about = None
    if int8_calibration is not None:
        judge = Int8Metric(metric, _int8_inputs(graph, int8_calibration), winograd)
        wino = judge.quantize(graph).winograd if winograd is not False else {}
        about = (f"int8 golden model, scales from {len(judge.calibration)} calibration "
                 f"inputs" + (f", Winograd {','.join(wino)}" if wino else ""))
        base_int8 = judge(graph)
        say(f"{about}: the uncompressed graph {base_int8:.2f} %")
        if base - base_int8 > max_loss + 1e-9:
            raise ValueError(f"the uncompressed graph in int8 already loses "
                             f"{base - base_int8:.2f} points on the validation split "
                             f"({base:.2f} -> {base_int8:.2f} %), more than the "
                             f"{max_loss:g}-point budget: give a larger --max-loss (at least "
                             f"{base - base_int8:.2f}) or other calibration inputs")
    x_fit, y_fit = (data[fit], labels[fit]) if labelled else (None, None)
    soft = None if distill is None else teacher(graph, x_fit, *distill)
    opts = {"index_bits": index_bits, "prune_steps": prune_steps,
            "retrain_epochs": retrain_epochs, "init": init, "seed": seed, "distill": soft}

    curves = prune_scan_graph(graph, metric)
    names = list(curves)
    widest = dict.fromkeys(names, int(max_bits))
    cands = _candidates(graph, curves, int(max_bits), index_bits)
    tried, cache = [], {}

    def attempt(sparsity: dict):
        key = tuple(sparsity.values())
        if key not in cache:
            say(f"sparsity {_pairs(sparsity)}: pruning" + (" and retraining" if labelled
                                                           else ""))
            got = compress_graph(graph, sparsity, widest, x_fit, y_fit, **opts)
            acc = metric(got.pruned)
            tried.append({"sparsity": sparsity, "pruned_val": acc})
            if judge is not None:
                acc = tried[-1]["pruned_val_int8"] = judge(got.pruned)
            say(f"  pruned: {acc:.2f} % {'int8 ' if judge else ''}on the split (budget "
                f"{base - max_loss:.2f} %)")
            cache[key] = (got, acc)
        return cache[key]

    lo, hi = 0, len(cands) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if base - attempt(cands[mid]["sparsity"])[1] <= max_loss:
            hi = mid
        else:
            lo = mid + 1
    while True:
        chosen = cands[lo]["sparsity"]
        pruned = attempt(chosen)[0]
        drops = bits_scan_graph(pruned.pruned, metric, pruned.masks,
                                range(MIN_BITS, max_bits + 1), init, seed)
        bits = picks = pick_bits(drops, max_loss, max_bits)
        while True:
            say(f"sharing at bits {_pairs(bits)}"
                + (f", fine-tuning centroids {finetune_epochs} epochs"
                   if labelled and finetune_epochs else ""))
            final = _share(graph, pruned, chosen, bits, x_fit, y_fit, finetune_epochs, opts)
            acc = flt = metric(final.graph)
            tried.append({"sparsity": chosen, "bits": bits, "shared_val": acc})
            if judge is not None:
                acc = tried[-1]["shared_val_int8"] = judge(final.graph)
            say(f"  shared: {acc:.2f} % {'int8 ' if judge else ''}on the split")
            narrow = [n for n in names if bits[n] < max_bits]
            if base - acc <= max_loss or not narrow:
                break
            worst = max(narrow, key=lambda n: drops[n][bits[n]])
            bits = {**bits, worst: bits[worst] + 1}
        if base - acc <= max_loss or lo == len(cands) - 1:
            break
        lo += 1
    return GraphSearch(fit, val, metric.kind, base, float(max_loss), chosen, bits, final, flt,
                       curves, drops, picks, tried, None if judge is None else acc, base_int8,
                       about)


def _share(graph, pruned: CompressedGraph, sparsity, bits, x_fit, y_fit, finetune_epochs,
           opts) -> CompressedGraph:
    """``pruned`` shared at ``bits`` (codebooks fine-tuned with labels) without pruning and
    retraining again: the pruned graph goes back through
    :func:`~quantize.compress_graph.compress_graph` at its own sparsities, zero retraining
    epochs, which re-derives the same masks (its zeros are the smallest magnitudes)."""
    again = compress_graph(pruned.pruned, sparsity, bits, x_fit, y_fit,
                           **{**opts, "retrain_epochs": 0, "prune_steps": 1},
                           finetune_epochs=finetune_epochs if x_fit is not None else 0)
    if any(not np.array_equal(again.masks[k], m) for k, m in pruned.masks.items()):
        # A retrained weight that is exactly 0 ties with the pruned ones: prune afresh.
        return compress_graph(graph, sparsity, bits, x_fit, y_fit, **opts,
                              finetune_epochs=finetune_epochs if x_fit is not None else 0)
    log = {**again.log, **{k: v for k, v in pruned.log.items()
                           if k in ("float_train_accuracy", "pruned_train_accuracy")}}
    return dataclasses.replace(again, original=graph, pruned=pruned.pruned, log=log)


def format_scans(curves: dict, drops: dict, picks: dict, max_loss: float,
                 what=("of the float graph", "of the float graph")) -> str:
    """The ``--sensitivity`` table: per node its drop (points) at each sparsity, pruned
    alone, and at each width, shared alone; then each node's smallest width within
    ``max_loss``. ``what`` names the graph each scan ran on."""
    names = list(curves)
    width = max(9, *(len(n) + 2 for n in names))
    lines = [f"accuracy drop (points) {what[0]}, one node pruned at a time:",
             "  sparsity " + "".join(f"{n:>{width}}" for n in names)]
    for s in next(iter(curves.values())):
        lines.append(f"  {s:8.2f} " + "".join(f"{curves[n][s]:{width}.2f}" for n in names))
    lines += [f"accuracy drop (points) {what[1]}, one node shared at a time:",
              "  bits     " + "".join(f"{n:>{width}}" for n in names)]
    for b in next(iter(drops.values())):
        lines.append(f"  {b:8d} " + "".join(f"{drops[n][b]:{width}.2f}" for n in names))
    lines.append(f"smallest bits within {max_loss:g} points: {_pairs(picks)}")
    return "\n".join(lines)


def _pairs(d: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in d.items())
