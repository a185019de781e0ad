"""Import a trained network from ONNX into the graph IR (:mod:`quantize.graph`).

:func:`load_onnx_graph` reads opset 7 and later: ``Gemm``, ``MatMul`` with an initializer
(+ ``Add`` bias), ``Conv``, ``BatchNormalization`` (folded into the preceding Conv/Gemm/
MatMul), ``Relu``, ``Clip`` (``Relu6`` when 0..6), ``MaxPool``, ``AveragePool``,
``GlobalAveragePool``, ``Add`` (residual), ``Flatten``, ``Reshape`` (constant shape),
``Concat`` on channels, ``Gelu`` and its ``Erf`` pattern, ``Sigmoid``, ``Tanh``,
``HardSwish``, ``Mul(x, Sigmoid(x))`` (Silu), ``Softmax`` as the last node, ``Identity``,
``Dropout`` and ``Constant``. Anything else is refused with one ``ValueError`` line naming
the node, its op and what is supported. External tensor data is read only from a plain file
in the model's folder (``quantize.loaders._onnx_tensor``).
"""

import math
from pathlib import Path

import numpy as np

from .graph import Graph, Node, fold_batchnorm, infer_shape
from .loaders import _check_exists, _onnx_tensor

__all__ = ["load_onnx_graph", "read_onnx", "SUPPORTED_OPS", "MIN_OPSET"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Conv", "BatchNormalization", "Relu", "Clip", "MaxPool",
                 "AveragePool", "GlobalAveragePool", "Add", "Flatten", "Reshape", "Concat",
                 "Gelu", "Sigmoid", "Tanh", "HardSwish", "Softmax", "Identity", "Dropout",
                 "Constant")
#: The oldest default-domain opset read (Clip's min/max were attributes before opset 11).
MIN_OPSET = 7
_SIMPLE = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "HardSwish": "HardSwish"}
_OUTPUT = object()  # the graph output, as a consumer
_INPUTS = {"Gemm": 2, "MatMul": 2, "Conv": 2, "BatchNormalization": 5, "Add": 2, "Reshape": 2}


def load_onnx_graph(path) -> Graph:
    """The :class:`~quantize.graph.Graph` of the ONNX model at ``path``.

    Raises
    ------
    ValueError
        An unreadable model, an unsupported op or attribute, a dynamic shape (one line naming
        the node and its op).
    OSError
        ``path`` does not exist or is a directory.
    """
    path = Path(path)
    _check_exists(path)
    return _Importer(path).graph


def read_onnx(path: Path):
    """The ``onnx.ModelProto`` in ``path`` (external data left on disk); a file onnx cannot
    parse is a one-line ``ValueError``."""
    import onnx
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable ONNX model "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                         ) from None


class _Importer:
    def __init__(self, path: Path):
        from onnx import numpy_helper
        self.path = path
        model = read_onnx(path)
        versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions or versions[0] < MIN_OPSET:
            raise ValueError(f"{path}: ONNX opset {versions[0] if versions else 'missing'}; "
                             f"re-export with opset {MIN_OPSET} or later (17 recommended)")
        self.opset = versions[0]
        g = model.graph
        self.consts = {t.name: _onnx_tensor(path, t, numpy_helper) for t in g.initializer}
        self.alias, self.nodes, self.shapes, self.producer = {}, [], {}, {}
        self._input(g)
        if len(g.output) != 1:
            raise ValueError(f"{path}: the graph has {len(g.output)} outputs; expected one")
        self._prepass(g)
        self.output = self._resolve(g.output[0].name)
        self.consumers = self._consumers()
        for item in self.plan:
            self._convert(*item)
        if self.output not in self.producer:
            raise ValueError(f"{path}: the graph output {g.output[0].name!r} is not computed "
                             f"by any supported node")
        try:
            self.graph = Graph(self.input_name, self.input_shape, self._live())
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # Errors and small helpers.
    def _label(self, node) -> str:
        return node.name or (node.output[0] if node.output else node.op_type)

    def _refuse(self, node, what: str):
        raise ValueError(f"{self.path}: node {self._label(node)!r} ({node.op_type}): {what}")

    def _resolve(self, v: str) -> str:
        while v in self.alias:
            v = self.alias[v]
        return v

    def _attrs(self, node) -> dict:
        from onnx import helper
        a = {}
        for attr in node.attribute:
            v = helper.get_attribute_value(attr)
            a[attr.name] = v.decode() if isinstance(v, bytes) else v
        return a

    def _const(self, node, v: str, what: str) -> np.ndarray:
        if v not in self.consts:
            self._refuse(node, f"{what} {v!r} must be an initializer or Constant")
        return self.consts[v]

    def _scalar(self, v: str):
        c = self.consts.get(v)
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None

    def _act(self, node, v: str) -> tuple:
        if v in self.consts:
            self._refuse(node, f"input {v!r} is a constant; {node.op_type} is supported only "
                               f"on activations (constant subgraphs must be folded at export)")
        if v not in self.shapes:
            self._refuse(node, f"reads {v!r}, which no supported node produces")
        return self.shapes[v]

    # Graph input, aliases, fused patterns.
    def _input(self, g):
        from onnx import TensorProto
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected one graph input, found {len(inputs)}")
        vi = inputs[0]
        t = vi.type.tensor_type
        if t.elem_type != TensorProto.FLOAT:
            raise ValueError(f"{self.path}: graph input {vi.name!r} is not float32; export "
                             f"the model with a float input")
        dims = list(t.shape.dim) if t.HasField("shape") else None
        if not dims or not 2 <= len(dims) <= 4:
            raise ValueError(f"{self.path}: graph input {vi.name!r} has "
                             f"{len(dims) if dims else 'no'} dimensions; expected batch + "
                             f"1 to 3 static dimensions")
        for k, d in enumerate(dims[1:], 1):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise ValueError(f"{self.path}: graph input {vi.name!r} has a dynamic "
                                 f"dimension {k} ({d.dim_param or '?'}); only the batch "
                                 f"dimension may be dynamic: export with a fixed input size")
        self.batch = dims[0].dim_value if dims[0].HasField("dim_value") else None
        self.input_name, self.input_shape = vi.name, tuple(d.dim_value for d in dims[1:])
        self.shapes[vi.name] = self.input_shape

    def _prepass(self, g):
        from onnx import numpy_helper
        nodes = list(g.node)
        for node in nodes:
            if node.domain not in ("", "ai.onnx"):
                self._refuse(node, f"op of domain {node.domain!r} is not supported; supported:"
                                   f" {', '.join(SUPPORTED_OPS)}")
            a = self._attrs(node)
            if node.op_type in ("Constant", "Identity", "Dropout") and (
                    not node.output or not node.output[0]
                    or node.op_type != "Constant" and (not node.input or not node.input[0])):
                self._refuse(node, "needs an input and an output")
            if node.op_type == "Constant":
                if "value" in a:
                    self.consts[node.output[0]] = numpy_helper.to_array(a["value"])
                elif a.keys() & {"value_float", "value_floats", "value_int", "value_ints"}:
                    (v,) = a.values()
                    self.consts[node.output[0]] = np.asarray(v)
                else:
                    self._refuse(node, f"only tensor and numeric Constants are supported, "
                                       f"got {sorted(a)}")
            elif node.op_type in ("Identity", "Dropout"):
                if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
                    mode = self._scalar(node.input[2])
                    if mode is None or mode:
                        self._refuse(node, "training_mode must be a constant false; "
                                           "export the model in eval mode")
                src = self._resolve(node.input[0])
                if src == node.output[0]:  # would make the alias chain a cycle
                    self._refuse(node, "reads its own output")
                self.alias[node.output[0]] = src
                if src in self.consts:
                    self.consts[node.output[0]] = self.consts[src]
        self.plan, absorbed, fused = [], set(), {}
        by_output = {o: i for i, n in enumerate(nodes) for o in n.output if o}
        uses = {}
        for i, n in enumerate(nodes):
            for v in n.input if n.op_type not in ("Constant", "Identity", "Dropout") else ():
                uses.setdefault(self._resolve(v), []).append(i)
        uses.setdefault(self._resolve(g.output[0].name), []).append(-1)
        for i, n in enumerate(nodes):
            if n.op_type == "Erf":
                try:
                    m = self._match_gelu(nodes, i, by_output, uses)
                except IndexError:  # a malformed node in the pattern: refused on its own
                    m = None
                if m:
                    x, last, used = m
                    absorbed |= used
                    fused[last] = ("Gelu", (x,), {"approximate": "none"}, self._label(n))
        for i, n in enumerate(nodes):
            if n.op_type == "Mul" and i not in absorbed and len(n.input) == 2:
                m = self._match_silu(nodes, i, by_output, uses)
                if m is not None:
                    absorbed.add(m)
                    fused[i] = ("Silu", (self._resolve(nodes[m].input[0]),), {},
                                self._label(n))
        for i, n in enumerate(nodes):
            if i in fused:
                self.plan.append((n, *fused[i]))
            elif i not in absorbed and n.op_type not in ("Constant", "Identity", "Dropout"):
                self.plan.append((n, None, None, None, None))
            elif n.op_type == "Dropout" and any(o and o in uses for o in n.output[1:]):
                self._refuse(n, "its mask output is read; only inference Dropout is supported")

    def _producer(self, nodes, by_output, v, op):
        i = by_output.get(v)
        return i if i is not None and nodes[i].op_type == op else None

    def _only_use(self, uses, v, i) -> bool:
        return uses.get(v, []) == [i]

    def _near(self, v, target) -> bool:
        s = self._scalar(self._resolve(v))
        return s is not None and math.isclose(s, target, rel_tol=1e-4)

    def _other(self, node, v):
        ins = [self._resolve(u) for u in node.input]
        return ins[1 - ins.index(v)] if len(ins) == 2 and v in ins else None

    def _match_gelu(self, nodes, e, by_output, uses):
        """``x*0.5*(1+Erf(x/sqrt2))`` (either multiplication order, Div or Mul by 1/sqrt2):
        returns ``(x, index of the last node, absorbed node indices)`` or None."""
        r = self._resolve
        d_in = r(nodes[e].input[0])
        d = by_output.get(d_in)
        if d is None or not self._only_use(uses, d_in, e):
            return None
        dn = nodes[d]
        if dn.op_type == "Div" and self._near(dn.input[1], math.sqrt(2)):
            x = r(dn.input[0])
        elif dn.op_type == "Mul":
            ins = [r(v) for v in dn.input]
            k = [j for j, v in enumerate(ins) if self._near(v, 1 / math.sqrt(2))]
            if not k:
                return None
            x = ins[1 - k[0]]
        else:
            return None
        e_out = r(nodes[e].output[0])
        if len(uses.get(e_out, [])) != 1 or uses[e_out][0] < 0:
            return None
        a = uses[e_out][0]
        if nodes[a].op_type != "Add" or not self._near(self._other(nodes[a], e_out), 1.0):
            return None
        a_out = r(nodes[a].output[0])
        if len(uses.get(a_out, [])) != 1 or uses[a_out][0] < 0:
            return None
        m1 = uses[a_out][0]
        other = self._other(nodes[m1], a_out)
        if nodes[m1].op_type != "Mul" or other is None:
            return None
        m1_out = r(nodes[m1].output[0])
        if other == x:  # (x * (1 + erf)) * 0.5
            m2 = uses.get(m1_out, [-1])
            if len(m2) != 1 or m2[0] < 0 or nodes[m2[0]].op_type != "Mul" \
                    or not self._near(self._other(nodes[m2[0]], m1_out), 0.5):
                return None
            return x, m2[0], {d, e, a, m1, m2[0]}
        h = by_output.get(other)  # (x * 0.5) * (1 + erf)
        if h is None or nodes[h].op_type != "Mul" or not self._only_use(uses, other, m1) \
                or not self._near(self._other(nodes[h], x), 0.5):
            return None
        return x, m1, {d, e, a, h, m1}

    def _match_silu(self, nodes, i, by_output, uses):
        """``Mul(x, Sigmoid(x))``: the Sigmoid's index, or None."""
        ins = [self._resolve(v) for v in nodes[i].input]
        for k, v in enumerate(ins):
            s = self._producer(nodes, by_output, v, "Sigmoid")
            if s is not None and nodes[s].input and self._resolve(nodes[s].input[0]) == ins[1 - k] \
                    and self._only_use(uses, v, i):
                return s
        return None

    def _consumers(self) -> dict:
        c = {}
        for node, op, ins, _, _ in self.plan:
            for v in ins if op else [self._resolve(u) for u in node.input if u]:
                c.setdefault(v, []).append(node)
        c.setdefault(self.output, []).append(_OUTPUT)
        return c

    def _live(self) -> list:
        """The nodes the output depends on, in order."""
        need, keep = {self.output}, []
        for node in reversed(self.nodes):
            if node.output in need:
                need |= set(node.inputs)
                keep.append(node)
        return keep[::-1]

    # Conversion.
    def _emit(self, onnx_node, op, inputs, output, attrs=None, params=None, name=None):
        name = name or self._label(onnx_node)
        taken = {n.name for n in self.nodes}
        base, k = name, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        try:
            node = Node(name, op, tuple(inputs), output, attrs or {}, params or {})
            shape = infer_shape(node, [self.shapes[v] for v in node.inputs])
        except ValueError as e:
            self._refuse(onnx_node, str(e).removeprefix(f"node {name!r} ({op}): "))
        self.producer[output] = len(self.nodes)
        self.nodes.append(node)
        self.shapes[output] = shape

    def _convert(self, node, op, ins, attrs, name):
        out = node.output[0] if node.output else ""
        if op is not None:
            self._act(node, ins[0])
            return self._emit(node, op, ins, out, attrs, name=name)
        need = _INPUTS.get(node.op_type, 1)
        if len(node.input) < need or not all(node.input[:need]) or not out:
            self._refuse(node, f"needs {need} input(s) and an output, got {len(node.input)} "
                               f"and {len(node.output)}")
        if any(o and o in self.consumers for o in node.output[1:]):
            self._refuse(node, "only its first output is supported, but another is read")
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            self._refuse(node, self._unsupported_why(node.op_type))
        ins = [self._resolve(v) if v else "" for v in node.input]
        handler(node, ins, out, self._attrs(node))

    def _unsupported_why(self, op: str) -> str:
        if op == "Erf":
            return "Erf is supported only inside GELU, x*0.5*(1+Erf(x/sqrt(2)))"
        if op in ("Mul", "Div"):
            return f"{op} is supported only inside GELU (x*0.5*(1+Erf(x/sqrt(2)))) and Silu " \
                   f"(x*Sigmoid(x))"
        if op in ("Shape", "Gather", "Unsqueeze", "Squeeze", "NonZero", "Expand"):
            return f"{op} computes dynamic shapes, which are not supported; export with " \
                   f"static shapes (Flatten instead of x.view(x.size(0), -1))"
        return f"unsupported op; supported: {', '.join(SUPPORTED_OPS)}"

    def _op_Relu(self, node, ins, out, a):
        self._act(node, ins[0])
        self._emit(node, "Relu", ins[:1], out)

    def _op_simple(self, node, ins, out, a):
        self._act(node, ins[0])
        self._emit(node, _SIMPLE[node.op_type], ins[:1], out)

    _op_Sigmoid = _op_Tanh = _op_HardSwish = _op_simple

    def _op_Gelu(self, node, ins, out, a):
        self._act(node, ins[0])
        self._emit(node, "Gelu", ins[:1], out, {"approximate": a.get("approximate", "none")})

    def _op_Clip(self, node, ins, out, a):
        self._act(node, ins[0])
        lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        for k, v in ((1, "min"), (2, "max")):
            if len(ins) > k and ins[k]:
                s = self._scalar(ins[k])
                if s is None:
                    self._refuse(node, f"{v} must be a constant scalar")
                lo, hi = (s, hi) if k == 1 else (lo, s)
        if (lo, hi) == (0.0, 6.0):
            self._emit(node, "Relu6", ins[:1], out)
        elif (lo, hi) == (0.0, np.inf):
            self._emit(node, "Relu", ins[:1], out)
        else:
            self._emit(node, "Clip", ins[:1], out, {"min": lo, "max": hi})

    def _weight_name(self, node, w: str) -> str:
        return w[: -len(".weight")] if w.endswith(".weight") else self._label(node)

    def _op_Gemm(self, node, ins, out, a):
        s = self._act(node, ins[0])
        if a.get("transA", 0):
            self._refuse(node, "transA=1 is not supported (the batch must be A's first axis)")
        if len(s) != 1:
            self._refuse(node, f"needs a 2-D input (batch x features), got per-sample {s}")
        b = self._const(node, ins[1], "B").astype(np.float64)
        if b.ndim != 2:
            self._refuse(node, f"B must be 2-D, got shape {b.shape}")
        w = (b if a.get("transB", 0) else b.T) * a.get("alpha", 1.0)
        bias = np.zeros(w.shape[0])
        if len(ins) > 2 and ins[2]:
            c = self._const(node, ins[2], "C")
            if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, w.shape[0]):
                self._refuse(node, f"C of shape {c.shape} is not a per-output bias")
            bias = np.broadcast_to(c.reshape(-1), (w.shape[0],)) * a.get("beta", 1.0)
        self._emit(node, "Linear", ins[:1], out, params={"weight": w, "bias": bias},
                   name=self._weight_name(node, ins[1]))

    def _op_MatMul(self, node, ins, out, a):
        if ins[0] in self.consts or ins[1] not in self.consts:
            self._refuse(node, "only x @ W with W a 2-D initializer is supported")
        self._act(node, ins[0])
        w = self.consts[ins[1]]
        if w.ndim != 2:
            self._refuse(node, f"W must be 2-D, got shape {w.shape}")
        self._emit(node, "Linear", ins[:1], out,
                   params={"weight": w.T, "bias": np.zeros(w.shape[1])},
                   name=self._weight_name(node, ins[1]))

    def _foldable(self, node, x: str, what: str):
        """The Linear/Conv2d node producing ``x`` if ``node`` may fold into it."""
        i = self.producer.get(x)
        target = self.nodes[i] if i is not None else None
        users = self.consumers.get(x, [])
        if target is None or target.op not in ("Linear", "Conv2d") \
                or len(users) != 1 or users[0] is not node:
            self._refuse(node, f"{what} only directly after a Conv/Gemm/MatMul whose "
                               f"output nothing else reads")
        return i, target

    def _replace(self, i, output, weight, bias):
        old = self.nodes[i]
        self.nodes[i] = Node(old.name, old.op, old.inputs, output, old.attrs,
                             {"weight": weight, "bias": bias})
        del self.producer[old.output]
        self.producer[output] = i
        self.shapes[output] = self.shapes[old.output]

    def _op_Add(self, node, ins, out, a):
        if len(ins) != 2:
            self._refuse(node, "needs two inputs")
        const = [v for v in ins if v in self.consts]
        if len(const) == 2:
            self._refuse(node, "adds two constants (fold them at export)")
        if const:
            x = ins[1 - ins.index(const[0])]
            self._act(node, x)
            i, t = self._foldable(node, x, "adding a constant is supported as a bias")
            c, n = self.consts[const[0]], t.weight.shape[0]
            per_channel = (n, 1, 1) if t.op == "Conv2d" else (n,)
            if c.size != n or c.shape[-len(per_channel):] != per_channel \
                    or c.ndim > len(self.shapes[x]) + 1:
                self._refuse(node, f"constant of shape {c.shape} is not a bias of {n} "
                                   f"{'channels' if t.op == 'Conv2d' else 'outputs'}")
            self._replace(i, out, t.weight, t.bias + c.reshape(-1))
            return
        for v in ins:
            self._act(node, v)
        if self.shapes[ins[0]] != self.shapes[ins[1]]:
            self._refuse(node, f"adds shapes {self.shapes[ins[0]]} and {self.shapes[ins[1]]};"
                               f" only same-shape (residual) Add is supported")
        self._emit(node, "Add", ins, out)

    def _op_BatchNormalization(self, node, ins, out, a):
        if a.get("training_mode", 0) or not a.get("spatial", 1):
            self._refuse(node, "only inference-mode, spatial batch normalization is supported")
        self._act(node, ins[0])
        i, t = self._foldable(node, ins[0], "batch normalization is folded, so it is supported")
        if t.op == "Linear" and len(self.shapes[ins[0]]) != 1:
            self._refuse(node, "normalizes the sequence axis of a MatMul output; cannot fold")
        gamma, beta, mean, var = (self._const(node, v, "statistic") for v in ins[1:5])
        try:
            w, b = fold_batchnorm(t.weight, t.bias, gamma, beta, mean, var,
                                  a.get("epsilon", 1e-5))
        except ValueError as e:
            self._refuse(node, str(e))
        self._replace(i, out, w, b)

    def _spatial(self, node, a, hw, kernel, stride):
        if a.get("ceil_mode", 0):
            self._refuse(node, "ceil_mode=1 is not supported; use ceil_mode=0 or explicit pads")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self._refuse(node, f"dilations={list(a['dilations'])} are not supported; only "
                               f"dilation 1")
        auto = a.get("auto_pad", "NOTSET")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(kernel) != 2 or len(pads) != 4 or len(stride) != 2:
            self._refuse(node, f"only 2-D kernels are supported, got kernel {list(kernel)}")
        if auto in ("NOTSET", ""):
            return tuple(pads)
        if any(pads):
            self._refuse(node, f"auto_pad={auto} together with explicit pads")
        if auto == "VALID":
            return (0, 0, 0, 0)
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            self._refuse(node, f"auto_pad={auto!r}; supported: NOTSET, VALID, SAME_UPPER, "
                               f"SAME_LOWER")
        total = [max((-(-n // s) - 1) * s + k - n, 0) for n, k, s in zip(hw, kernel, stride,
                                                                         strict=True)]
        small = [t // 2 for t in total]
        begin = small if auto == "SAME_UPPER" else [t - h for t, h in zip(total, small,
                                                                           strict=True)]
        return (begin[0], begin[1], total[0] - begin[0], total[1] - begin[1])

    def _op_Conv(self, node, ins, out, a):
        s = self._act(node, ins[0])
        w = self._const(node, ins[1], "weight")
        if w.ndim != 4 or len(s) != 3:
            self._refuse(node, f"only 2-D convolutions (N x C x H x W) are supported; weight "
                               f"{w.shape}, per-sample input {s}")
        g = a.get("group", 1)
        if g != 1 and not (g == s[0] and w.shape[1] == 1 and w.shape[0] % g == 0):
            self._refuse(node, f"group={g} with {s[0]} input channels is a grouped "
                               f"convolution; only group=1 and depthwise (group = input "
                               f"channels) are supported")
        if list(a.get("kernel_shape", w.shape[2:])) != list(w.shape[2:]):
            self._refuse(node, f"kernel_shape {a['kernel_shape']} does not match the weight")
        stride = tuple(a.get("strides", (1, 1)))
        pads = self._spatial(node, a, s[1:], w.shape[2:], stride)
        bias = self._const(node, ins[2], "bias") if len(ins) > 2 and ins[2] \
            else np.zeros(w.shape[0])
        self._emit(node, "Conv2d", ins[:1], out, {"stride": stride, "pads": pads, "groups": g},
                   {"weight": w, "bias": bias}, name=self._weight_name(node, ins[1]))

    def _pool(self, node, ins, out, a, op, extra):
        s = self._act(node, ins[0])
        if len(s) != 3:
            self._refuse(node, f"needs an N x C x H x W input, got per-sample {s}")
        kernel = tuple(a.get("kernel_shape", ()))
        stride = tuple(a.get("strides", (1,) * len(kernel)))
        pads = self._spatial(node, a, s[1:], kernel, stride)
        self._emit(node, op, ins[:1], out,
                   {"kernel": kernel, "stride": stride, "pads": pads, **extra})

    def _op_MaxPool(self, node, ins, out, a):
        self._pool(node, ins, out, a, "MaxPool2d", {})

    def _op_AveragePool(self, node, ins, out, a):
        self._pool(node, ins, out, a, "AvgPool2d",
                   {"count_include_pad": bool(a.get("count_include_pad", 0))})

    def _op_GlobalAveragePool(self, node, ins, out, a):
        self._act(node, ins[0])
        self._emit(node, "GlobalAveragePool", ins[:1], out)

    def _axis(self, node, a, default, rank) -> int:
        axis = a.get("axis", default)
        return axis + rank if axis < 0 else axis

    def _op_Flatten(self, node, ins, out, a):
        s = self._act(node, ins[0])
        if self._axis(node, a, 1, len(s) + 1) != 1:
            self._refuse(node, f"axis={a['axis']}; only axis=1 (keep the batch) is supported")
        self._emit(node, "Flatten", ins[:1], out)

    def _op_Reshape(self, node, ins, out, a):
        s = self._act(node, ins[0])
        t = [int(v) for v in self._const(node, ins[1], "shape").reshape(-1)]
        if a.get("allowzero", 0) and 0 in t:
            self._refuse(node, "allowzero=1 with a zero in the shape")
        if len(t) < 2 or t.count(-1) > 1:
            self._refuse(node, f"target shape {t} must keep the batch first and have at most "
                               f"one -1")
        if t[0] > 0 and not (self.batch is not None and t[0] == self.batch):
            self._refuse(node, f"target shape {t} fixes the batch at {t[0]}; use 0 or -1 first")
        rest = [s[k] if v == 0 and k < len(s) else v for k, v in enumerate(t[1:])]
        size, known = int(np.prod(s)), int(np.prod([v for v in rest if v != -1]))
        if -1 in rest:
            if known == 0 or size % known:
                self._refuse(node, f"cannot reshape {s} to {t}")
            rest[rest.index(-1)] = size // known
        if any(v <= 0 for v in rest) or int(np.prod(rest)) != size:
            self._refuse(node, f"cannot reshape per-sample {s} to {t} (the batch must stay "
                               f"first)")
        if len(rest) == 1:
            self._emit(node, "Flatten", ins[:1], out)
        else:
            self._emit(node, "Reshape", ins[:1], out, {"shape": tuple(rest)})

    def _op_Concat(self, node, ins, out, a):
        rank = len(self._act(node, ins[0])) + 1
        if "axis" not in a or self._axis(node, a, None, rank) != 1:
            self._refuse(node, f"axis={a.get('axis')}; only axis=1 (channels) is supported")
        for v in ins:
            self._act(node, v)
        self._emit(node, "Concat", ins, out)

    def _op_Softmax(self, node, ins, out, a):
        rank = len(self._act(node, ins[0])) + 1
        users = self.consumers.get(out, [])
        if len(users) != 1 or users[0] is not _OUTPUT:
            self._refuse(node, "Softmax is supported only as the graph's last node")
        if self._axis(node, a, -1 if self.opset >= 13 else 1, rank) != rank - 1:
            self._refuse(node, f"axis={a.get('axis')}; only the last axis is supported")
        self._emit(node, "Softmax", ins[:1], out)

