"""Import an ONNX model quantized by onnxruntime as the int8 graph the runtime executes.

:func:`load_onnx_qdq` reads a model written by ``onnxruntime.quantization.quantize_static``
(int8 activations, int8 weights per tensor or per output channel) into a
:class:`~quantize.graph_quant.QuantGraph` that keeps the model's quantization: every
tensor's scale and zero point, the int8 weights, the int32 biases. Both formats:

* **QDQ**: ``QuantizeLinear``/``DequantizeLinear`` pairs around float ops; a weight is an
  int8 initializer behind a ``DequantizeLinear``, a bias an int32 one at scale
  ``s_x · s_w``. A float op between a ``DequantizeLinear`` of its inputs and the
  ``QuantizeLinear`` of its output is one int8 layer; a ``Relu``/``Clip`` in between
  becomes its output clamp.
* **QOperator**: ``QLinearConv``, ``QLinearMatMul``, ``QGemm``, ``QLinearAdd``,
  ``QLinearGlobalAveragePool`` (the last three ``com.microsoft``), and
  ``MaxPool``/``Flatten``/``Reshape`` on int8 tensors.

=======================  ==================  ===========================================
ONNX (QDQ / QOperator)   runs                arithmetic
=======================  ==================  ===========================================
Conv / QLinearConv       engine (Conv2d)     requantized with :data:`ROUNDING`
Gemm, MatMul / QGemm,    engine (Linear)     same
QLinearMatMul
Relu, Clip               the layer's clamp   (or a host clamp after a non-GEMM op)
MaxPool, Flatten,        host                codes unchanged (input and output quantized
Reshape (flattening)                         alike)
Add / QLinearAdd         host                TFLite's int8 ADD
GlobalAveragePool /      host                TFLite's int8 MEAN, parameters chosen so
QLinearGlobalAveragePool                     that it rounds once (:func:`_mean_params`)
=======================  ==================  ===========================================

onnxruntime requantizes in float (MLAS: ``float(acc) · (s_x·s_w/s_y)`` in float32, rounded
half to even); the engine multiplies by a Q0.31 multiplier (:func:`quantize.int8.
quantize_multiplier` of the same ratio in double) and rounds once, ties upward (``single``).
The two differ where the exact value lies within float32 error of a half step, or on an
exact tie: on the test models at most 2 of 27,970 output bytes, never by more than one step
(docs/onnx-qdq.md; the ``double`` and ``ruy_x86`` modes, which round twice, 76 to 1,156).

Refused, in one ``ValueError`` line naming the node and its op: any op outside the table,
``AveragePool``/``QLinearAveragePool`` (onnxruntime rounds the window mean half to even,
the runtime's int8 pool is TFLite's), uint8 activations (quantize with
``activation_type=QuantType.QInt8``), int16/int4 types, weights that are not symmetric int8
per tensor or per output channel, a float bias or one at a scale other than ``s_x · s_w``,
a float op whose output is not requantized, a pool or reshape that changes the
quantization, and the attributes the float importer refuses (dilations, ``ceil_mode``,
``auto_pad``, ``transA``, ``alpha``/``beta`` ≠ 1).
"""

import math
from pathlib import Path

import numpy as np

from .graph import Graph, Node, infer_shape
from .graph_image import graph_config, write_graph_image
from .graph_quant import QLayer, QParams, QuantGraph, add_params
from .int8 import quantize_multiplier
from .loaders import _check_exists, _onnx_tensor
from .lower import conv_weight_matrix, depthwise_weight_matrices, lower
from .onnx_import import read_onnx
from .tflite_import import compress_tflite

__all__ = ["load_onnx_qdq", "is_quantized_onnx", "write_onnx_qdq_image", "SUPPORTED_OPS",
           "ROUNDING"]

SUPPORTED_OPS = ("QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "MatMul", "Relu",
                 "Clip", "MaxPool", "GlobalAveragePool", "Add", "Flatten", "Reshape",
                 "Identity", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd",
                 "QLinearGlobalAveragePool")
#: The requantization rounding (``hw.systolic.config.ROUNDING_MODES``) closest to
#: onnxruntime's float requantization on the test models (docs/onnx-qdq.md).
ROUNDING = "single"
#: Ops that mark a model as quantized.
_QUANT_OPS = ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm")
_INT8, _UINT8, _INT32 = np.int8, np.uint8, np.int32
#: Ops refused with a reason of their own.
_REFUSED = ("AveragePool", "QLinearAveragePool")


def is_quantized_onnx(path) -> bool:
    """Whether the ONNX model at ``path`` holds QuantizeLinear or QLinear*/QGemm nodes."""
    import onnx
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return any(n.op_type in _QUANT_OPS for n in model.graph.node)


def load_onnx_qdq(path) -> QuantGraph:
    """The int8 graph of the onnxruntime-quantized ONNX model at ``path``.

    Raises
    ------
    ValueError
        Not a readable ONNX model, or one the runtime cannot run (one line naming the node
        and its op, and what is supported).
    OSError
        ``path`` does not exist or is a directory.
    """
    path = Path(path)
    _check_exists(path)
    return _Importer(path).qgraph


def write_onnx_qdq_image(model, out_dir, *, rows: int = 8, cols: int = 8, sparsity=None,
                         bits=None, index_bits: int = 5, force: bool = False) -> dict:
    """Import ``model`` (:func:`load_onnx_qdq`), keep its int8 weights or prune/share them
    in place (:func:`quantize.tflite_import.compress_tflite`) and write the graph image for
    a ``rows × cols`` systolic engine to ``out_dir``; return the manifest. Its input and
    output are the model's own int8 tensors (``nnaccel run --raw``)."""
    qgraph = load_onnx_qdq(model)
    kept = compress_tflite(qgraph, sparsity, bits, index_bits=index_bits)
    kept.log["source"] = "onnx-qdq"
    config = graph_config(qgraph, rows, cols)
    return write_graph_image(kept, qgraph, config, out_dir, source=str(model), force=force)


def _mean_params(ratio: float, count: int) -> tuple[int, int]:
    """``(multiplier, shift)`` for :func:`sim.golden.host_ops.global_avg_pool` that make it
    round once: ``sum · ratio / count`` as one ``SaturatingRoundingDoublingHighMul`` with no
    rounding right shift after it. TFLite's own parameters (the normalized multiplier of
    ``ratio``, ``1/count`` folded in by a right shift) round twice, which put 10 % of a test
    model's outputs one step from onnxruntime's single float rounding."""
    e = count.bit_length() - 1             # the host op's exponent for ``count``
    factor = ratio / count
    right = 0
    while factor * 2.0 ** (31 - right) * count / 2 ** e >= 2**31 - 1:
        right += 1
    target = round(factor * 2.0 ** (31 - right))
    multiplier = -(-(target * count) // 2**e)       # (multiplier << e) // count == target
    if not 0 < target or right + e > 30:
        raise ValueError(f"a mean over {count} values at scale ratio {ratio} is outside the "
                         f"host op's range")
    return multiplier, right + e


class _Value:
    """An int8 tensor as the runtime holds it: value name and its parameters."""

    def __init__(self, name: str, params: QParams):
        self.name, self.params = name, params


class _Pending:
    """A float op's output waiting for the QuantizeLinear that gives it its parameters:
    ``finish(out_name, params, clamp)`` emits the layer; ``clamp`` the float bounds of
    the Relu/Clip nodes read in between."""

    def __init__(self, node, finish, accepts_clamp: bool):
        self.node, self.finish, self.accepts_clamp = node, finish, accepts_clamp
        self.clamp = (-math.inf, math.inf)


class _Importer:
    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper
        self.path = path
        model = read_onnx(path)
        g = model.graph
        self.consts = {t.name: _onnx_tensor(path, t, numpy_helper) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and n.output:
                self.consts[n.output[0]] = numpy_helper.to_array(
                    onnx.helper.get_attribute_value(n.attribute[0]))
        self.q, self.deq, self.cdq, self.pending = {}, {}, {}, {}
        self.nodes, self.layers, self.params, self.names = [], [], {}, set()
        self.labels = set()
        self._input(g)
        for node in g.node:
            if node.op_type == "Constant":
                continue
            if node.op_type not in SUPPORTED_OPS and node.op_type not in _REFUSED:
                self._refuse(node, f"not supported; supported: {', '.join(SUPPORTED_OPS)}")
            getattr(self, f"_op_{node.op_type}")(node, list(node.input), node.output[0],
                                                 self._attrs(node))
        self.qgraph = self._finish(g)

    # Helpers.
    def _refuse(self, node, what: str):
        label = node.name or (node.output[0] if node.output else node.op_type)
        raise ValueError(f"{self.path}: node {label!r} ({node.op_type}): {what}")

    @staticmethod
    def _attrs(node) -> dict:
        from onnx import helper
        a = {}
        for attr in node.attribute:
            v = helper.get_attribute_value(attr)
            a[attr.name] = v.decode() if isinstance(v, bytes) else v
        return a

    def _unique(self, name: str, taken=None) -> str:
        taken = self.names if taken is None else taken
        base, k = name, 1
        while name in taken:
            name, k = f"{base}#{k}", k + 1
        taken.add(name)
        return name

    def _label(self, node, out_name: str) -> str:
        """A unique IR node name: the ONNX node's, else its output's."""
        return self._unique(node.name or out_name, self.labels)

    def _const(self, node, v: str, what: str) -> np.ndarray:
        if v not in self.consts:
            self._refuse(node, f"{what} {v!r} must be an initializer")
        return self.consts[v]

    def _qparams(self, node, s: str, zp: str | None) -> QParams:
        """One activation scale and int8 zero point."""
        scale = self._const(node, s, "scale")
        z = self._const(node, zp, "zero point") if zp else np.zeros((), _UINT8)
        if z.dtype == _UINT8:
            self._refuse(node, f"uint8 activations ({zp or 'no zero point'}); quantize with "
                               f"activation_type=QuantType.QInt8 (int8 activations)")
        if z.dtype != _INT8:
            self._refuse(node, f"zero point {zp!r} is {z.dtype}; only int8 activations")
        if scale.size != 1 or z.size != 1:
            self._refuse(node, f"activation {s!r} has {scale.size} scales; an int8 activation "
                               f"needs one scale and zero point")
        sc = float(scale.reshape(-1)[0])
        if not (math.isfinite(sc) and sc > 0):
            self._refuse(node, f"scale {s!r} is {sc}")
        return QParams(sc, int(z.reshape(-1)[0]))

    def _read(self, node, v: str) -> _Value:
        """The int8 value behind a DequantizeLinear output (QDQ)."""
        if v in self.deq:
            return self.deq[v]
        what = ("the float graph input, which no QuantizeLinear reads: not a quantized "
                "model" if v == self.input_name else
                "a float op's output that is not requantized" if v in self.pending else
                "a constant" if v in self.consts or v in self.cdq else "not an int8 tensor")
        self._refuse(node, f"input {v!r} is {what}; QDQ ops read DequantizeLinear outputs")

    def _read_q(self, node, v: str, s: str, zp: str) -> _Value:
        """The int8 value ``v`` (QOperator), checked against the scale and zero point the
        node gives it."""
        if v not in self.q:
            self._refuse(node, f"input {v!r} is not an int8 tensor a supported node computes")
        x = self.q[v]
        p = self._qparams(node, s, zp)
        if p != x.params:
            self._refuse(node, f"reads {v!r} at scale {p.scale}, zero point {p.zero_point}; "
                               f"it was written at {x.params.scale}, {x.params.zero_point}")
        return x

    def _node(self, node: Node):
        try:
            self.shapes[node.output] = infer_shape(node, [self.shapes[v] for v in node.inputs])
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}") from None
        self.nodes.append(node)

    def _new(self, name: str, params: QParams) -> _Value:
        v = _Value(self._unique(name), params)
        self.params[v.name] = params
        return v

    def _layer(self, name, op, kind, inputs, out: _Value, p, fused=()):
        self.layers.append(QLayer(name, op, kind, tuple(v.name for v in inputs), out.name,
                                  None, None, fused, None, p))

    def _input(self, g):
        from onnx import TensorProto
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected one graph input, found {len(inputs)}")
        vi = inputs[0]
        t = vi.type.tensor_type
        dims = list(t.shape.dim) if t.HasField("shape") else []
        shape = tuple(d.dim_value for d in dims[1:])
        if len(dims) not in (2, 4) or any(d <= 0 for d in shape):
            raise ValueError(f"{self.path}: graph input {vi.name!r} needs a static per-sample "
                             f"shape [batch, features] or [batch, C, H, W]")
        if t.elem_type != TensorProto.FLOAT:
            raise ValueError(f"{self.path}: graph input {vi.name!r} is "
                             f"{TensorProto.DataType.Name(t.elem_type)}; expected float32 "
                             f"quantized by a QuantizeLinear (the input's scale and zero "
                             f"point)")
        self.input_name, self.input_shape = self._unique(vi.name), shape
        self.shapes = {vi.name: shape}
        self.input = None

    # Quantize / dequantize.
    def _op_QuantizeLinear(self, node, ins, out, a):
        p = self._qparams(node, ins[1], ins[2] if len(ins) > 2 else None)
        x = ins[0]
        if x == self.input_name:
            if self.input is not None:
                if p != self.input.params:
                    self._refuse(node, "quantizes the graph input a second time, differently")
                self.q[out] = self.input
                return
            self.input = _Value(x, p)
            self.params[x] = p
            self.q[out] = self.input
        elif x in self.pending:
            pend = self.pending.pop(x)
            self.q[out] = pend.finish(x, p, pend.clamp)
        elif x in self.deq and self.deq[x].params == p:
            self.q[out] = self.deq[x]        # Q(DQ(v)) at v's own parameters
        else:
            self._refuse(node, f"quantizes {x!r}, which is not the graph input nor the output "
                               f"of a supported float op (a requantization Q(DQ(v)) at other "
                               f"parameters is not supported)")

    def _op_DequantizeLinear(self, node, ins, out, a):
        x = ins[0]
        if x in self.consts:
            q = self.consts[x]
            s = self._const(node, ins[1], "scale").astype(np.float64)
            z = (self._const(node, ins[2], "zero point") if len(ins) > 2 and ins[2]
                 else np.zeros(1, q.dtype))
            self.cdq[out] = (q, s.reshape(-1), z.reshape(-1), a.get("axis", 1), node)
            return
        if x not in self.q:
            self._refuse(node, f"dequantizes {x!r}, which no supported node computes")
        v = self.q[x]
        p = self._qparams(node, ins[1], ins[2] if len(ins) > 2 else None)
        if p != v.params:
            self._refuse(node, f"dequantizes {x!r} at other parameters than it was quantized")
        self.deq[out] = v

    def _op_Identity(self, node, ins, out, a):
        for table in (self.q, self.deq, self.cdq):
            if ins[0] in table:
                table[out] = table[ins[0]]
                return
        self._refuse(node, f"input {ins[0]!r} is not an int8 tensor or its DequantizeLinear")

    # Weights and biases.
    def _weights(self, node, w: str, n: int, axis: int, qop=None) -> tuple:
        """int8 weights and per-output-channel float scales (``n`` of them)."""
        if qop is None:
            if w not in self.cdq:
                self._refuse(node, f"weights {w!r} are not an int8 initializer behind a "
                                   f"DequantizeLinear")
            q, s, z, ax, _ = self.cdq[w]
        else:
            q = self._const(node, w, "weights")
            s = self._const(node, qop[0], "weight scale").astype(np.float64).reshape(-1)
            z = self._const(node, qop[1], "weight zero point").reshape(-1)
            ax = axis
        if q.dtype != _INT8:
            self._refuse(node, f"weights {w!r} are {q.dtype}; the engine needs int8 weights "
                               f"(weight_type=QuantType.QInt8)")
        if s.size not in (1, n) or (s.size > 1 and ax % q.ndim != axis):
            self._refuse(node, f"weights {w!r} have {s.size} scales on axis {ax}; the engine "
                               f"holds one per tensor or one per output channel ({n} on axis "
                               f"{axis})")
        if np.any(z != 0):
            self._refuse(node, f"weights {w!r} have nonzero zero points; the engine needs "
                               f"symmetric int8 weights")
        return q.astype(np.int64), np.broadcast_to(s, (n,)).astype(np.float64)

    def _bias(self, node, b: str | None, n: int, s_x: float, w_scale, qop: bool):
        if not b:
            return np.zeros(n, np.int64)
        if qop:
            c = self._const(node, b, "bias")
        else:
            if b not in self.cdq:
                self._refuse(node, f"bias {b!r} is not an int32 initializer behind a "
                                   f"DequantizeLinear (quantize_static writes one)")
            c, s, z, _, _ = self.cdq[b]
            expect = (np.float32(s_x) * w_scale.astype(np.float32)).astype(np.float64)
            if np.any(z != 0) or not np.allclose(np.broadcast_to(s, (n,)), expect,
                                                 rtol=1e-6, atol=0):
                self._refuse(node, f"bias {b!r} is not at scale s_x * s_w with zero point 0")
        if c.dtype != _INT32 or c.size != n:
            self._refuse(node, f"bias {b!r} must be {n} int32 values, got {c.dtype} "
                               f"{list(c.shape)}")
        return c.reshape(-1).astype(np.int64)

    # The engine's layers.
    def _gemm(self, node, op_ir, x: _Value, q, w_scale, bias, attrs, name=None):
        """A pending GEMM layer (QDQ) or, given ``name``/``params``, its finish."""
        def finish(out_name, p_out: QParams, clamp):
            out = self._new(out_name, p_out)
            mult = [quantize_multiplier(x.params.scale * float(s) / p_out.scale)
                    for s in w_scale]
            lo, hi = self._clamp_codes(clamp, p_out)
            shape = (-1,) + (1,) * (q.ndim - 1)
            wf = (q * w_scale.reshape(shape)).astype(np.float32)
            label = self._label(node, out_name)
            self._node(Node(label, op_ir, (x.name,), out.name, attrs,
                                   {"weight": wf, "bias": bias * x.params.scale * w_scale}))
            flat = q.reshape(q.shape[0], -1)
            groups = attrs.get("groups", 1)
            mats = ([conv_weight_matrix(flat)] if groups == 1
                    else depthwise_weight_matrices(flat, groups))
            self._layer(label, op_ir, "gemm", [x], out, {
                "weights": mats, "weight_scale": w_scale, "bias": bias,
                "multiplier": np.array([m for m, _ in mult], np.int64),
                "shift": np.array([s for _, s in mult], np.int64),
                "input_zero_point": x.params.zero_point,
                "output_zero_point": p_out.zero_point, "act_min": lo, "act_max": hi,
                "rounding": ROUNDING})
            return out
        return finish

    @staticmethod
    def _clamp_codes(clamp, p: QParams) -> tuple[int, int]:
        def code(f):
            return p.zero_point + int(np.round(np.float32(f) / np.float32(p.scale)))
        lo, hi = clamp
        return (max(-128, code(lo)) if math.isfinite(lo) else -128,
                min(127, code(hi)) if math.isfinite(hi) else 127)

    def _pend(self, node, out, finish, accepts_clamp=False):
        self.pending[out] = _Pending(node, finish, accepts_clamp)

    def _conv_attrs(self, node, a, w_shape, c) -> dict:
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            self._refuse(node, f"auto_pad={a['auto_pad']} is not supported; use explicit pads")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self._refuse(node, f"dilations={list(a['dilations'])}: only dilation 1")
        if len(w_shape) != 4:
            self._refuse(node, f"only 2-D convolutions, got weights {list(w_shape)}")
        groups = a.get("group", 1)
        if groups not in (1, c) or (groups > 1 and w_shape[1] != 1):
            self._refuse(node, f"group={groups}: only plain or depthwise convolutions")
        return {"stride": tuple(a.get("strides", [1, 1])),
                "pads": tuple(a.get("pads", [0, 0, 0, 0])), "groups": groups}

    def _op_Conv(self, node, ins, out, a, qop=None):
        x = self._read_q(node, *ins[:3]) if qop else self._read(node, ins[0])
        w_name = ins[3] if qop else ins[1]
        w = (self._const(node, w_name, "weights") if qop else
             self.cdq[w_name][0] if w_name in self.cdq else None)
        if w is None or w.ndim != 4:
            self._refuse(node, f"weights {w_name!r} must be a 4-D int8 initializer"
                               f"{'' if qop else ' behind a DequantizeLinear'}")
        q, w_scale = self._weights(node, w_name, w.shape[0], 0,
                                   (ins[4], ins[5]) if qop else None)
        shape = self.shapes[x.name]
        if len(shape) != 3:
            self._refuse(node, f"input {x.name!r} is not an image (shape {list(shape)})")
        attrs = self._conv_attrs(node, a, q.shape, shape[0])
        b = (ins[8] if len(ins) > 8 else None) if qop else (ins[2] if len(ins) > 2 else None)
        bias = self._bias(node, b, q.shape[0], x.params.scale, w_scale, bool(qop))
        finish = self._gemm(node, "Conv2d", x, q, w_scale, bias, attrs)
        return finish if qop else self._pend(node, out, finish, True)

    def _linear(self, node, x, w_name, trans_b, b, qop):
        w = self._const(node, w_name, "weights") if qop else self.cdq.get(
            w_name, (np.zeros((0, 0)),))[0]
        if w.ndim != 2:
            self._refuse(node, f"weights {w_name!r} must be 2-D, got {list(w.shape)}")
        n = w.shape[0] if trans_b else w.shape[1]
        q, w_scale = self._weights(node, w_name, n, 0 if trans_b else 1, qop)
        q = q if trans_b else q.T
        bias = self._bias(node, b, n, x.params.scale, w_scale, bool(qop))
        return self._gemm(node, "Linear", x, q, w_scale, bias, {})

    def _check_gemm(self, node, a):
        if a.get("transA", 0):
            self._refuse(node, "transA=1 is not supported (the batch must be A's first axis)")
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            self._refuse(node, "alpha and beta other than 1 are not supported")

    def _op_Gemm(self, node, ins, out, a):
        self._check_gemm(node, a)
        x = self._read(node, ins[0])
        finish = self._linear(node, x, ins[1], a.get("transB", 0),
                              ins[2] if len(ins) > 2 else None, None)
        self._pend(node, out, finish, True)

    def _op_MatMul(self, node, ins, out, a):
        x = self._read(node, ins[0])
        self._pend(node, out, self._linear(node, x, ins[1], 0, None, None), True)

    def _emit_q(self, out, finish, p_out):
        self.q[out] = finish(out, p_out, (-math.inf, math.inf))

    def _op_QLinearConv(self, node, ins, out, a):
        finish = self._op_Conv(node, ins, out, a, qop=True)
        self._emit_q(out, finish, self._qparams(node, ins[6], ins[7]))

    def _op_QGemm(self, node, ins, out, a):
        self._check_gemm(node, a)
        if len(ins) < 8 or not ins[7]:
            self._refuse(node, "QGemm without y_scale has a float output; only int8 outputs")
        x = self._read_q(node, *ins[:3])
        finish = self._linear(node, x, ins[3], a.get("transB", 0), ins[6] or None,
                              (ins[4], ins[5]))
        self._emit_q(out, finish, self._qparams(node, ins[7], ins[8] if len(ins) > 8 else None))

    def _op_QLinearMatMul(self, node, ins, out, a):
        x = self._read_q(node, *ins[:3])
        finish = self._linear(node, x, ins[3], 0, None, (ins[4], ins[5]))
        self._emit_q(out, finish, self._qparams(node, ins[6], ins[7]))

    # Clamps.
    def _op_Relu(self, node, ins, out, a):
        self._clamp(node, ins[0], out, 0.0, math.inf)

    def _op_Clip(self, node, ins, out, a):
        lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
        for i, v in enumerate(ins[1:3]):
            if v:
                c = self._const(node, v, "bound")
                if c.size != 1:
                    self._refuse(node, f"bound {v!r} is not a scalar")
                lo, hi = (float(c.reshape(-1)[0]), hi) if i == 0 else (lo, float(c.item()))
        self._clamp(node, ins[0], out, lo, hi)

    def _clamp(self, node, v, out, lo, hi):
        if v in self.pending and self.pending[v].accepts_clamp:
            pend = self.pending.pop(v)
            pend.clamp = (max(pend.clamp[0], lo), min(pend.clamp[1], hi))
            self.pending[out] = pend
            return
        x = self._read(node, v)

        def finish(out_name, p_out, clamp):
            if p_out != x.params:
                self._refuse(node, "requantizes; a clamp after a non-GEMM op must keep its "
                                   "input's quantization")
            y = self._new(out_name, p_out)
            lo_c, hi_c = self._clamp_codes((max(lo, clamp[0]), min(hi, clamp[1])), p_out)
            label = self._label(node, out_name)
            self._node(Node(label, "Clip", (x.name,), y.name,
                                   {"min": float(lo), "max": float(hi)}))
            self._layer(label, "Clip", "clamp", [x], y, {"act_min": lo_c, "act_max": hi_c})
            return y
        self._pend(node, out, finish)

    # Host ops.
    def _same_params(self, node, x: _Value, out_name, p_out, op_ir, kind, p, attrs=None):
        if p_out != x.params:
            self._refuse(node, f"output quantized at scale {p_out.scale}, zero point "
                               f"{p_out.zero_point}, the input at {x.params.scale}, "
                               f"{x.params.zero_point}; {op_ir} must keep the quantization")
        y = self._new(out_name, p_out)
        label = self._label(node, out_name)
        self._node(Node(label, op_ir, (x.name,), y.name, attrs or {}))
        self._layer(label, op_ir, kind, [x], y, p)
        return y

    def _pool_attrs(self, node, a) -> dict:
        if a.get("ceil_mode", 0):
            self._refuse(node, "ceil_mode=1 is not supported; use explicit pads")
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            self._refuse(node, f"auto_pad={a['auto_pad']} is not supported; use explicit pads")
        if any(d != 1 for d in a.get("dilations", [1, 1])) or len(a["kernel_shape"]) != 2:
            self._refuse(node, "only 2-D pools without dilation")
        if a.get("storage_order", 0):
            self._refuse(node, "storage_order=1 is not supported")
        return {"kernel": tuple(a["kernel_shape"]), "stride": tuple(a.get("strides", [1, 1])),
                "pads": tuple(a.get("pads", [0, 0, 0, 0]))}

    def _unary(self, node, ins, out, make):
        """A host op on one int8 input: QOperator when it reads an int8 tensor directly,
        else QDQ (pending its QuantizeLinear)."""
        if ins[0] in self.q:
            x = self.q[ins[0]]
            self.q[out] = make(x)(out, x.params, None)
        else:
            x = self._read(node, ins[0])
            self._pend(node, out, make(x))

    def _op_MaxPool(self, node, ins, out, a):
        attrs = self._pool_attrs(node, a)
        if len(node.output) > 1 and node.output[1]:
            self._refuse(node, "the Indices output is not supported")
        self._unary(node, ins, out, lambda x: lambda o, p, _: self._same_params(
            node, x, o, p, "MaxPool2d", "maxpool", dict(attrs), attrs))

    def _op_AveragePool(self, node, ins, out, a):
        self._refuse(node, "not supported: onnxruntime rounds the window mean half to even "
                           "in float, the runtime's int8 average pool is TFLite's (halves "
                           "away from zero on the codes), 38 % of a test model's output bytes "
                           "differed; use MaxPool or GlobalAveragePool")

    _op_QLinearAveragePool = _op_AveragePool

    def _mean(self, node, x, out_name, p_out):
        y = self._new(out_name, p_out)
        shape = self.shapes[x.name]
        if len(shape) != 3:
            self._refuse(node, f"input {x.name!r} is not an image (shape {list(shape)})")
        m, s = _mean_params(x.params.scale / p_out.scale, shape[1] * shape[2])
        label = self._label(node, out_name)
        self._node(Node(label, "GlobalAveragePool", (x.name,), y.name))
        self._layer(label, "GlobalAveragePool", "mean", [x], y,
                    {"input_zero_point": x.params.zero_point,
                     "output_zero_point": p_out.zero_point, "multiplier": m, "shift": s})
        return y

    def _op_GlobalAveragePool(self, node, ins, out, a):
        x = self._read(node, ins[0])
        self._pend(node, out, lambda o, p, _: self._mean(node, x, o, p))

    def _op_QLinearGlobalAveragePool(self, node, ins, out, a):
        if a.get("channels_last", 0):
            self._refuse(node, "channels_last=1 is not supported")
        x = self._read_q(node, *ins[:3])
        self.q[out] = self._mean(node, x, out, self._qparams(node, ins[3], ins[4]))

    def _flatten(self, node, x, out_name, p_out):
        return self._same_params(node, x, out_name, p_out, "Flatten", "reshape", {})

    def _op_Flatten(self, node, ins, out, a):
        if a.get("axis", 1) != 1:
            self._refuse(node, f"axis={a['axis']}: only axis=1 (batch first)")
        self._unary(node, ins, out, lambda x: lambda o, p, _: self._flatten(node, x, o, p))

    def _op_Reshape(self, node, ins, out, a):
        shape = [int(d) for d in self._const(node, ins[1], "shape").reshape(-1)]
        x = self.q.get(ins[0]) or self.deq.get(ins[0])
        size = int(np.prod(self.shapes[x.name])) if x is not None else None
        if len(shape) != 2 or not (shape[1] in (-1, size) or shape[0] in (0, -1)):
            self._refuse(node, f"reshape to {shape}: only flattening to [batch, features] "
                               f"(shape [0, -1], [-1, F] or [N, -1])")
        self._unary(node, ins, out, lambda x: lambda o, p, _: self._flatten(node, x, o, p))

    def _add(self, node, a_v, b_v, out_name, p_out, clamp):
        y = self._new(out_name, p_out)
        lo, hi = self._clamp_codes(clamp, p_out)
        label = self._label(node, out_name)
        self._node(Node(label, "Add", (a_v.name, b_v.name), y.name))
        self._layer(label, "Add", "add", [a_v, b_v], y,
                    {**add_params(a_v.params, b_v.params, p_out), "act_min": lo,
                     "act_max": hi})
        return y

    def _op_Add(self, node, ins, out, a):
        a_v, b_v = self._read(node, ins[0]), self._read(node, ins[1])
        self._pend(node, out, lambda o, p, c: self._add(node, a_v, b_v, o, p, c), True)

    def _op_QLinearAdd(self, node, ins, out, a):
        a_v = self._read_q(node, *ins[:3])
        b_v = self._read_q(node, *ins[3:6])
        self.q[out] = self._add(node, a_v, b_v, out, self._qparams(node, ins[6], ins[7]),
                                (-math.inf, math.inf))

    # The graph.
    def _finish(self, g) -> QuantGraph:
        if self.input is None:
            raise ValueError(f"{self.path}: the graph input {self.input_name!r} is never "
                             f"quantized (no QuantizeLinear reads it): not a quantized model")
        if self.pending:
            v, pend = next(iter(self.pending.items()))
            self._refuse(pend.node, f"output {v!r} is never requantized (no QuantizeLinear "
                                    f"reads it); every op must have an int8 output")
        if len(g.output) != 1:
            raise ValueError(f"{self.path}: the graph has {len(g.output)} outputs; expected "
                             f"one")
        name = g.output[0].name
        out = self.deq.get(name) or self.q.get(name)
        if out is None or out is self.input:
            raise ValueError(f"{self.path}: the graph output {name!r} is not the "
                             f"DequantizeLinear (or int8 output) of a supported op")
        try:
            graph = Graph(self.input_name, self.input_shape, self.nodes)
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}") from None
        nodes = {n.name: n for n in graph.nodes}
        for layer in self.layers:
            layer.node = nodes[layer.name]
            layer.shape = layer.node.shape
            layer.in_shape = graph.shapes[layer.inputs[0]]
            if layer.kind == "gemm":
                lower(layer.node, layer.in_shape)       # refuses what the engine cannot place
        return QuantGraph(graph, self.layers, self.params, out.name, False)
