"""A small inference graph: typed nodes with static shapes, in topological order.

Importers (``quantize.onnx_import``) produce a :class:`Graph`; the compressor, image writer,
golden model and runtime consume it. Values are named; every node reads values produced
earlier (or the graph input) and writes one new value. Shapes are per sample: the batch
dimension is symbolic and left out (a ``N×C×H×W`` activation has shape ``(C, H, W)``).
Weights follow PyTorch's convention (``Linear`` weight out × in, ``Conv2d`` weight
O × I/groups × kh × kw), stored as float32. Batch normalization is not an op: importers fold
it into the preceding ``Linear``/``Conv2d`` (:func:`fold_batchnorm`). The semantics of every
op are in ``docs/graph-ir.md``; :meth:`Graph.forward` is their float reference.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .graph_kernels import KERNELS

__all__ = ["Node", "Graph", "OPS", "POINTWISE", "infer_shape", "fold_batchnorm"]

#: Pointwise activations: output shape = input shape.
POINTWISE = ("Relu", "Relu6", "Clip", "Gelu", "Sigmoid", "Tanh", "HardSwish", "Silu")

#: Every op: (number of inputs (None: two or more), attribute defaults, parameter names).
OPS = {
    "Linear": (1, {}, ("weight", "bias")),
    "Conv2d": (1, {"stride": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}, ("weight", "bias")),
    "Relu": (1, {}, ()),
    "Relu6": (1, {}, ()),
    "Clip": (1, {"min": -np.inf, "max": np.inf}, ()),
    "MaxPool2d": (1, {"kernel": None, "stride": (1, 1), "pads": (0, 0, 0, 0)}, ()),
    "AvgPool2d": (1, {"kernel": None, "stride": (1, 1), "pads": (0, 0, 0, 0),
                      "count_include_pad": False}, ()),
    "GlobalAveragePool": (1, {}, ()),
    "Add": (2, {}, ()),
    "Flatten": (1, {}, ()),
    "Reshape": (1, {"shape": None}, ()),
    "Concat": (None, {}, ()),
    "Gelu": (1, {"approximate": "none"}, ()),
    "Sigmoid": (1, {}, ()),
    "Tanh": (1, {}, ()),
    "HardSwish": (1, {}, ()),
    "Silu": (1, {}, ()),
    "Softmax": (1, {}, ()),
}


def _ints(where: str, key: str, value, n: int | None, low: int) -> tuple:
    """``value`` as a tuple of ``n`` (None: one or more) integers >= ``low``."""
    try:
        t = tuple(value)
        ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in t)
    except TypeError:
        t, ok = (), False
    if not ok or not t or (n is not None and len(t) != n) or any(v < low for v in t):
        raise ValueError(f"{where}: {key} must be {n or 'one or more'} integers >= {low}, "
                         f"got {value!r}")
    return tuple(int(v) for v in t)


def _check_attrs(node) -> dict:
    defaults = OPS[node.op][1]
    unknown = sorted(set(node.attrs) - set(defaults))
    if unknown:
        raise ValueError(f"node {node.name!r} ({node.op}): unknown attribute {unknown[0]!r}; "
                         f"{node.op} takes {sorted(defaults) or 'none'}")
    a = {**defaults, **node.attrs}
    where = f"node {node.name!r} ({node.op})"
    for key in ("kernel", "shape"):
        if key in a and a[key] is None:
            raise ValueError(f"node {node.name!r} ({node.op}): attribute {key!r} is required")
    if "kernel" in a:
        a["kernel"] = _ints(where, "kernel", a["kernel"], 2, 1)
    if "stride" in a:
        a["stride"] = _ints(where, "stride", a["stride"], 2, 1)
    if "pads" in a:
        a["pads"] = _ints(where, "pads (top, left, bottom, right)", a["pads"], 4, 0)
    if "shape" in a:
        a["shape"] = _ints(where, "shape", a["shape"], None, 1)
    if "groups" in a:
        a["groups"] = _ints(where, "groups", (a["groups"],), 1, 1)[0]
    if "count_include_pad" in a:
        a["count_include_pad"] = bool(a["count_include_pad"])
    if node.op == "Clip":
        try:
            lo, hi = float(a["min"]), float(a["max"])
        except (TypeError, ValueError):
            lo = hi = np.nan
        if np.isnan(lo) or np.isnan(hi) or lo > hi:
            raise ValueError(f"node {node.name!r} (Clip): needs min <= max, got {lo}, {hi}")
        a["min"], a["max"] = lo, hi
    if node.op == "Gelu" and a["approximate"] not in ("none", "tanh"):
        raise ValueError(f"node {node.name!r} (Gelu): approximate must be 'none' or 'tanh', "
                         f"got {a['approximate']!r}")
    return a


def _check_params(node) -> dict:
    names = OPS[node.op][2]
    if set(node.params) != set(names):
        raise ValueError(f"node {node.name!r} ({node.op}): parameters must be "
                         f"{list(names) or 'none'}, got {sorted(node.params)}")
    p = {k: np.asarray(v, dtype=np.float32) for k, v in node.params.items()}
    for k, v in p.items():
        if not np.all(np.isfinite(v)):
            raise ValueError(f"node {node.name!r} ({node.op}): {k} contains NaN or Inf")
    if names:
        w, b = p["weight"], p["bias"]
        rank = 2 if node.op == "Linear" else 4
        if w.ndim != rank or 0 in w.shape:
            raise ValueError(f"node {node.name!r} ({node.op}): weight must be {rank}-D and "
                             f"non-empty, got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"node {node.name!r} ({node.op}): bias has shape {b.shape}, "
                             f"expected ({w.shape[0]},)")
    return p


@dataclass(frozen=True)
class Node:
    """One operation of a :class:`Graph`.

    Members
    -------
    name : str
        Unique within the graph (``conv1``); weight-bearing nodes are named like their
        weights in the source file.
    op : str
        A key of :data:`OPS`.
    inputs : tuple of str
        Value names read (the graph input or earlier nodes' outputs).
    output : str
        The value name written.
    attrs : dict
        Op attributes, completed with the defaults of :data:`OPS` and normalized
        (tuples of ints, floats, bools).
    params : dict of str to float32 array
        ``weight`` and ``bias`` for ``Linear`` and ``Conv2d``; empty otherwise.
    shape : tuple of int or None
        Per-sample output shape, filled in by :class:`Graph` (shape inference).

    Raises
    ------
    ValueError
        Unknown op, wrong number of inputs, unknown or malformed attributes, parameters of
        the wrong shape or with NaN/Inf.
    """

    name: str
    op: str
    inputs: tuple
    output: str
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    shape: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a node needs a non-empty string name, got {self.name!r}")
        if self.op not in OPS:
            raise ValueError(f"node {self.name!r}: unknown op {self.op!r}; the IR has "
                             f"{', '.join(OPS)}")
        inputs = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
        arity = OPS[self.op][0]
        if (len(inputs) != arity) if arity else len(inputs) < 2:
            raise ValueError(f"node {self.name!r} ({self.op}): takes "
                             f"{arity or 'two or more'} input(s), got {len(inputs)}")
        if not all(isinstance(v, str) and v for v in (*inputs, self.output)):
            raise ValueError(f"node {self.name!r} ({self.op}): value names must be non-empty "
                             f"strings")
        object.__setattr__(self, "inputs", inputs)
        for key in ("attrs", "params"):
            if not isinstance(getattr(self, key) or {}, dict):
                raise ValueError(f"node {self.name!r} ({self.op}): {key} must be a dict")
            object.__setattr__(self, key, dict(getattr(self, key) or {}))
        object.__setattr__(self, "attrs", _check_attrs(self))
        object.__setattr__(self, "params", _check_params(self))

    @property
    def weight(self) -> np.ndarray | None:
        return self.params.get("weight")

    @property
    def bias(self) -> np.ndarray | None:
        return self.params.get("bias")


def _window(node, c, h, w):
    kh, kw = node.attrs["kernel"] if "kernel" in node.attrs else node.params["weight"].shape[2:]
    sh, sw = node.attrs["stride"]
    pt, pl, pb, pr = node.attrs["pads"]
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    if h + pt + pb < kh or w + pl + pr < kw:
        raise ValueError(f"node {node.name!r} ({node.op}): kernel {kh}x{kw} is larger than "
                         f"the padded input {h + pt + pb}x{w + pl + pr}")
    return oh, ow


def infer_shape(node: Node, in_shapes: list) -> tuple:
    """The per-sample output shape of ``node`` given its inputs' per-sample shapes.

    Raises
    ------
    ValueError
        The inputs do not fit the op (one line naming the node, the op and the shapes).
    """
    s = tuple(in_shapes[0])
    where = f"node {node.name!r} ({node.op})"
    if node.op in POINTWISE or node.op == "Softmax":
        return s
    if node.op == "Linear":
        n_out, n_in = node.params["weight"].shape
        if not s or s[-1] != n_in:
            raise ValueError(f"{where}: weight takes {n_in} inputs but the input has shape "
                             f"{s}")
        return s[:-1] + (n_out,)
    if node.op in ("Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAveragePool") and len(s) != 3:
        raise ValueError(f"{where}: needs a C x H x W input, got shape {s}")
    if node.op == "Conv2d":
        o, i_g = node.params["weight"].shape[:2]
        g, c = node.attrs["groups"], s[0]
        if g == 1 and i_g != c:
            raise ValueError(f"{where}: weight takes {i_g} channels but the input has {c}")
        if g != 1 and not (g == c and i_g == 1 and o % c == 0):
            raise ValueError(f"{where}: groups={g} with {c} input and {o} output channels; "
                             f"only groups=1 and depthwise (groups = input channels, output "
                             f"channels a multiple of them) are supported")
        return (o, *_window(node, *s))
    if node.op in ("MaxPool2d", "AvgPool2d"):
        kh, kw = node.attrs["kernel"]
        pt, pl, pb, pr = node.attrs["pads"]
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise ValueError(f"{where}: pads {node.attrs['pads']} must be smaller than the "
                             f"kernel {kh}x{kw}")
        return (s[0], *_window(node, *s))
    if node.op == "GlobalAveragePool":
        return (s[0], 1, 1)
    if node.op == "Add":
        if tuple(in_shapes[1]) != s:
            raise ValueError(f"{where}: adds shapes {s} and {tuple(in_shapes[1])}; both "
                             f"inputs must have the same shape")
        return s
    if node.op == "Flatten":
        return (int(np.prod(s)),)
    if node.op == "Reshape":
        if int(np.prod(node.attrs["shape"])) != int(np.prod(s)):
            raise ValueError(f"{where}: cannot reshape {s} to {node.attrs['shape']}")
        return node.attrs["shape"]
    if node.op == "Concat":
        for t in in_shapes[1:]:
            if len(t) != len(s) or tuple(t[1:]) != s[1:]:
                raise ValueError(f"{where}: concatenates shapes {s} and {tuple(t)} on the "
                                 f"channel axis; all other dimensions must agree")
        return (sum(t[0] for t in in_shapes), *s[1:])
    raise AssertionError(node.op)


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps):
    """``Linear``/``Conv2d`` weight and bias with a following batch normalization folded in.

    ``BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta`` per output channel, so the folded
    layer has ``weight * s`` and ``(bias - mean) * s + beta`` with ``s = gamma /
    sqrt(var + eps)``. Computed in float64, returned as float32.

    Raises
    ------
    ValueError
        Statistics of the wrong length, or ``var + eps`` not positive.
    """
    w, b = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    stats = [np.asarray(a, np.float64).reshape(-1) for a in (gamma, beta, mean, var)]
    if any(a.shape != (w.shape[0],) for a in stats):
        raise ValueError(f"batch normalization has {[a.size for a in stats]} statistics; "
                         f"expected {w.shape[0]} each (one per output channel)")
    gamma, beta, mean, var = stats
    if not np.all(var + eps > 0):
        raise ValueError("batch normalization has var + epsilon <= 0; it cannot be folded")
    s = gamma / np.sqrt(var + eps)
    w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    return w.astype(np.float32), ((b - mean) * s + beta).astype(np.float32)


class Graph:
    """A single-input, single-output inference graph in topological order.

    Parameters
    ----------
    input_name : str
        The graph input's value name.
    input_shape : tuple of int
        Its per-sample shape (1 to 3 dimensions, all static).
    nodes : list of Node
        In topological order; the last node's output is the graph output and every other
        node's output is read by a later node.

    Members
    -------
    nodes : tuple of Node
        With their ``shape`` filled in.
    shapes : dict of str to tuple
        Every value's per-sample shape.

    Raises
    ------
    ValueError
        Duplicate names, a value read before it is written, a dead node, a Softmax that is
        not the last node, or shapes that do not fit (one line each).
    """

    def __init__(self, input_name: str, input_shape, nodes):
        if not isinstance(input_name, str) or not input_name:
            raise ValueError(f"the graph input needs a non-empty name, got {input_name!r}")
        shape = _ints(f"graph input {input_name!r}", "shape", input_shape, None, 1)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"the graph input has per-sample shape {shape}; expected 1 to 3 "
                             f"dimensions (features, sequence x features or C x H x W)")
        if not nodes:
            raise ValueError("the graph has no nodes")
        self.input_name, self.input_shape = input_name, shape
        self.shapes = {input_name: shape}
        names, done = set(), []
        for i, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise ValueError(f"graph node {i} is a {type(node).__name__}, not a Node")
            if node.name in names:
                raise ValueError(f"two nodes are named {node.name!r}; node names must be "
                                 f"unique")
            if node.output in self.shapes:
                raise ValueError(f"node {node.name!r} ({node.op}): writes value "
                                 f"{node.output!r}, which is already defined")
            missing = [v for v in node.inputs if v not in self.shapes]
            if missing:
                raise ValueError(f"node {node.name!r} ({node.op}): reads {missing[0]!r} "
                                 f"before any node writes it (nodes must be in topological "
                                 f"order)")
            if node.op == "Softmax" and i != len(nodes) - 1:
                raise ValueError(f"node {node.name!r} (Softmax): only allowed as the graph's "
                                 f"last node")
            names.add(node.name)
            out = infer_shape(node, [self.shapes[v] for v in node.inputs])
            self.shapes[node.output] = out
            done.append(dataclasses.replace(node, shape=out))
        read = {v for node in done for v in node.inputs}
        for node in done[:-1]:
            if node.output not in read:
                raise ValueError(f"node {node.name!r} ({node.op}): its output "
                                 f"{node.output!r} is never read; remove the node")
        self.nodes = tuple(done)

    @property
    def output(self) -> str:
        return self.nodes[-1].output

    @property
    def output_shape(self) -> tuple:
        return self.nodes[-1].shape

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}")

    def describe(self) -> str:
        """One line per node: name, op, inputs and output shape."""
        lines = [f"{self.input_name}: input {self.input_shape}"]
        for n in self.nodes:
            lines.append(f"{n.name}: {n.op}({', '.join(n.inputs)}) -> {n.output} {n.shape}")
        return "\n".join(lines)

    def _run(self, x, keep: bool) -> dict:
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != self.input_shape:
            raise ValueError(f"inputs must have shape (batch, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"inputs must be real numbers, got dtype {x.dtype}")
        values = {self.input_name: x.astype(np.float64)}
        last = {v: i for i, n in enumerate(self.nodes) for v in n.inputs}
        for i, n in enumerate(self.nodes):
            values[n.output] = KERNELS[n.op](n, *[values[v] for v in n.inputs])
            if not keep:
                for v in set(n.inputs):
                    if last[v] == i:
                        del values[v]
        return values

    def forward(self, x) -> np.ndarray:
        """Float32 outputs for inputs ``x[batch, *input_shape]`` (computed in float64)."""
        return self._run(x, keep=False)[self.output].astype(np.float32)

    def activations(self, x) -> dict:
        """Every value (the input and each node's output) for inputs ``x``, as float32."""
        return {k: v.astype(np.float32) for k, v in self._run(x, keep=True).items()}
