"""Import a fully-integer TFLite model as the int8 graph the runtime executes.

:func:`load_tflite` reads a ``.tflite`` file with the ``tflite`` flatbuffer schema package
into a :class:`~quantize.graph_quant.QuantGraph` (and its float
:class:`~quantize.graph.Graph`, weights dequantized) that keeps the model's own integer
arithmetic: every tensor's scale and zero point, per-channel int8 weights, int32 biases,
fused RELU/RELU6/RELU_N1_TO_1 clamps, and per layer the requantization rounding of the
kernel LiteRT runs (``path``):

=====================  ===================  =============================================
op                     runs                 ``path="reference"`` / ``"optimized"``
=====================  ===================  =============================================
FULLY_CONNECTED        engine (Linear)      rounding ``single`` / ``ruy_x86``
CONV_2D                engine (Conv2d)      rounding ``double`` / ``ruy_x86``
DEPTHWISE_CONV_2D      engine (Conv2d, dw)  rounding ``double`` / ``ruy_x86``
ADD                    host                 TFLite's int8 ADD (both paths)
MAX_POOL_2D            host                 (both)
AVERAGE_POOL_2D        host                 (both)
CONCATENATION          host                 channels, equal scales (both)
RESHAPE                host                 flattening NHWC → features
LOGISTIC, TANH         host or engine table 256-entry table (both)
SOFTMAX (last)         host                 LiteRT's int8 softmax: gemmlowp fixed point /
                                            float32 table (:mod:`sim.golden.softmax`)
=====================  ===================  =============================================

Layout: TFLite is NHWC, the runtime NCHW; a 4-D ``[1, H, W, C]`` tensor is the runtime's
``(C, H, W)``. A RESHAPE (or a FULLY_CONNECTED) that flattens one reads it in NHWC order:
the importer flattens in NCHW order and permutes the next FULLY_CONNECTED's weight columns
to match, so the arithmetic is unchanged.

Refused, in one ``ValueError`` line naming the op (its index) and the tensor: a float model
(float input, output or activation), int16 activations, an op outside the table, weights
that are not symmetric int8 (per tensor or per output channel), fused activations other
than the clamps, dilations, broadcasting, and a flattened tensor read by anything but a
FULLY_CONNECTED.
"""

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.golden.softmax import softmax_params

from .compress import parse_sparsity
from .compress_graph import per_node
from .graph import Graph, Node
from .graph_image import graph_config, write_graph_image
from .graph_quant import QLayer, QParams, QuantGraph, add_params, lut_table
from .int8 import quantize_multiplier, round_half_away
from .loaders import _check_exists
from .lower import conv_weight_matrix, depthwise_weight_matrices, lower
from .prune import prune_sparsity
from .share import share_weights
from .storage import layer_storage

__all__ = ["load_tflite", "raw_inputs", "raw_outputs", "KeptWeights", "compress_tflite",
           "write_tflite_image", "SUPPORTED_OPS", "PATHS", "ROUNDING"]

SUPPORTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D",
                 "AVERAGE_POOL_2D", "RESHAPE", "CONCATENATION", "LOGISTIC", "TANH", "SOFTMAX")
#: LiteRT's kernel sets: the reference op resolver, the default (optimized) one.
PATHS = ("reference", "optimized")
#: Per path and engine op, the rounding mode (``hw.systolic.config.ROUNDING_MODES``) of the
#: kernel LiteRT runs: the reference FULLY_CONNECTED rounds once, the reference convolutions
#: twice; the optimized ones are ruy's x86 kernels.
ROUNDING = {"reference": {"Linear": "single", "Conv2d": "double"},
            "optimized": {"Linear": "ruy_x86", "Conv2d": "ruy_x86"}}
#: Softmax kernel per path (:func:`sim.golden.softmax.int8_softmax`).
SOFTMAX_METHOD = {"reference": "fixed_point", "optimized": "float_table"}

_INT8, _INT32, _INT16, _FLOAT32 = 9, 2, 7, 0
_TYPES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 7: "INT16", 9: "INT8",
          10: "FLOAT64", 17: "INT4"}
_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def load_tflite(file, path: str = "reference") -> QuantGraph:
    """The int8 graph of the fully-integer TFLite model ``file``, with the arithmetic of
    LiteRT's ``path`` kernels (``"reference"`` or ``"optimized"``).

    Raises
    ------
    ValueError
        Not a readable .tflite, or a model the runtime cannot run bit for bit (one line
        naming the op and tensor).
    OSError
        ``file`` does not exist or is a directory.
    """
    if path not in PATHS:
        raise ValueError(f"path={path!r}: use one of {', '.join(PATHS)}")
    file = Path(file)
    _check_exists(file)
    try:
        return _Importer(file, path).qgraph
    except (struct.error, TypeError, IndexError, ZeroDivisionError, OverflowError,
            AttributeError, UnicodeDecodeError) as e:     # a corrupt flatbuffer's offsets
        raise ValueError(f"{file}: not a readable .tflite model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None


def raw_inputs(qgraph: QuantGraph, q) -> np.ndarray:
    """Float inputs for :func:`quantize.graph_run.run_graph` from int8 tensors ``q`` at the
    graph input's own scale and zero point, so that the run quantizes them back to exactly
    ``q``. Images may come as TFLite holds them, ``N × H × W × C``, or as the runtime does,
    ``N × C × H × W`` (when both fit, ``C = H = W``, the runtime's).

    Raises
    ------
    ValueError
        ``q`` is not int8 or fits neither shape (one line).
    """
    q = np.asarray(q)
    if q.size == 0 or not np.issubdtype(q.dtype, np.integer) or q.min() < -128 or q.max() > 127:
        raise ValueError(f"raw inputs must be a non-empty array of int8 codes (-128..127), got "
                         f"{q.dtype} {list(q.shape)}")
    shape = tuple(qgraph.graph.input_shape)
    if q.shape[1:] != shape:
        if len(shape) == 3 and q.ndim == 4 and q.shape[1:] == (*shape[1:], shape[0]):
            q = q.transpose(0, 3, 1, 2)
        else:
            nhwc = f" or N x {shape[1]} x {shape[2]} x {shape[0]}" if len(shape) == 3 else ""
            raise ValueError(f"raw inputs must have shape N x {' x '.join(map(str, shape))}"
                             f"{nhwc}, got {list(q.shape)}")
    p = qgraph.input_params
    return (q.astype(np.float64) - p.zero_point) * p.scale


def raw_outputs(y, nhwc: bool = True) -> np.ndarray:
    """A run's int8 ``output`` as int8; images ``N × H × W × C`` as TFLite holds them when
    ``nhwc`` (else the runtime's ``N × C × H × W``)."""
    y = np.asarray(y).astype(np.int8)
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 and nhwc else y


@dataclass
class KeptWeights:
    """What :func:`compress_tflite` did to the weight layers, in the shape the graph-image
    writer reads (``storage``, ``ops``, ``log``): the Deep Compression accounting of each
    layer's int8 weights (8-bit codes when not shared)."""

    storage: list
    ops: dict
    log: dict = field(default_factory=dict)


def compress_tflite(qgraph: QuantGraph, sparsity=None, bits=None, *, index_bits: int = 5,
                    init: str = "linear", seed: int = 0) -> KeptWeights:
    """Keep the model's int8 weights (``qgraph`` unchanged) or, when asked, prune
    (``sparsity``: one fraction, per node name, or the text ``0.5`` / ``fc1=0.5,...``) and
    share (``bits``: codebook bits, one width or per node name) them in place: pruning and
    k-means run on the dequantized weights and the result is requantized at each channel's
    own scale, so every scale, zero point, bias and multiplier stays the model's.

    Raises
    ------
    ValueError
        Bad sparsities, bits or node names (one line).
    """
    layers = [la for la in qgraph.layers if la.kind == "gemm"]
    if isinstance(sparsity, str):
        sparsity = parse_sparsity(sparsity, [la.name for la in layers])
    targets = per_node(qgraph.graph, 0.0 if sparsity is None else sparsity, "sparsity", 0.0)
    widths = per_node(qgraph.graph, bits, "bits") if bits is not None else {}
    storage, ops = [], {}
    for layer in layers:
        name, p = layer.name, layer.p
        q = np.concatenate([np.asarray(w).T for w in p["weights"]], axis=0).astype(np.int64)
        scale = np.asarray(p["weight_scale"], np.float64)[:, None]
        w = (q * scale).astype(np.float32)
        s = targets[name]
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s < 1:
            raise ValueError(f"sparsity for node {name!r} is {s!r}; use a number in [0, 1)")
        mask = prune_sparsity(w, s) if s else np.ones(q.shape, bool)
        b = widths.get(name)
        if b is not None:
            shared = share_weights(w, mask, b, init=init, reserve_zero=True, seed=seed)
            q = np.clip(round_half_away(shared.weight() / scale), -127, 127).astype(np.int64)
            index = shared.index
        else:
            q = np.where(mask, q, 0)
            index = q + 128
        storage.append(layer_storage(name, mask, index, b or 8, index_bits))
        groups = layer.node.attrs.get("groups", 1)
        p["weights"] = (depthwise_weight_matrices(q, layer.in_shape[0]) if groups > 1
                        else [conv_weight_matrix(q)])
        ops[name] = layer.op + (" (depthwise)" if groups > 1 else "")
    log = {"source": "tflite", "pruned": sparsity is not None, "shared": bits is not None}
    return KeptWeights(storage, ops, log)


def write_tflite_image(model, out_dir, *, rows: int = 8, cols: int = 8,
                       path: str = "reference", sparsity=None, bits=None,
                       index_bits: int = 5, force: bool = False) -> dict:
    """Import ``model`` (:func:`load_tflite`), keep or compress its weights
    (:func:`compress_tflite`) and write the graph image for a ``rows × cols`` systolic
    engine to ``out_dir``; return the manifest. Its input and output are the model's own
    int8 tensors (``nnaccel run --raw``)."""
    qgraph = load_tflite(model, path)
    kept = compress_tflite(qgraph, sparsity, bits, index_bits=index_bits)
    kept.log["path"] = path
    config = graph_config(qgraph, rows, cols)
    return write_graph_image(kept, qgraph, config, out_dir, source=str(model), force=force)


class _Value:
    """A tensor as the runtime holds it: value name, per-sample shape (NCHW), its int8
    parameters and, for a flattened NHWC tensor, the NCHW index of each NHWC feature."""

    def __init__(self, name, shape, params, perm=None):
        self.name, self.shape, self.params, self.perm = name, tuple(shape), params, perm


class _Importer:
    def __init__(self, file: Path, path: str):
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator
        self.tfl, self.file, self.path = tflite, file, path
        self.buf = file.read_bytes()
        try:
            if len(self.buf) < 8 or self.buf[4:8] != b"TFL3":
                raise ValueError("no TFL3 identifier")
            self.model = tflite.Model.GetRootAsModel(self.buf, 0)
            self.g = self.model.Subgraphs(0)
            n_ops = self.g.OperatorsLength()
        except Exception as e:      # a corrupt flatbuffer raises anything
            raise ValueError(f"{file}: not a readable .tflite model ({e})") from None
        if self.model.SubgraphsLength() != 1:
            raise ValueError(f"{file}: {self.model.SubgraphsLength()} subgraphs; expected one")
        self.opnames = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.values, self.nodes, self.layers, self.params = {}, [], [], {}
        self.names, self.expect = set(), {}
        self._input()
        for k in range(n_ops):
            self._op(k)
        outs = self.g.OutputsAsNumpy()
        if len(outs) != 1:
            raise ValueError(f"{file}: the model has {len(outs)} outputs; expected one")
        self._check_int8(int(outs[0]), "the model output")
        out = self.values.get(int(outs[0]))
        if out is None or out.perm is not None:
            raise ValueError(f"{file}: the model output {self._tname(int(outs[0]))!r} is not "
                             f"computed by a supported op (or is a flattened image)")
        try:
            graph = Graph(self.input.name, self.input.shape, self.nodes)
        except ValueError as e:
            raise ValueError(f"{file}: {e}") from None
        nodes = {n.name: n for n in graph.nodes}
        for layer in self.layers:
            layer.node = nodes[layer.name]
            layer.shape = layer.node.shape
            layer.in_shape = graph.shapes[layer.inputs[0]]
        for name, (k, shape) in self.expect.items():
            if graph.shapes[name] != shape:
                raise ValueError(f"{self._where(k)}: computes {list(graph.shapes[name])} "
                                 f"for {name!r}, the model says {list(shape)}")
        for layer in self.layers:
            if layer.kind == "gemm":
                lower(layer.node, layer.in_shape)       # refuses what the engine cannot place
        self.qgraph = QuantGraph(graph, self.layers, self.params, out.name, False)

    # Tensors.
    def _tname(self, i: int) -> str:
        return self.g.Tensors(i).Name().decode(errors="replace")

    def _where(self, k: int) -> str:
        return f"{self.file}: op {k} ({self.opname(k)})"

    def opname(self, k: int) -> str:
        code = self.model.OperatorCodes(self.g.Operators(k).OpcodeIndex())
        return self.opnames.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()),
                                "CUSTOM")

    def _qparams(self, i: int, where: str) -> QParams:
        q = self.g.Tensors(i).Quantization()
        if q is None or q.ScaleLength() != 1 or q.ZeroPointLength() != 1:
            n = 0 if q is None else q.ScaleLength()
            raise ValueError(f"{where}: tensor {self._tname(i)!r} has {n} scales; an int8 "
                             f"activation needs one scale and zero point")
        scale, zp = float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])
        if not (math.isfinite(scale) and scale > 0) or not -128 <= zp <= 127:
            raise ValueError(f"{where}: tensor {self._tname(i)!r} has scale {scale} and "
                             f"zero point {zp}")
        return QParams(scale, zp)

    def _check_int8(self, i: int, where: str):
        t = self.g.Tensors(i).Type()
        if t == _INT8:
            return
        kind = _TYPES.get(t, f"type {t}")
        hint = ("; convert fully integer (inference_input_type/inference_output_type int8, "
                "representative dataset)" if t == _FLOAT32 else
                "; int16 activations (16x8 quantization) are not supported" if t == _INT16
                else "")
        raise ValueError(f"{where}: tensor {self._tname(i)!r} is {kind}, not INT8{hint}")

    def _data(self, i: int, dtype, where: str) -> np.ndarray:
        t = self.g.Tensors(i)
        b = self.model.Buffers(t.Buffer())
        if b is not None and b.Offset() > 1:
            raw = self.buf[b.Offset():b.Offset() + b.Size()]
        elif b is not None and b.DataLength():
            raw = b.DataAsNumpy().tobytes()
        else:
            raise ValueError(f"{where}: tensor {self._tname(i)!r} must be a constant")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"{where}: tensor {self._tname(i)!r} holds {arr.size} values for "
                             f"shape {list(shape)}")
        return arr.reshape(shape)

    def _shape(self, i: int) -> tuple:
        t = self.g.Tensors(i)
        return tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def _runtime_shape(self, i: int, where: str) -> tuple:
        s = self._shape(i)
        if len(s) == 4:
            return (s[3], s[1], s[2])
        if len(s) == 2:
            return (s[1],)
        raise ValueError(f"{where}: tensor {self._tname(i)!r} has shape {list(s)}; expected "
                         f"[batch, features] or [batch, H, W, C]")

    def _name(self, i: int) -> str:
        name = self._tname(i) or f"t{i}"
        if name in self.names:
            name = f"{name}#{i}"
        self.names.add(name)
        return name

    def _input(self):
        ins = self.g.InputsAsNumpy()
        if len(ins) != 1:
            raise ValueError(f"{self.file}: the model has {len(ins)} inputs; expected one")
        i = int(ins[0])
        readers = [k for k in range(self.g.OperatorsLength())
                   if i in self.g.Operators(k).InputsAsNumpy()]
        where = f"{self.file}: the model input" + (
            f" (read by op {readers[0]} ({self.opname(readers[0])}))" if readers else "")
        self._check_int8(i, where)
        self.input = _Value(self._name(i), self._runtime_shape(i, where),
                            self._qparams(i, where))
        self.values[i] = self.input
        self.params[self.input.name] = self.input.params

    def _read(self, k: int, i: int) -> _Value:
        if i not in self.values:
            raise ValueError(f"{self._where(k)}: reads tensor {self._tname(i)!r}, which no "
                             f"supported op computes")
        v = self.values[i]
        if v.perm is not None and self.opname(k) != "FULLY_CONNECTED":
            raise ValueError(f"{self._where(k)}: reads the flattened tensor "
                             f"{self._tname(i)!r}; only a FULLY_CONNECTED may read one")
        return v

    def _write(self, k: int, i: int, shape=None, params=None, perm=None) -> _Value:
        where = self._where(k)
        self._check_int8(i, where)
        v = _Value(self._name(i), shape or self._runtime_shape(i, where),
                   params or self._qparams(i, where), perm)
        self.expect[v.name] = (k, v.shape)
        self.values[i] = v
        self.params[v.name] = v.params
        return v

    def _options(self, op, cls_name: str):
        table = op.BuiltinOptions()
        opts = getattr(self.tfl, cls_name)()
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
        return opts

    def _act_range(self, k: int, act: int, out: QParams) -> tuple[int, int]:
        """TFLite's ``CalculateActivationRangeQuantized`` for int8."""
        def code(f):
            r = float(np.float32(f) / np.float32(out.scale))
            return out.zero_point + int(math.copysign(math.floor(abs(r) + 0.5), r))
        bounds = {0: (None, None), 1: (0.0, None), 3: (0.0, 6.0), 2: (-1.0, 1.0)}
        if act not in bounds:
            raise ValueError(f"{self._where(k)}: fused activation {_ACT.get(act, act)} is not "
                             f"supported (NONE, RELU, RELU6, RELU_N1_TO_1)")
        lo, hi = bounds[act]
        return (max(-128, code(lo)) if lo is not None else -128,
                min(127, code(hi)) if hi is not None else 127)

    # Ops.
    def _op(self, k: int):
        op = self.g.Operators(k)
        name = self.opname(k)
        ins = [int(i) for i in op.InputsAsNumpy()]
        outs = [int(i) for i in op.OutputsAsNumpy()]
        if name not in SUPPORTED_OPS:
            tensor = self._tname(outs[0]) if outs else "?"
            raise ValueError(f"{self._where(k)}: not supported (output tensor {tensor!r}); "
                             f"supported: {', '.join(SUPPORTED_OPS)}")
        if len(outs) != 1:
            raise ValueError(f"{self._where(k)}: {len(outs)} outputs; expected one")
        node_name = f"{name.lower()}_{k}"
        getattr(self, f"_{name.lower()}")(k, op, node_name, ins, outs[0])

    def _layer(self, name, op, kind, inputs, out: _Value, p):
        self.layers.append(QLayer(name, op, kind, tuple(v.name for v in inputs), out.name,
                                  out.shape, inputs[0].shape, (), None, p))

    def _weights(self, k: int, i: int, channels: int, axis: int):
        """int8 weights and their per-channel float scales (``channels`` of them)."""
        where = self._where(k)
        t = self.g.Tensors(i)
        if t.Type() != _INT8:
            raise ValueError(f"{where}: weights {self._tname(i)!r} are "
                             f"{_TYPES.get(t.Type(), t.Type())}, not INT8")
        q = t.Quantization()
        n = 0 if q is None else q.ScaleLength()
        if n not in (1, channels) or (n > 1 and q.QuantizedDimension() != axis):
            raise ValueError(f"{where}: weights {self._tname(i)!r} have {n} scales on axis "
                             f"{q.QuantizedDimension() if q else '-'}; the engine holds one "
                             f"per tensor or one per output channel ({channels} on axis "
                             f"{axis})")
        zp = q.ZeroPointAsNumpy()
        if np.any(zp != 0):
            raise ValueError(f"{where}: weights {self._tname(i)!r} have nonzero zero points; "
                             f"the engine needs symmetric int8 weights")
        scales = np.broadcast_to(q.ScaleAsNumpy().astype(np.float64), (channels,)).copy()
        return self._data(i, np.int8, where).astype(np.int64), scales

    def _bias(self, k: int, ins: list, channels: int, s_in: float, w_scale) -> np.ndarray:
        if len(ins) < 3 or ins[2] < 0:
            return np.zeros(channels, np.int64)
        where = self._where(k)
        t = self.g.Tensors(ins[2])
        if t.Type() != _INT32:
            raise ValueError(f"{where}: bias {self._tname(ins[2])!r} is "
                             f"{_TYPES.get(t.Type(), t.Type())}, not INT32")
        b = self._data(ins[2], np.int32, where).astype(np.int64).reshape(-1)
        if b.size != channels:
            raise ValueError(f"{where}: bias {self._tname(ins[2])!r} has {b.size} values for "
                             f"{channels} channels")
        return b

    def _gemm(self, k, node_name, op_ir, x: _Value, out_i: int, q, w_scale, bias, act, attrs,
              weight_float, perm_out=None):
        out = self._write(k, out_i)
        # LiteRT derives each channel's multiplier in double from the float32 scales.
        mult = [quantize_multiplier(x.params.scale * float(s) / out.params.scale)
                for s in w_scale]
        lo, hi = self._act_range(k, act, out.params)
        bias_float = bias * x.params.scale * w_scale
        self.nodes.append(Node(node_name, op_ir, (x.name,), out.name, attrs,
                               {"weight": weight_float, "bias": bias_float}))
        self._layer(node_name, op_ir, "gemm", [x], out, {
            "weights": q, "weight_scale": w_scale, "bias": bias,
            "multiplier": np.array([m for m, _ in mult], np.int64),
            "shift": np.array([s for _, s in mult], np.int64),
            "input_zero_point": x.params.zero_point, "output_zero_point": out.params.zero_point,
            "act_min": lo, "act_max": hi, "rounding": ROUNDING[self.path][op_ir]})

    def _fully_connected(self, k, op, node_name, ins, out_i):
        opts = self._options(op, "FullyConnectedOptions")
        if opts.WeightsFormat() != 0:
            raise ValueError(f"{self._where(k)}: shuffled weights format is not supported")
        x = self._read(k, ins[0])
        self._check_int8(ins[0], self._where(k))
        w_shape = self._shape(ins[1])
        if len(w_shape) != 2:
            raise ValueError(f"{self._where(k)}: weights {self._tname(ins[1])!r} have shape "
                             f"{list(w_shape)}; expected [out, in]")
        n, kk = w_shape
        if x.perm is None and len(x.shape) == 3:
            x = self._flatten(k, x, f"{node_name}_flatten")
        if int(np.prod(x.shape)) != kk or len(x.shape) != 1:
            raise ValueError(f"{self._where(k)}: input {x.name!r} of shape {list(x.shape)} "
                             f"does not feed {kk} inputs")
        q, w_scale = self._weights(k, ins[1], n, 0)
        if x.perm is not None:      # columns in NHWC order -> the NCHW order we flatten in
            nchw = np.empty_like(q)
            nchw[:, x.perm] = q
            q = nchw
        bias = self._bias(k, ins, n, x.params.scale, w_scale)
        self._gemm(k, node_name, "Linear", x, out_i, [conv_weight_matrix(q)], w_scale, bias,
                   opts.FusedActivationFunction(), {}, (q * w_scale[:, None]).astype(np.float32))

    def _flatten(self, k, x: _Value, node_name) -> _Value:
        """A Flatten node (NCHW order) whose output reads as TFLite's NHWC flattening
        through ``perm``."""
        c, h, w = x.shape
        perm = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
        name = f"{x.name}/flat"
        self.names.add(name)
        v = _Value(name, (c * h * w,), x.params, perm)
        self.params[name] = x.params
        self.nodes.append(Node(node_name, "Flatten", (x.name,), name))
        self._layer(node_name, "Flatten", "reshape", [x], v, {})
        return v

    def _reshape(self, k, op, node_name, ins, out_i):
        x = self._read(k, ins[0])
        out_shape = self._shape(out_i)
        p_out = self._qparams(out_i, self._where(k))
        if p_out != x.params:
            raise ValueError(f"{self._where(k)}: RESHAPE changes the quantization of "
                             f"{self._tname(out_i)!r}")
        if len(x.shape) == 3 and len(out_shape) == 2:
            v = self._flatten(k, x, node_name)
            self.values[out_i] = v
            return
        if len(x.shape) == 1 and len(out_shape) == 2 and out_shape[1] == x.shape[0]:
            self.values[out_i] = x      # [1, F] -> [1, F]: nothing to do
            return
        raise ValueError(f"{self._where(k)}: reshape of {list(x.shape)} to {list(out_shape)} "
                         f"(tensor {self._tname(out_i)!r}); only flattening [1, H, W, C] or "
                         f"[1, F] is supported")

    def _padding(self, k, opts, shape, kernel, stride) -> tuple:
        h, w = shape[1:]
        if opts.Padding() == 1:        # VALID
            return (0, 0, 0, 0)
        pads = []
        for size, kk, s in ((h, kernel[0], stride[0]), (w, kernel[1], stride[1])):
            out = -(-size // s)
            total = max((out - 1) * s + kk - size, 0)
            pads.append((total // 2, total - total // 2))
        (t, b), (lft, r) = pads
        return (t, lft, b, r)

    def _conv_2d(self, k, op, node_name, ins, out_i):
        opts = self._options(op, "Conv2DOptions")
        self._conv(k, opts, node_name, ins, out_i, depthwise=False)

    def _depthwise_conv_2d(self, k, op, node_name, ins, out_i):
        opts = self._options(op, "DepthwiseConv2DOptions")
        self._conv(k, opts, node_name, ins, out_i, depthwise=True)

    def _conv(self, k, opts, node_name, ins, out_i, depthwise):
        where = self._where(k)
        x = self._read(k, ins[0])
        self._check_int8(ins[0], where)
        if len(x.shape) != 3:
            raise ValueError(f"{where}: input {x.name!r} is not an image")
        if opts.DilationHFactor() not in (0, 1) or opts.DilationWFactor() not in (0, 1):
            raise ValueError(f"{where}: dilation {opts.DilationHFactor()}x"
                             f"{opts.DilationWFactor()} is not supported")
        ws = self._shape(ins[1])
        c = x.shape[0]
        if depthwise:
            _, kh, kw, o = ws
            if o % c:
                raise ValueError(f"{where}: {o} output channels for {c} input channels")
            q, w_scale = self._weights(k, ins[1], o, 3)
            q = q[0].transpose(2, 0, 1)[:, None]            # O x 1 x kh x kw
        else:
            o, kh, kw, ci = ws
            if ci != c:
                raise ValueError(f"{where}: weights take {ci} channels, the input has {c}")
            q, w_scale = self._weights(k, ins[1], o, 0)
            q = q.transpose(0, 3, 1, 2)                      # O x C x kh x kw
        stride = (opts.StrideH(), opts.StrideW())
        pads = self._padding(k, opts, x.shape, (kh, kw), stride)
        attrs = {"stride": stride, "pads": pads, "groups": c if depthwise else 1}
        flat = q.reshape(o, -1)
        mats = depthwise_weight_matrices(flat, c) if depthwise else [conv_weight_matrix(flat)]
        bias = self._bias(k, ins, o, x.params.scale, w_scale)
        wf = (q * w_scale[:, None, None, None]).astype(np.float32)
        self._gemm(k, node_name, "Conv2d", x, out_i, mats, w_scale, bias,
                   opts.FusedActivationFunction(), attrs, wf)

    def _add(self, k, op, node_name, ins, out_i):
        a, b = self._read(k, ins[0]), self._read(k, ins[1])
        for i in ins:
            self._check_int8(i, self._where(k))
        if a.shape != b.shape:
            raise ValueError(f"{self._where(k)}: adds shapes {list(a.shape)} and "
                             f"{list(b.shape)}; broadcasting is not supported")
        opts = self._options(op, "AddOptions")
        out = self._write(k, out_i)
        lo, hi = self._act_range(k, opts.FusedActivationFunction(), out.params)
        self.nodes.append(Node(node_name, "Add", (a.name, b.name), out.name))
        self._layer(node_name, "Add", "add", [a, b], out,
                    {**add_params(a.params, b.params, out.params), "act_min": lo,
                     "act_max": hi})

    def _pool(self, k, op, node_name, ins, out_i, kind):
        x = self._read(k, ins[0])
        where = self._where(k)
        if len(x.shape) != 3:
            raise ValueError(f"{where}: input {x.name!r} is not an image")
        opts = self._options(op, "Pool2DOptions")
        if opts.FusedActivationFunction() != 0:
            raise ValueError(f"{where}: a fused activation on a pool is not supported")
        kernel, stride = (opts.FilterHeight(), opts.FilterWidth()), (opts.StrideH(),
                                                                      opts.StrideW())
        pads = self._padding(k, opts, x.shape, kernel, stride)
        out = self._write(k, out_i, params=self._qparams(out_i, where))
        if out.params != x.params:
            raise ValueError(f"{where}: output {out.name!r} is quantized unlike the input")
        op_ir = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"
        self.nodes.append(Node(node_name, op_ir, (x.name,), out.name,
                               {"kernel": kernel, "stride": stride, "pads": pads}))
        p = {"kernel": kernel, "stride": stride, "pads": pads}
        if kind == "avgpool":
            p.update(count_include_pad=False, zero_point=x.params.zero_point)
        self._layer(node_name, op_ir, kind, [x], out, p)

    def _max_pool_2d(self, k, op, node_name, ins, out_i):
        self._pool(k, op, node_name, ins, out_i, "maxpool")

    def _average_pool_2d(self, k, op, node_name, ins, out_i):
        self._pool(k, op, node_name, ins, out_i, "avgpool")

    def _concatenation(self, k, op, node_name, ins, out_i):
        xs = [self._read(k, i) for i in ins]
        where = self._where(k)
        opts = self._options(op, "ConcatenationOptions")
        rank = len(self._shape(out_i))
        if (rank not in (2, 4) or opts.Axis() % rank != rank - 1
                or opts.FusedActivationFunction() != 0):
            raise ValueError(f"{where}: concatenation on axis {opts.Axis()} (tensor "
                             f"{self._tname(out_i)!r}); only the channel (last) axis, no "
                             f"fused activation")
        out = self._write(k, out_i)
        for x in xs:
            if x.params != out.params:
                raise ValueError(f"{where}: input {x.name!r} is quantized unlike the output "
                                 f"(TFLite's int8 CONCATENATION copies codes)")
        self.nodes.append(Node(node_name, "Concat", tuple(x.name for x in xs), out.name))
        self._layer(node_name, "Concat", "concat", xs, out,
                    {"zps_in": [x.params.zero_point for x in xs],
                     "zp_out": out.params.zero_point, "multipliers": [None] * len(xs),
                     "shifts": [None] * len(xs)})

    def _table(self, k, node_name, ins, out_i, op_ir):
        x = self._read(k, ins[0])
        self._check_int8(ins[0], self._where(k))
        out = self._write(k, out_i)
        node = Node(node_name, op_ir, (x.name,), out.name)
        self.nodes.append(node)
        self._layer(node_name, op_ir, "lut", [x], out,
                    {"table": lut_table(node, x.params, out.params)})

    def _logistic(self, k, op, node_name, ins, out_i):
        self._table(k, node_name, ins, out_i, "Sigmoid")

    def _tanh(self, k, op, node_name, ins, out_i):
        self._table(k, node_name, ins, out_i, "Tanh")

    def _softmax(self, k, op, node_name, ins, out_i):
        x = self._read(k, ins[0])
        where = self._where(k)
        self._check_int8(ins[0], where)
        if len(x.shape) != 1:
            raise ValueError(f"{where}: softmax of a {list(x.shape)} tensor; only [1, F]")
        if k != self.g.OperatorsLength() - 1:
            raise ValueError(f"{where}: SOFTMAX is supported only as the last op")
        beta = float(self._options(op, "SoftmaxOptions").Beta())
        out = self._write(k, out_i)
        if out.params != QParams(float(np.float32(1 / 256)), -128):
            raise ValueError(f"{where}: output {out.name!r} has scale {out.params.scale}, "
                             f"zero point {out.params.zero_point}; int8 SOFTMAX needs 1/256, "
                             f"-128")
        self.nodes.append(Node(node_name, "Softmax", (x.name,), out.name))
        self._layer(node_name, "Softmax", "int8_softmax", [x], out,
                    {"method": SOFTMAX_METHOD[self.path], "input_scale": x.params.scale,
                     "beta": beta, **softmax_params(x.params.scale, beta)})
