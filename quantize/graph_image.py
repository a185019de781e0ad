"""Graph images: a whole int8 graph (CNN, residual block, FFN) for the systolic engine.

:func:`write_graph_image` writes a compressed (:mod:`quantize.compress_graph`) and
quantized (:mod:`quantize.graph_quant`) graph as an image folder of ``format_version`` 3:
``manifest.json`` holds the graph itself (every node with its op, inputs, output, shape,
attributes, where it runs — ``engine`` or ``host`` — its int8 parameters and the names of
its weight, bias, requantization and LUT files) beside the engine config. MLP images keep
``format_version`` 2 and their layout, byte for byte.

:func:`load_graph` reads it back as untrusted input (the manifest's schema, digest,
confined and size-checked files are :mod:`quantize.manifest`'s; the graph contract here:
files per kind, parameters per kind, a graph that rebuilds with the stored shapes, number
formats that chain) into a :class:`GraphImage` whose ``qgraph`` is the
:class:`~quantize.graph_quant.QuantGraph` that was written, so :func:`run_graph_image` gives
what :func:`quantize.graph_run.run_graph` gives on the original, word for word
(:func:`quantize.run.run_graph_image`).

A convolution that runs as Winograd F(2×2, 3×3) (``qgraph.winograd``,
:func:`quantize.graph_run.add_winograd`) says so in its parameters (``"winograd":``
:data:`WINOGRAD_SCHEDULE`) and carries six more files (:data:`WINOGRAD_FILES`): the
transformed int8 weights ``u[16, C, O]`` and their scales, and the calibrated int8
quantization of the input transform ``V`` and of the products ``P``. The loader checks
that ``u`` is the transform of the node's own weights.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.systolic.config import ROUNDING_MODES, SystolicConfig
from sim.golden.softmax import METHODS as SOFTMAX_METHODS

from .atomic import image_folder
from .graph import Graph, Node
from .graph_quant import QLayer, QParams, QuantGraph
from .graph_run import _tiles, plan_config, winograd_gemm, winograd_unfit
from .lower import conv_weight_matrix, depthwise_weight_matrices, lower
from .manifest import compression_section, digest, expect_file, read_file, write_file
from .winograd import POSITIONS, WinogradConv

__all__ = ["GRAPH_FORMAT_VERSION", "GraphImage", "graph_config", "write_graph_image",
           "load_graph", "WINOGRAD_SCHEDULE", "WINOGRAD_FILES"]

GRAPH_FORMAT_VERSION = 3

#: Per kind: the ops it comes from, its files (key -> dtype) and its integer parameters.
_KINDS = {
    "gemm": (("Conv2d", "Linear"), {"weight": "|i1", "bias": "<i4", "multiplier": "<i4",
                                    "shift": "|i1", "weight_scale": "<f8"},
             ("input_zero_point", "output_zero_point", "act_min", "act_max")),
    "maxpool": (("MaxPool2d",), {}, ("kernel", "stride", "pads")),
    "avgpool": (("AvgPool2d",), {}, ("kernel", "stride", "pads", "count_include_pad",
                                     "zero_point")),
    "mean": (("GlobalAveragePool",), {}, ("input_zero_point", "output_zero_point",
                                          "multiplier", "shift")),
    "add": (("Add",), {}, ("zp1", "zp2", "zp_out", "m1", "s1", "m2", "s2", "m_out", "s_out",
                           "left_shift", "act_min", "act_max")),
    "concat": (("Concat",), {}, ("zps_in", "zp_out", "multipliers", "shifts")),
    "clamp": (("Relu", "Relu6", "Clip"), {}, ("act_min", "act_max")),
    "lut": (("Gelu", "Sigmoid", "Tanh", "HardSwish", "Silu"), {"table": "|i1"}, ()),
    "reshape": (("Flatten", "Reshape"), {}, ()),
    "fused": (("Relu", "Relu6", "Clip"), {}, ()),
    "softmax": (("Softmax",), {}, ()),
    "int8_softmax": (("Softmax",), {}, ("method", "input_multiplier", "input_left_shift",
                                        "diff_min", "input_scale", "beta")),
}
#: Parameters a kind may carry beyond its own: a gemm imported with its kernel's rounding,
#: a convolution run as Winograd.
_OPTIONAL = {"gemm": ("rounding", "winograd")}
#: The ``"winograd"`` parameter of a convolution run as Winograd.
WINOGRAD_SCHEDULE = {"schedule": "F(2x2,3x3)", "gemms": POSITIONS}
#: A Winograd convolution's files: key -> (dtype, shape in C and O, WinogradConv member).
WINOGRAD_FILES = {
    "winograd_u": ("|i1", lambda c, o: (POSITIONS, c, o), "u_q"),
    "winograd_u_scale": ("<f8", lambda c, o: (POSITIONS, o), "u_scale"),
    "winograd_v_scale": ("<f8", lambda c, o: (POSITIONS,), "v_scale"),
    "winograd_v_zero": ("|i1", lambda c, o: (POSITIONS,), "v_zero"),
    "winograd_p_scale": ("<f8", lambda c, o: (POSITIONS, o), "p_scale"),
    "winograd_p_zero": ("|i1", lambda c, o: (POSITIONS, o), "p_zero"),
}
_TUPLES = ("kernel", "stride", "pads")
#: Largest rows per engine job an image's config is sized for.
MAX_M = 256


def graph_config(qgraph: QuantGraph, rows: int, cols: int) -> SystolicConfig:
    """The engine config of a graph image: ``rows × cols``, buffers sized
    (:func:`quantize.graph_run.plan_config`, ``SystolicConfig.fit``) for every layer's GEMMs
    with at most :data:`MAX_M` rows per job; ``fit`` bounds the accumulator check by the
    largest K (``k_limit``), so the config never refuses its own layers."""
    try:
        return plan_config(qgraph, MAX_M, rows, cols, max_m=MAX_M)
    except ValueError as e:
        raise ValueError(f"no {rows}x{cols} systolic config holds this graph: {e}") from None


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.integer | bool | np.bool_):
        return o.item() if isinstance(o, np.generic) else o
    if isinstance(o, float | np.floating):
        return None if not np.isfinite(o) else float(o)   # only Clip's open bounds
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    return o


def _quant(p: QParams) -> dict:
    return {"scale": float(p.scale), "zero_point": int(p.zero_point)}


def _gemm_q(weights) -> np.ndarray:
    """The ``O × rest`` int8 weight matrix back from the GEMM matrices of a layer."""
    return np.concatenate([np.asarray(w).T for w in weights], axis=0)


def _stem(name: str, taken: set) -> str:
    """A file-name stem for node ``name`` (ONNX names may hold ``/`` or ``:``), distinct."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-")[:100] or "node"
    stem = stem.replace("..", "_")
    base, k = stem, 1
    while stem in taken:
        k += 1
        stem = f"{base}_{k}"
    taken.add(stem)
    return stem


def _node_entries(qgraph: QuantGraph, out: Path) -> tuple[list, int]:
    layers = {layer.name: layer for layer in qgraph.layers}
    fused = {name: layer.name for layer in qgraph.layers for name in layer.fused}
    entries, total, stems = [], 0, set()
    for node in qgraph.graph.nodes:
        e = {"name": node.name, "op": node.op, "inputs": list(node.inputs),
             "output": node.output, "shape": list(node.shape),
             "attrs": _jsonable(node.attrs)}
        if node.name in fused:
            e.update(kind="fused", where="host", into=fused[node.name])
        elif node.op == "Softmax" and node.name not in layers:
            e.update(kind="softmax", where="host")
        else:
            layer = layers[node.name]
            p = layer.p
            e.update(kind=layer.kind, where="engine" if layer.kind == "gemm" else "host",
                     fused=list(layer.fused), quant=_quant(qgraph.params[layer.output]))
            files = {}
            if layer.kind == "gemm":
                e["weight_shape"] = list(node.weight.shape)
                n = _stem(node.name, stems)
                wc = qgraph.winograd.get(layer.name)
                files = {
                    # A Winograd layer's engine loads its transform (u) instead.
                    "weight": write_file(out, f"{n}.weight.bin", _gemm_q(p["weights"]), "<i1",
                                         memory=wc is None),
                    "bias": write_file(out, f"{n}.bias.bin", p["bias"], "<i4"),
                    "multiplier": write_file(out, f"{n}.multiplier.bin", p["multiplier"],
                                             "<i4"),
                    "shift": write_file(out, f"{n}.shift.bin", p["shift"], "<i1"),
                    "weight_scale": write_file(out, f"{n}.weight_scale.bin",
                                               p["weight_scale"], "<f8", memory=False),
                }
                if wc is not None:
                    # The engine loads u (its weights); the rest are host parameters.
                    files.update({key: write_file(out, f"{n}.{key}.bin", getattr(wc, member),
                                                  dtype, memory=key == "winograd_u")
                                  for key, (dtype, _, member) in WINOGRAD_FILES.items()})
            elif layer.kind == "lut":
                files = {"table": write_file(out, f"{_stem(node.name, stems)}.table.bin",
                                             p["table"], "<i1", memory=False)}
            arrays = {"gemm": ("weights", "bias", "multiplier", "shift", "weight_scale"),
                      "lut": ("table",)}.get(layer.kind, ())
            e["params"] = _jsonable({k: v for k, v in p.items() if k not in arrays})
            if layer.name in qgraph.winograd:
                e["params"]["winograd"] = dict(WINOGRAD_SCHEDULE)
            e["files"] = files
            total += sum(f["bytes"] for f in files.values() if f["memory"])
        entries.append(e)
    return entries, total


def write_graph_image(compressed, qgraph: QuantGraph, config: SystolicConfig, out_dir,
                      source: str | None = None, activation: str | None = None,
                      force: bool = False) -> dict:
    """Write the graph image of ``qgraph`` (quantized from ``compressed.graph``) for
    ``config`` into ``out_dir`` (replaced whole and atomically); return the manifest.
    ``activation``: what the user stated between the layers of a weight-only file."""
    with image_folder(out_dir, force=force) as out:
        nodes, image_bytes = _node_entries(qgraph, out)
        g = qgraph.graph
        manifest = {
            "format": "nnaccel-image", "format_version": GRAPH_FORMAT_VERSION,
            "engine": "systolic", "config": dataclasses.asdict(config), "source": source,
            "graph": {"input": {"name": g.input_name, "shape": list(g.input_shape),
                                **_quant(qgraph.input_params)},
                      "output": qgraph.output, "softmax": qgraph.softmax,
                      "activation": activation, "nodes": nodes},
            "input": {"format": "int8", **_quant(qgraph.input_params)},
            "output": {"format": "int8", **_quant(qgraph.output_params)},
            "compression": compression_section(compressed.storage, image_bytes,
                                               excluded="biases", ops=compressed.ops),
            "log": compressed.log,
        }
        manifest = _jsonable(json.loads(json.dumps(_jsonable(manifest))))
        manifest["digest"] = digest(manifest)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


@dataclass
class GraphImage:
    """A loaded graph image: ``directory``, ``manifest``, ``engine`` (``"systolic"``),
    ``config`` and ``qgraph`` (the int8 graph, ready for :func:`run_graph_image`)."""

    directory: Path
    manifest: dict
    engine: str
    config: SystolicConfig
    qgraph: QuantGraph

    @property
    def image_bytes(self) -> int:
        return self.manifest["compression"]["image_bytes"]


def _attrs(entry: dict) -> dict:
    a = dict(entry.get("attrs") or {})
    if entry["op"] == "Clip":
        a["min"] = -np.inf if a.get("min") is None else a["min"]
        a["max"] = np.inf if a.get("max") is None else a["max"]
    return a


def _check_entry(e: dict, by_name: dict) -> None:
    kind, name = e["kind"], e["name"]
    if kind not in _KINDS:
        raise ValueError(f"node {name}: unknown kind {kind!r}")
    ops, files, params = _KINDS[kind]
    if e["op"] not in ops:
        raise ValueError(f"node {name}: a {kind} node cannot be a {e['op']}")
    if e["where"] != ("engine" if kind == "gemm" else "host"):
        raise ValueError(f"node {name} ({e['op']}): runs on the "
                         f"{'engine' if kind == 'gemm' else 'host'}, not {e['where']!r}")
    if kind in ("fused", "softmax"):
        head = by_name.get(e.get("into")) if kind == "fused" else None
        if kind == "fused" and (head is None or e["name"] not in head.get("fused", ())):
            raise ValueError(f"node {name}: fused into {e.get('into')!r}, which does not list "
                             f"it")
        return
    for key in ("quant", "params", "files", "fused"):
        if key not in e:
            raise ValueError(f"node {name}: a {kind} node needs '{key}'")
    for f in e["fused"]:
        if by_name.get(f, {}).get("into") != name:
            raise ValueError(f"node {name}: lists {f!r} as fused, which is not a node fused "
                             f"into it")
    if kind == "gemm" and "winograd" in e["params"]:
        files = {**files, **{k: v[0] for k, v in WINOGRAD_FILES.items()}}
    if set(e["files"]) != set(files):
        raise ValueError(f"node {name}: a {kind} node has the files "
                         f"{', '.join(files) or 'none'}, found "
                         f"{', '.join(sorted(e['files'])) or 'none'}")
    if not set(params) <= set(e["params"]) <= set(params) | set(_OPTIONAL.get(kind, ())):
        raise ValueError(f"node {name}: a {kind} node has the parameters "
                         f"{', '.join(params) or 'none'}, found "
                         f"{', '.join(sorted(e['params'])) or 'none'}")
    for key, value in e["params"].items():
        _check_param(e, key, value)
    if "act_min" in e["params"] and e["params"]["act_min"] > e["params"]["act_max"]:
        raise ValueError(f"node {name}: act_min {e['params']['act_min']} is above act_max "
                         f"{e['params']['act_max']}")
    for key in _TUPLES:
        if key in e["params"] and e["params"][key] != e["attrs"].get(key):
            raise ValueError(f"node {name}: parameter {key!r} {e['params'][key]} is not the "
                             f"node's attribute {e['attrs'].get(key)}")
    if kind == "gemm":
        o = e.get("weight_shape", [0])[0]
        rest = int(np.prod(e["weight_shape"][1:])) if len(e.get("weight_shape", ())) > 1 else 0
        if len(e.get("weight_shape", ())) not in (2, 4):
            raise ValueError(f"node {name}: 'weight_shape' must be out x in or O x I x kh x kw")
        expect_file(e, "weight", "|i1", (o, rest))
        for key in ("bias", "multiplier", "shift", "weight_scale"):
            expect_file(e, key, files[key], (o,))
        if "winograd" in e["params"]:
            if len(e["weight_shape"]) != 4:
                raise ValueError(f"node {name}: Winograd runs convolutions, not a {e['op']}")
            for key, (dtype, shape, _) in WINOGRAD_FILES.items():
                expect_file(e, key, dtype, shape(e["weight_shape"][1], o))
    if kind == "lut":
        expect_file(e, "table", "|i1", (256,))


def _int(v, lo, hi) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _check_param(e: dict, key: str, value) -> None:
    """One integer parameter of a node: its type and range."""
    n = len(e["inputs"])
    if key == "rounding":
        ok = value in ROUNDING_MODES
    elif key == "winograd":
        ok = value == WINOGRAD_SCHEDULE
    elif key == "method":
        ok = value in SOFTMAX_METHODS
    elif key in ("input_scale", "beta"):
        ok = isinstance(value, float) and math.isfinite(value) and value > 0
    elif key == "input_multiplier":
        ok = _int(value, 0, 2**31 - 1)
    elif key == "input_left_shift":
        ok = _int(value, 0, 30)
    elif key == "diff_min":
        ok = _int(value, -(2**31), 0)
    elif key in ("kernel", "stride", "pads"):
        size, lo = (4, 0) if key == "pads" else (2, 1)
        ok = isinstance(value, list) and len(value) == size and all(
            _int(v, lo, 1 << 16) for v in value)
    elif key == "count_include_pad":
        ok = isinstance(value, bool)
    elif key == "zps_in":
        ok = isinstance(value, list) and len(value) == n and all(
            _int(v, -128, 127) for v in value)
    elif key in ("multipliers", "shifts"):
        lo, hi = (0, 2**31 - 1) if key == "multipliers" else (-31, 30)
        ok = isinstance(value, list) and len(value) == n and all(
            v is None or _int(v, lo, hi) for v in value)
    elif key.startswith("m"):
        ok = _int(value, 0, 2**31 - 1)
    elif key.startswith("s") or key == "shift":
        ok = _int(value, -31, 30)
    elif key == "left_shift":
        ok = _int(value, 0, 30)
    else:                           # zero points and clamp bounds
        ok = _int(value, -128, 127)
    if not ok:
        raise ValueError(f"node {e['name']}: parameter {key!r} has the wrong type or range: "
                         f"{value!r}")


def _float_params(e: dict, arrays: dict, s_in: float) -> dict:
    """Float weights of a gemm node back from its int8 weights and scales (shape and
    validity checks of the graph; the run uses the int8 values)."""
    s_w = arrays["weight_scale"].astype(np.float64)
    w = (arrays["weight"].astype(np.float64) * s_w[:, None]).reshape(e["weight_shape"])
    b = arrays["bias"].astype(np.float64) * s_in * s_w
    return {"weight": w.astype(np.float32), "bias": b.astype(np.float32)}


def load_graph(directory: Path, manifest: dict, config: SystolicConfig) -> GraphImage:
    """The :class:`GraphImage` of a validated, digest-checked ``manifest`` (version 3)."""
    where = directory / "manifest.json"
    try:
        return _load_graph(directory, manifest, config)
    except ValueError as e:
        if str(e).startswith(str(directory)):
            raise
        raise ValueError(f"{where}: {e}") from None


def _load_graph(directory: Path, manifest: dict, config: SystolicConfig) -> GraphImage:
    if manifest["engine"] != "systolic":
        raise ValueError("graph images run on the systolic engine only")
    g = manifest["graph"]
    entries = g["nodes"]
    by_name = {e["name"]: e for e in entries}
    if len(by_name) != len(entries):
        raise ValueError("node names must be distinct")
    for e in entries:
        _check_entry(e, by_name)
    arrays = {e["name"]: {k: read_file(directory, f, f"node {e['name']} '{k}'")
                          for k, f in e.get("files", {}).items()} for e in entries}
    params = {g["input"]["name"]: QParams(g["input"]["scale"], g["input"]["zero_point"])}
    nodes, shapes = [], {g["input"]["name"]: tuple(g["input"]["shape"])}
    for e in entries:
        node_params = {}
        if e["kind"] == "gemm":
            p_in = params.get(e["inputs"][0])
            if p_in is None:
                raise ValueError(f"node {e['name']}: reads {e['inputs'][0]!r}, which no "
                                 f"earlier node quantizes")
            node_params = _float_params(e, arrays[e["name"]], p_in.scale)
        try:
            nodes.append(Node(e["name"], e["op"], tuple(e["inputs"]), e["output"], _attrs(e),
                              node_params))
        except ValueError as err:
            raise ValueError(str(err)) from None
        if "quant" in e:
            out = e["output"] if not e["fused"] else by_name[e["fused"][-1]]["output"]
            params[out] = QParams(e["quant"]["scale"], e["quant"]["zero_point"])
        shapes[e["output"]] = tuple(e["shape"])
    graph = Graph(g["input"]["name"], tuple(g["input"]["shape"]), nodes)
    for node in graph.nodes:
        if tuple(node.shape) != shapes[node.output]:
            raise ValueError(f"node {node.name} ({node.op}): shape {list(shapes[node.output])}"
                             f" in the manifest, the graph gives {list(node.shape)}")
    layers = []
    for node, e in zip(graph.nodes, entries, strict=True):
        if e["kind"] in ("fused", "softmax"):
            continue
        p = {k: tuple(v) if k in _TUPLES else v for k, v in e["params"].items()}
        a = arrays[e["name"]]
        if e["kind"] == "gemm":
            q = a["weight"]
            in_shape = graph.shapes[node.inputs[0]]
            weights = (depthwise_weight_matrices(q, in_shape[0])
                       if node.op == "Conv2d" and node.attrs["groups"] > 1
                       else [conv_weight_matrix(q)])
            lower(node, in_shape)
            p.update(weights=weights, weight_scale=a["weight_scale"].astype(np.float64),
                     bias=a["bias"].astype(np.int64),
                     multiplier=a["multiplier"].astype(np.int64),
                     shift=a["shift"].astype(np.int64))
        elif e["kind"] == "lut":
            p["table"] = a["table"].astype(np.int64)
        out = by_name[e["fused"][-1]]["output"] if e["fused"] else node.output
        layers.append(QLayer(node.name, node.op, e["kind"], node.inputs, out, node.shape,
                             graph.shapes[node.inputs[0]], tuple(e["fused"]), node, p))
    softmax = entries[-1]["kind"] == "softmax"
    want = graph.nodes[-1].inputs[0] if softmax else (layers[-1].output if layers else None)
    if g["output"] != want or g["softmax"] != softmax:
        raise ValueError(f"graph output {g['output']!r} (softmax {g['softmax']}) is not the "
                         f"graph's ({want!r}, softmax {softmax})")
    missing = [v for layer in layers for v in layer.inputs if v not in params]
    if missing:
        raise ValueError(f"value {missing[0]!r} has no quantization")
    winograd = {layer.name: _winograd(layer, arrays[layer.name]) for layer in layers
                if "winograd" in by_name[layer.name]["params"]}
    qgraph = QuantGraph(graph, layers, params, g["output"], softmax, winograd)
    for key, p in (("input", qgraph.input_params), ("output", qgraph.output_params)):
        if manifest[key] != {"format": "int8", **_quant(p)}:
            raise ValueError(f"'{key}' must be int8 with the graph's {key} scale and zero "
                             f"point, not {manifest[key]}")
    for layer in layers:
        if layer.name in winograd:
            _tiles(config, layer, 1, *winograd_gemm(layer, 1)[1:])
        elif layer.kind == "gemm":
            _tiles(config, layer, 1, *lower(layer.node, layer.in_shape).gemms[0][1:])
    return GraphImage(directory, manifest, "systolic", config, qgraph)


def _winograd(layer: QLayer, arrays: dict) -> WinogradConv:
    """The calibrated :class:`WinogradConv` of a loaded layer, its files checked: ``u``
    and its scales must be the transform of the layer's own int8 weights, the scales of
    ``V`` at least 1 (integers) and those of ``P`` positive."""
    why = winograd_unfit(layer)
    if why is not None:
        raise ValueError(f"node {layer.name}: runs as Winograd F(2x2,3x3) but is {why}")
    wc = WinogradConv.from_layer(layer)
    if (not np.array_equal(arrays["winograd_u"], wc.u_q)
            or not np.array_equal(arrays["winograd_u_scale"], wc.u_scale)):
        raise ValueError(f"node {layer.name}: 'winograd_u' and 'winograd_u_scale' are not the "
                         f"Winograd transform of the node's weights")
    v_scale, p_scale = arrays["winograd_v_scale"], arrays["winograd_p_scale"]
    if not (np.all(np.isfinite(v_scale)) and np.all(v_scale >= 1)):
        raise ValueError(f"node {layer.name}: 'winograd_v_scale' must be finite and >= 1")
    if not (np.all(np.isfinite(p_scale)) and np.all(p_scale > 0)):
        raise ValueError(f"node {layer.name}: 'winograd_p_scale' must be finite and > 0")
    wc.v_scale, wc.p_scale = v_scale.astype(np.float64), p_scale.astype(np.float64)
    wc.v_zero = arrays["winograd_v_zero"].astype(np.int64)
    wc.p_zero = arrays["winograd_p_zero"].astype(np.int64)
    return wc
