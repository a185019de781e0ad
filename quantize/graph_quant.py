"""Post-training int8 quantization of a :class:`~quantize.graph.Graph` (TFLite's scheme).

:func:`quantize_graph` runs calibration inputs through the float graph and gives a
:class:`QuantGraph`: one :class:`QLayer` per engine GEMM layer or host op, with every
tensor's scale and zero point and every op's integer parameters.

* **Activations**: asymmetric per tensor, ``(scale, zero_point)`` from the min/max over
  the calibration inputs (:func:`quantize.int8.activation_params`). Pooling, Flatten,
  Reshape and unfused clamps keep their input's parameters (TFLite requires it of pools).
* **Conv2d / Linear** (the engine's GEMMs, lowered by :mod:`quantize.lower`): weights
  symmetric int8 per output channel, bias int32 at ``s_x·s_w``, the requantization
  ``s_x·s_w / s_y`` as a multiplier and shift per output channel
  (:func:`quantize.int8.quantize_multiplier`).
* **Relu / Relu6 / Clip** right after a Conv2d, Linear or Add whose output nothing else
  reads are fused into that layer's output clamp (``act_min``/``act_max`` are the codes
  of the bounds, as TFLite's ``CalculateActivationRangeQuantized``); elsewhere they are a
  host clamp at unchanged parameters.
* **Gelu, Sigmoid, Tanh, HardSwish, Silu** become a 256-entry int8 → int8 lookup table
  built as TFLite builds the tables of its int8 Gelu (and optimized Logistic/Tanh)
  kernels: ``table[q] = quantize(f(dequantize(q)))`` with the input's and output's
  parameters (TFLite's HardSwish uses fixed-point arithmetic instead; a table of the
  same function differs from it by at most rounding). The table is applied on the host for now; a
  hardware LUT beside the requantizer is a later piece.
* **MaxPool2d / AvgPool2d / GlobalAveragePool / Add / Concat**: host ops in TFLite's
  integer arithmetic (:mod:`sim.golden.host_ops`); their multipliers are worked out here.
* **Softmax** (only ever last) stays on the host in float: the int8 graph's output is its
  input, and the runtime applies the float softmax to the dequantized logits.
"""

from dataclasses import dataclass, field

import numpy as np

from .graph import POINTWISE, Graph
from .graph_kernels import KERNELS
from .int8 import (
    activation_params,
    dequantize,
    quantize_activations,
    quantize_bias,
    quantize_multiplier,
    quantize_weights_per_channel,
)
from .lower import conv_weight_matrix, depthwise_weight_matrices, lower

__all__ = ["QParams", "QLayer", "QuantGraph", "quantize_graph", "requant_params",
           "add_params", "activation_range", "lut_table", "CLAMPS", "LUT_OPS"]

#: Pointwise ops that are a clamp of the real value (fusable into a requantization).
CLAMPS = ("Relu", "Relu6", "Clip")
#: Pointwise ops computed through a 256-entry lookup table.
LUT_OPS = tuple(op for op in POINTWISE if op not in CLAMPS)
#: TFLite's ``left_shift`` for int8 ADD.
ADD_LEFT_SHIFT = 20


@dataclass(frozen=True)
class QParams:
    """``real = scale · (q − zero_point)``."""

    scale: float
    zero_point: int


@dataclass
class QLayer:
    """One step of the int8 graph.

    Members
    -------
    name, op : str
        The IR node it comes from.
    kind : str
        ``"gemm"`` (the engine), or a host op: ``"maxpool"``, ``"avgpool"``, ``"mean"``,
        ``"add"``, ``"concat"``, ``"clamp"``, ``"lut"``, ``"reshape"``.
    inputs : tuple of str
        Value names read.
    output : str
        Value name written (a fused activation's output when one is fused).
    shape : tuple of int
        Per-sample output shape.
    in_shape : tuple of int
        Per-sample shape of the first input.
    fused : tuple of str
        Names of the activation nodes fused into this layer.
    node : Node
        The IR node.
    p : dict
        Integer parameters: for ``"gemm"`` ``weights`` (list of ``K × N`` int8 matrices, one
        per depthwise channel or just one), ``bias``, ``multiplier``, ``shift`` (per output
        channel), ``input_zero_point``, ``output_zero_point``, ``act_min``, ``act_max``;
        for host ops the arguments of their :mod:`sim.golden.host_ops` function.
    """

    name: str
    op: str
    kind: str
    inputs: tuple
    output: str
    shape: tuple
    in_shape: tuple
    fused: tuple = ()
    node: object = None
    p: dict = field(default_factory=dict)


@dataclass
class QuantGraph:
    """A graph quantized to int8.

    Members
    -------
    graph : Graph
        The float graph.
    layers : list of QLayer
        In execution order.
    params : dict of str to QParams
        Every int8 value's scale and zero point (the graph input's included).
    output : str
        The int8 output value (the Softmax's input when the graph ends in a Softmax).
    softmax : bool
        The float graph ends in a Softmax, applied on the host in float.
    winograd : dict of str to WinogradConv
        The ``Conv2d`` layers that run as Winograd F(2×2, 3×3) GEMMs, calibrated
        (:func:`quantize.graph_run.add_winograd`); the others run as im2col GEMMs.
    """

    graph: Graph
    layers: list
    params: dict
    output: str
    softmax: bool
    winograd: dict = field(default_factory=dict)

    @property
    def input_params(self) -> QParams:
        return self.params[self.graph.input_name]

    @property
    def output_params(self) -> QParams:
        return self.params[self.output]

    def quantize_input(self, x) -> np.ndarray:
        p = self.input_params
        return quantize_activations(x, p.scale, p.zero_point)

    def dequantize_output(self, q) -> np.ndarray:
        p = self.output_params
        return dequantize(q, p.scale, p.zero_point)

    def describe(self) -> str:
        lines = []
        for layer in self.layers:
            p = self.params[layer.output]
            fused = f" +{'+'.join(layer.fused)}" if layer.fused else ""
            lines.append(f"{layer.name}: {layer.kind} {layer.op}{fused} -> {layer.output} "
                         f"{layer.shape} scale {p.scale:.4g} zp {p.zero_point}")
        return "\n".join(lines)


def requant_params(s_in: float, s_out: float) -> tuple[int, int]:
    """TFLite's ``(multiplier, shift)`` for ``s_in / s_out``."""
    return quantize_multiplier(float(s_in) / float(s_out))


def add_params(p1: QParams, p2: QParams, out: QParams) -> dict:
    """TFLite's int8 ADD parameters (``add.cc`` Prepare): inputs rescaled to
    ``2·max(s_1, s_2) / 2^20``, output factor ``2·max / (2^20 · s_y)``."""
    twice_max = 2.0 * max(p1.scale, p2.scale)
    m1, s1 = quantize_multiplier(p1.scale / twice_max)
    m2, s2 = quantize_multiplier(p2.scale / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * out.scale))
    return {"zp1": p1.zero_point, "zp2": p2.zero_point, "zp_out": out.zero_point,
            "m1": m1, "s1": s1, "m2": m2, "s2": s2, "m_out": mo, "s_out": so,
            "left_shift": ADD_LEFT_SHIFT}


def activation_range(node, out: QParams) -> tuple[int, int]:
    """``(act_min, act_max)``: the codes of a clamp node's bounds at ``out``, within int8
    (TFLite's ``CalculateActivationRangeQuantized``)."""
    lo, hi = {"Relu": (0.0, np.inf), "Relu6": (0.0, 6.0)}.get(
        node.op, (node.attrs.get("min"), node.attrs.get("max")))
    qlo, qhi = (int(quantize_activations(v, out.scale, out.zero_point)) for v in (lo, hi))
    return qlo, qhi


def lut_table(node, p_in: QParams, p_out: QParams) -> np.ndarray:
    """int8[256]: ``table[q + 128] = quantize(f(dequantize(q)))`` for pointwise ``node``."""
    codes = np.arange(-128, 128)
    real = dequantize(codes, p_in.scale, p_in.zero_point)
    y = KERNELS[node.op](node, real[None, :])[0]
    return quantize_activations(y, p_out.scale, p_out.zero_point)


def _calibrate(graph: Graph, calibration) -> dict:
    acts = graph.activations(calibration)
    return {name: activation_params(float(v.min()), float(v.max())) for name, v in acts.items()}


def quantize_graph(graph: Graph, calibration) -> QuantGraph:
    """Quantize ``graph`` to int8 from ``calibration`` inputs (``[batch, *input_shape]``).

    Raises
    ------
    ValueError
        No calibration inputs, or a node the int8 runtime cannot place (one line naming
        the node and its op).
    """
    calibration = np.asarray(calibration, dtype=np.float64)
    if calibration.ndim < 1 or len(calibration) == 0:
        raise ValueError("quantize_graph needs at least one calibration input")
    ranges = _calibrate(graph, calibration)
    readers = {}
    for node in graph.nodes:
        for v in node.inputs:
            readers.setdefault(v, []).append(node)
    params = {graph.input_name: QParams(*ranges[graph.input_name])}
    layers, skip = [], set()
    nodes = graph.nodes
    softmax = nodes[-1].op == "Softmax"
    for node in nodes[:-1] if softmax else nodes:
        if node.name in skip:
            continue
        in_shape = graph.shapes[node.inputs[0]]
        fuse = None
        if node.op in ("Conv2d", "Linear", "Add"):
            after = readers.get(node.output, [])
            if len(after) == 1 and after[0].op in CLAMPS and not (
                    softmax and after[0] is nodes[-1]):
                fuse = after[0]
                skip.add(fuse.name)
        out_value = fuse.output if fuse else node.output
        layer = QLayer(node.name, node.op, "", node.inputs, out_value, node.shape, in_shape,
                       (fuse.name,) if fuse else (), node)
        p_in = params[node.inputs[0]]
        if node.op in ("Conv2d", "Linear"):
            out = params[out_value] = QParams(*ranges[out_value])
            layer.kind, layer.p = "gemm", _gemm_params(node, in_shape, p_in, out, fuse)
        elif node.op in ("MaxPool2d", "AvgPool2d", "Flatten", "Reshape") or node.op in CLAMPS:
            params[out_value] = p_in
            a = node.attrs
            if node.op == "MaxPool2d":
                layer.kind = "maxpool"
                layer.p = {"kernel": a["kernel"], "stride": a["stride"], "pads": a["pads"]}
            elif node.op == "AvgPool2d":
                layer.kind = "avgpool"
                layer.p = {"kernel": a["kernel"], "stride": a["stride"], "pads": a["pads"],
                           "count_include_pad": a["count_include_pad"],
                           "zero_point": p_in.zero_point}
            elif node.op in CLAMPS:
                lo, hi = activation_range(node, p_in)
                layer.kind, layer.p = "clamp", {"act_min": lo, "act_max": hi}
            else:
                layer.kind = "reshape"
        elif node.op == "GlobalAveragePool":
            out = params[out_value] = QParams(*ranges[out_value])
            m, s = requant_params(p_in.scale, out.scale)
            layer.kind = "mean"
            layer.p = {"input_zero_point": p_in.zero_point,
                       "output_zero_point": out.zero_point, "multiplier": m, "shift": s}
        elif node.op == "Add":
            out = params[out_value] = QParams(*ranges[out_value])
            lo, hi = activation_range(fuse, out) if fuse else (-128, 127)
            layer.kind = "add"
            layer.p = {**add_params(p_in, params[node.inputs[1]], out),
                       "act_min": lo, "act_max": hi}
        elif node.op == "Concat":
            out = params[out_value] = QParams(*ranges[out_value])
            ins = [params[v] for v in node.inputs]
            rq = [(None, None) if q == out else requant_params(q.scale, out.scale) for q in ins]
            layer.kind = "concat"
            layer.p = {"zps_in": [q.zero_point for q in ins], "zp_out": out.zero_point,
                       "multipliers": [m for m, _ in rq], "shifts": [s for _, s in rq]}
        elif node.op in LUT_OPS:
            out = params[out_value] = QParams(*ranges[out_value])
            layer.kind, layer.p = "lut", {"table": lut_table(node, p_in, out)}
        else:
            raise ValueError(f"node {node.name!r} ({node.op}): the int8 runtime cannot place "
                             f"this op")
        layers.append(layer)
    output = nodes[-1].inputs[0] if softmax else layers[-1].output
    return QuantGraph(graph, layers, params, output, softmax)


def _gemm_params(node, in_shape, p_in: QParams, out: QParams, fuse) -> dict:
    lowered = lower(node, in_shape)      # refuses what the engine cannot place
    q, w_scale = quantize_weights_per_channel(node.weight.reshape(node.weight.shape[0], -1))
    if lowered.kind == "depthwise":
        weights = depthwise_weight_matrices(q, in_shape[0])
    else:
        weights = [conv_weight_matrix(q)]
    requant = [quantize_multiplier(p_in.scale * s / out.scale) for s in w_scale]
    lo, hi = activation_range(fuse, out) if fuse else (-128, 127)
    return {"weights": weights, "weight_scale": w_scale,
            "bias": quantize_bias(node.bias, p_in.scale, w_scale),
            "multiplier": np.array([m for m, _ in requant], np.int64),
            "shift": np.array([s for _, s in requant], np.int64),
            "input_zero_point": p_in.zero_point, "output_zero_point": out.zero_point,
            "act_min": lo, "act_max": hi}
