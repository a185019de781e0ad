"""Deep Compression of a :class:`~quantize.graph.Graph`'s weight layers (``Conv2d``, depthwise
included, and ``Linear``): prune → (masked retraining) → k-means sharing → (centroid
fine-tuning), and the paper's storage accounting per layer.

Every weight is seen as the matrix the engines hold: a ``Linear`` weight as it is
(out × in), a ``Conv2d`` weight ``O × I/groups × kh × kw`` as ``O × (I/groups · kh · kw)``
(the im2col weight matrix of :mod:`quantize.lower`, transposed). Per layer:

* **pruning** keeps the ``1 - sparsity`` largest-magnitude weights
  (:func:`quantize.prune.prune_sparsity`); with training data it goes in ``prune_steps``
  steps towards the target, each followed by masked retraining
  (:func:`quantize.train_cnn.retrain`), so pruned weights stay exactly 0;
* **sharing** clusters the kept weights with 1-D k-means into a ``2**bits``-entry codebook
  whose entry 0 is 0.0 (the pruned value, which also fills long zero runs), so a layer
  takes at most ``2**bits`` distinct values, zero included (:func:`quantize.share.share_weights`);
* **trained quantization** (with training data and ``finetune_epochs``): each codebook
  entry moves by the summed gradient of its cluster (Adam), biases train too;
* **storage** (:func:`quantize.storage.layer_storage`): dense 32-bit, pruned (32-bit value
  + relative index), pruned + shared (codebook index + relative index + codebook), and
  Huffman coded, each in bits.

The data path needs a graph :mod:`quantize.train_cnn` can train (a chain of Conv2d with
``groups=1``, MaxPool2d, Relu, Flatten, Linear); without data any graph is compressed
(magnitude pruning and plain sharing), depthwise convolutions included.
"""

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from .graph import Graph, Node
from .prune import prune_sparsity
from .share import MAX_BITS, MIN_BITS, share_weights
from .storage import check_index_bits, layer_storage, totals
from .train import _Adam, _batches
from .train_cnn import accuracy, gradients, retrain

__all__ = ["CompressedGraph", "compress_graph", "weight_nodes", "per_node"]

WEIGHT_OPS = ("Conv2d", "Linear")


def weight_nodes(graph: Graph) -> list[Node]:
    """The nodes of ``graph`` that carry a weight (``Conv2d`` and ``Linear``), in order."""
    return [n for n in graph.nodes if n.op in WEIGHT_OPS]


def per_node(graph: Graph, value, what: str, default=None) -> dict:
    """``value`` (one figure for every weight node, or a dict node name → figure) as a dict
    over every weight node; nodes a dict leaves out get ``default``.

    Raises
    ------
    ValueError
        The graph has no weight node, or the dict names a node that is not in the graph or
        carries no weights.
    """
    nodes = weight_nodes(graph)
    names = [n.name for n in nodes]
    if not nodes:
        raise ValueError("the graph has no Conv2d or Linear node; nothing to compress")
    if not isinstance(value, dict):
        return dict.fromkeys(names, value)
    ops = {n.name: n.op for n in graph.nodes}
    for key in value:
        if key not in ops:
            raise ValueError(f"{what} names node {key!r}, which is not in the graph; weight "
                             f"nodes: {', '.join(names)}")
        if key not in names:
            raise ValueError(f"{what} names node {key!r} ({ops[key]}), which has no weights; "
                             f"give it for {', '.join(names)}")
    return {name: value.get(name, default) for name in names}


def _sparsities(graph, sparsity) -> dict:
    out = per_node(graph, 0.0 if sparsity is None else sparsity, "sparsity", 0.0)
    for name, s in out.items():
        if isinstance(s, bool) or not isinstance(s, int | float | np.number) or not 0 <= s < 1:
            raise ValueError(f"sparsity for node {name!r} is {s!r}; use a number in [0, 1)")
    return {k: float(v) for k, v in out.items()}


def _bits(graph, bits) -> dict:
    out = per_node(graph, bits, "bits")
    for name, b in out.items():
        if b is None:
            raise ValueError(f"bits gives no codebook width for node {name!r}; give every "
                             f"weight node one ({', '.join(out)})")
        if (isinstance(b, bool) or not isinstance(b, int | np.integer)
                or not MIN_BITS <= b <= MAX_BITS):
            raise ValueError(f"bits for node {name!r} is {b!r}; use an integer in "
                             f"{MIN_BITS}..{MAX_BITS}")
    return {k: int(v) for k, v in out.items()}


def _matrix(w: np.ndarray) -> np.ndarray:
    return w.reshape(w.shape[0], -1)


def _with_weights(graph: Graph, weights: dict, biases: dict | None = None) -> Graph:
    biases = biases or {}
    nodes = [Node(n.name, n.op, n.inputs, n.output, n.attrs,
                  {"weight": weights[n.name].reshape(n.weight.shape),
                   "bias": biases.get(n.name, n.bias)})
             if n.name in weights else n for n in graph.nodes]
    return Graph(graph.input_name, graph.input_shape, nodes)


def _schedule(steps: int) -> list[float]:
    """Fractions of the target sparsity reached after each pruning step."""
    if steps <= 4:
        return [0.5, 0.75, 0.9, 1.0][-steps:]
    return [step / steps for step in range(1, steps + 1)]


@dataclass
class CompressedGraph:
    """The result of :func:`compress_graph`.

    Members
    -------
    original, pruned, graph : Graph
        The input, the pruned (and retrained) graph, and the final graph (weights replaced
        by their shared values, pruned weights exactly 0).
    masks : dict of str to bool array
        Per weight node, the kept weights (the weight's own shape).
    shared : dict of str to SharedLayer
        Per weight node, its codebook and indices (on the ``O × rest`` matrix).
    storage : list of LayerStorage
        Per weight node, the storage accounting (on the ``O × rest`` matrix).
    ops : dict of str to str
        Per weight node, its op (``Conv2d``, ``Conv2d (depthwise)``, ``Linear``).
    log : dict
        Training accuracies after each stage when training data was given.
    """

    original: Graph
    pruned: Graph
    graph: Graph
    masks: dict
    shared: dict
    storage: list
    ops: dict
    log: dict = field(default_factory=dict)

    def totals(self) -> dict:
        """Whole-network sizes and ratios (:func:`quantize.storage.totals`)."""
        return totals(self.storage)

    def table(self) -> str:
        """Per layer: op, weight shape, weights kept, codebook bits, sizes in bits and the
        compression ratio of the Huffman-coded layer (and of pruning + sharing alone)."""
        shapes = {n.name: n.weight.shape for n in self.original.nodes if n.weight is not None}
        head = (f"{'layer':<10}{'op':<20}{'shape':<16}{'kept':>13}{'bits':>5}"
                f"{'dense':>10}{'P+Q':>9}{'Huffman':>9}{'ratio P+Q':>11}{'ratio':>8}")
        lines = [head]
        for r in self.storage:
            ratios = r.ratios()
            lines.append(f"{r.name:<10}{self.ops[r.name]:<20}"
                         f"{'x'.join(map(str, shapes[r.name])):<16}"
                         f"{f'{r.kept}/{r.weights}':>13}{r.bits:>5}{r.dense_bits:>10}"
                         f"{r.pq_bits:>9}{r.huffman_bits:>9}{ratios['pq']:>10.1f}x"
                         f"{ratios['huffman']:>7.1f}x")
        t = self.totals()
        kept = f"{t['kept']}/{t['weights']}"
        lines.append(f"{'total':<46}{kept:>13}{'':>5}"
                     f"{t['dense_bits']:>10}{t['pq_bits']:>9}{t['huffman_bits']:>9}"
                     f"{t['ratio_pq']:>10.1f}x{t['ratio_huffman']:>7.1f}x")
        return "\n".join(lines)


def compress_graph(graph: Graph, sparsity=None, bits=4, x_train=None, y_train=None, *,
                   index_bits: int = 5, prune_steps: int = 4, retrain_epochs: int = 10,
                   retrain_lr: float = 1e-3, finetune_epochs: int = 0,
                   finetune_lr: float = 1e-4, init: str = "linear", seed: int = 0,
                   progress=None, distill=None) -> CompressedGraph:
    """Deep Compression of ``graph``'s Conv2d and Linear weights (``graph`` is not modified).

    Parameters
    ----------
    graph : Graph
    sparsity : float or dict of str to float, optional
        Fraction of each layer's weights pruned, in [0, 1): one figure for every weight
        node, or per node name (nodes left out are not pruned). ``None``: no pruning.
    bits : int or dict of str to int
        Codebook bits per layer (``MIN_BITS`` .. ``MAX_BITS``), one figure or per node
        name (then every weight node needs one).
    x_train, y_train : arrays, optional
        Training inputs (``[batch, *input_shape]`` or flattened rows) and labels: prune in
        ``prune_steps`` steps with ``retrain_epochs`` of masked retraining after each, and
        fine-tune centroids for ``finetune_epochs``.
    index_bits : int
        Relative-index width of the storage accounting.
    init : str
        k-means initialisation (``linear``, ``density``, ``random``).
    progress : callable, optional
        Called with one line of text per stage.
    distill : quantize.train.Distill, optional
        A teacher's logits for ``x_train`` mixed into the retraining and fine-tuning
        targets (:func:`quantize.train_cnn.teacher`).

    Raises
    ------
    ValueError
        A sparsity outside [0, 1) or bits outside ``MIN_BITS`` .. ``MAX_BITS``, a dict
        naming a node that is not in the graph or has no weights, a graph without weight
        nodes, labels without inputs (or the reverse), or a graph the trainer cannot train
        when training data is given (one line each).
    """
    say = progress or (lambda msg: None)
    targets, widths = _sparsities(graph, sparsity), _bits(graph, bits)
    check_index_bits(index_bits)
    if prune_steps < 1:
        raise ValueError(f"prune_steps is {prune_steps}; use 1 or more")
    if (x_train is None) != (y_train is None):
        raise ValueError("give both x_train and y_train (training inputs and labels), or "
                         "neither")
    nodes = weight_nodes(graph)
    ops = {n.name: n.op + (" (depthwise)" if n.op == "Conv2d" and n.attrs["groups"] > 1
                           else "") for n in nodes}
    log = {}
    work = graph
    if x_train is not None:
        x_train = np.asarray(x_train, np.float32)
        if x_train.size % int(np.prod(graph.input_shape)) or x_train.size == 0:
            raise ValueError(f"training inputs of shape {x_train.shape} do not split into "
                             f"samples of the graph's input shape {graph.input_shape}")
        x_train = x_train.reshape(-1, *graph.input_shape)
        y_train = np.asarray(y_train, np.int64).reshape(-1)
        if len(x_train) != len(y_train):
            raise ValueError(f"{len(x_train)} training inputs but {len(y_train)} labels")
        log["float_train_accuracy"] = accuracy(graph, x_train, y_train)
    pruning = any(targets.values())
    steps = _schedule(prune_steps) if pruning and x_train is not None else [1.0]
    for step, fraction in enumerate(steps, 1):
        current = {n.name: n.weight for n in weight_nodes(work)}
        masks = {name: prune_sparsity(_matrix(w), targets[name] * fraction).reshape(w.shape)
                 for name, w in current.items()}
        work = _with_weights(work, {k: np.where(masks[k], w, np.float32(0))
                                    for k, w in current.items()})
        if x_train is not None and pruning:
            say(f"prune step {step}/{len(steps)}: "
                f"{sum(int(m.sum()) for m in masks.values())} weights kept; retraining "
                f"{retrain_epochs} epochs")
            work = retrain(work, masks, x_train, y_train, epochs=retrain_epochs, lr=retrain_lr,
                           seed=seed + step, distill=distill)
    pruned = work
    if x_train is not None:
        log["pruned_train_accuracy"] = accuracy(work, x_train, y_train)
    say("weight sharing: " + ", ".join(f"{k} {b} bits" for k, b in widths.items()))
    shared = {n.name: share_weights(_matrix(n.weight), _matrix(masks[n.name]), widths[n.name],
                                    init=init, reserve_zero=True, seed=seed)
              for n in weight_nodes(work)}
    work = _with_weights(work, {k: s.weight() for k, s in shared.items()})
    if x_train is not None:
        log["shared_train_accuracy"] = accuracy(work, x_train, y_train)
        if finetune_epochs:
            say(f"trained quantization: fine-tuning centroids {finetune_epochs} epochs")
            work = _finetune(work, shared, x_train, y_train, finetune_epochs, finetune_lr,
                             seed, distill)
            log["final_train_accuracy"] = accuracy(work, x_train, y_train)
    storage = [layer_storage(name, s.mask, s.index, s.bits, index_bits)
               for name, s in shared.items()]
    return CompressedGraph(graph, pruned, work, masks, shared, storage, ops, log)


def _finetune(graph: Graph, shared: dict, x, y, epochs, lr, seed, distill=None) -> Graph:
    """Trained quantization: each codebook entry (but entry 0, the pruned 0.0) moves by its
    cluster's summed weight gradient; biases train too."""
    rng = np.random.default_rng(seed)
    names = list(shared)
    kept = {k: np.flatnonzero(s.mask) for k, s in shared.items()}
    labels = {k: s.index.reshape(-1)[kept[k]].astype(np.int64) for k, s in shared.items()}
    biases = {n.name: n.bias.copy() for n in graph.nodes if n.name in shared}
    flat = [p for k in names for p in (shared[k].codebook, biases[k])]
    opt = _Adam(flat, lr)
    shapes = {n.name: n.weight.shape for n in graph.nodes if n.name in shared}
    with threadpool_limits(1):
        for _ in range(epochs):
            for idx in _batches(len(x), 32, rng):
                params = {k: [shared[k].weight().reshape(shapes[k]), biases[k]] for k in names}
                soft = ({} if distill is None else
                        {"teacher": distill.logits[idx], "temperature": distill.temperature,
                         "weight": distill.weight})
                _, grads = gradients(graph, x[idx], y[idx], params, **soft)
                steps = []
                for k in names:
                    dw, db = grads[k]
                    dc = np.bincount(labels[k], weights=dw.reshape(-1)[kept[k]],
                                     minlength=shared[k].codebook.size)
                    dc[0] = 0.0
                    steps += [dc.astype(np.float32), db.astype(np.float32)]
                opt.step(flat, steps)
                for k in names:
                    shared[k].codebook[0] = 0.0
    return _with_weights(graph, {k: s.weight() for k, s in shared.items()}, biases)

