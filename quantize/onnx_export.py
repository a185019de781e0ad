"""Export a graph-IR network (:mod:`quantize.graph`) to ONNX, as :mod:`quantize.onnx_import`
reads it back.

:func:`save_onnx` writes default-domain opset 13 with static per-sample shapes and a batch
dimension that is symbolic (``N``) or fixed. Every IR op maps to the ONNX ops the importer
turns back into that op, so ``load_onnx_graph(save_onnx(g, p))`` has ``g``'s nodes, names,
attributes and weights (bit for bit):

=====================  ==========================================================
IR                     ONNX
=====================  ==========================================================
``Linear``             ``Gemm`` (``transB=1``) on 1-D samples; ``MatMul`` + ``Add``
                       on (sequence × features)
``Conv2d``             ``Conv`` (``strides``, ``pads``, ``group``)
``Relu6``, ``Clip``    ``Clip`` with constant bounds (an infinite bound is left out)
``MaxPool2d``          ``MaxPool``
``AvgPool2d``          ``AveragePool`` (``count_include_pad``)
``Flatten``            ``Flatten`` (``axis=1``)
``Reshape``            ``Reshape`` to ``[0, *shape]``
``Concat``             ``Concat`` (``axis=1``)
``Gelu`` (``none``)    ``x * (1 + Erf(x / sqrt 2)) * 0.5`` (``Gelu`` is opset 20)
``Silu``               ``Mul(x, Sigmoid(x))``
``Softmax``            ``Softmax`` (``axis=-1``)
others                 the ONNX op of the same name (``Relu``, ``Add``,
                       ``GlobalAveragePool``, ``Sigmoid``, ``Tanh``)
=====================  ==========================================================

``HardSwish`` (opset 14) and the tanh approximation of ``Gelu`` have no opset-13 form that
the importer reads; they are refused. Weights are initializers named ``<node>.weight`` and
``<node>.bias``. ONNX gives ``Clip``'s bounds the input's type, so a bound float32 cannot
hold comes back rounded to float32, and ``Clip(0, inf)`` comes back as ``Relu``.
"""

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .graph import Graph

__all__ = ["save_onnx", "EXPORTABLE_OPS", "OPSET"]

OPSET = 13
EXPORTABLE_OPS = ("Linear", "Conv2d", "Relu", "Relu6", "Clip", "MaxPool2d", "AvgPool2d",
                  "GlobalAveragePool", "Add", "Flatten", "Reshape", "Concat", "Gelu",
                  "Sigmoid", "Tanh", "Silu", "Softmax")
_SAME = {"Relu": "Relu", "Add": "Add", "GlobalAveragePool": "GlobalAveragePool",
         "Sigmoid": "Sigmoid", "Tanh": "Tanh"}


def save_onnx(graph: Graph, path, batch="N") -> Path:
    """Write ``graph`` to ``path`` as an ONNX model (opset 13) that passes
    ``onnx.checker.check_model(..., full_check=True)``; returns ``path``.

    The file is written to a temporary file in the same folder and renamed into place, so
    ``path`` is either the old file or the complete new one.

    Parameters
    ----------
    graph : Graph
    path : str or Path
    batch : str or int
        The batch dimension of the input and output: a symbolic name, or a fixed size >= 1.

    Raises
    ------
    ValueError
        A node whose op has no opset-13 export (one line naming the node and its op), or a
        bad ``batch``.
    """
    if isinstance(batch, bool) or not (isinstance(batch, str) and batch
                                       or isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be a non-empty dimension name or an int >= 1, "
                         f"got {batch!r}")
    model = _Exporter(graph, batch).model
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name for the model")
    _write_atomically(path, model.SerializeToString())
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(name, 0o666 & ~mask)  # mkstemp makes 0600; give the file open()'s mode
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _Exporter:
    def __init__(self, graph: Graph, batch):
        for n in graph.nodes:
            why = self._refusal(n)
            if why:
                raise ValueError(f"node {n.name!r} ({n.op}): {why}; exportable ops: "
                                 f"{', '.join(EXPORTABLE_OPS)}")
        self.shapes = graph.shapes
        self.taken = {graph.input_name, *(n.output for n in graph.nodes)}
        self.nodes, self.inits = [], []
        for n in graph.nodes:
            getattr(self, f"_op_{n.op}", self._same)(n)
        g = helper.make_graph(
            self.nodes, "nnaccel",
            [helper.make_tensor_value_info(graph.input_name, TensorProto.FLOAT,
                                           [batch, *graph.input_shape])],
            [helper.make_tensor_value_info(graph.output, TensorProto.FLOAT,
                                           [batch, *graph.output_shape])],
            self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        self.model = helper.make_model(g, opset_imports=opsets, producer_name="nnaccel",
                                       ir_version=helper.find_min_ir_version_for(opsets))

    @staticmethod
    def _refusal(n) -> str | None:
        if n.op == "HardSwish":
            return "HardSwish is an opset-14 op; not exportable at opset 13"
        if n.op == "Gelu" and n.attrs["approximate"] != "none":
            return "the tanh approximation of Gelu has no opset-13 form the importer reads"
        if n.op not in EXPORTABLE_OPS:
            return "not exportable"
        return None

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def _init(self, base: str, value, dtype=np.float32) -> str:
        name = self._fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def _node(self, op, inputs, output, name, **attrs):
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name, **attrs))

    def _tmp(self, n, what: str) -> str:
        return self._fresh(f"{n.name}/{what}")

    def _same(self, n):
        self._node(_SAME[n.op], n.inputs, n.output, n.name)

    def _op_Linear(self, n):
        w = self._init(f"{n.name}.weight", n.weight if len(self.shapes[n.inputs[0]]) == 1
                       else n.weight.T)
        b = self._init(f"{n.name}.bias", n.bias)
        if len(self.shapes[n.inputs[0]]) == 1:
            self._node("Gemm", [n.inputs[0], w, b], n.output, n.name, transB=1)
        else:
            m = self._tmp(n, "matmul")
            self._node("MatMul", [n.inputs[0], w], m, n.name)
            self._node("Add", [m, b], n.output, f"{n.name}/add")

    def _op_Conv2d(self, n):
        w = self._init(f"{n.name}.weight", n.weight)
        b = self._init(f"{n.name}.bias", n.bias)
        self._node("Conv", [n.inputs[0], w, b], n.output, n.name,
                   kernel_shape=list(n.weight.shape[2:]), strides=list(n.attrs["stride"]),
                   pads=list(n.attrs["pads"]), group=n.attrs["groups"])

    def _clip(self, n, lo, hi):
        ins = [n.inputs[0], self._init(f"{n.name}.min", lo) if np.isfinite(lo) else "",
               self._init(f"{n.name}.max", hi) if np.isfinite(hi) else ""]
        while not ins[-1]:
            ins.pop()
        self._node("Clip", ins, n.output, n.name)

    def _op_Relu6(self, n):
        self._clip(n, 0.0, 6.0)

    def _op_Clip(self, n):
        self._clip(n, n.attrs["min"], n.attrs["max"])

    def _pool(self, n, op, **extra):
        self._node(op, n.inputs, n.output, n.name, kernel_shape=list(n.attrs["kernel"]),
                   strides=list(n.attrs["stride"]), pads=list(n.attrs["pads"]), **extra)

    def _op_MaxPool2d(self, n):
        self._pool(n, "MaxPool")

    def _op_AvgPool2d(self, n):
        self._pool(n, "AveragePool", count_include_pad=int(n.attrs["count_include_pad"]))

    def _op_Flatten(self, n):
        self._node("Flatten", n.inputs, n.output, n.name, axis=1)

    def _op_Reshape(self, n):
        shape = self._init(f"{n.name}.shape", [0, *n.attrs["shape"]], np.int64)
        self._node("Reshape", [n.inputs[0], shape], n.output, n.name)

    def _op_Concat(self, n):
        self._node("Concat", n.inputs, n.output, n.name, axis=1)

    def _op_Softmax(self, n):
        self._node("Softmax", n.inputs, n.output, n.name, axis=-1)

    def _op_Silu(self, n):
        s = self._tmp(n, "sigmoid")
        self._node("Sigmoid", n.inputs, s, f"{n.name}/sigmoid")
        self._node("Mul", [n.inputs[0], s], n.output, n.name)

    def _op_Gelu(self, n):
        x = n.inputs[0]
        d, e, a, m = (self._tmp(n, k) for k in ("div", "erf", "add", "mul"))
        self._node("Div", [x, self._init(f"{n.name}.sqrt2", math.sqrt(2.0))], d,
                   f"{n.name}/div")
        self._node("Erf", [d], e, n.name)
        self._node("Add", [e, self._init(f"{n.name}.one", 1.0)], a, f"{n.name}/add")
        self._node("Mul", [x, a], m, f"{n.name}/mul")
        self._node("Mul", [m, self._init(f"{n.name}.half", 0.5)], n.output, f"{n.name}/half")
