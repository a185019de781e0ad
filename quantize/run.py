"""Run a compressed network from its image on any backend.

Inputs are float, as the trained net expects them; quantizing them is part of the
compressed model (the manifest's input format). Outputs come back dequantized, one row per
input. ``engine="golden"`` chains the project's golden models (``sim/golden``);
``engine="rtl"`` runs the generated engine under Verilator and reports cycles; a board
backend (:class:`quantize.backends.Board`) runs it on an FPGA. Every backend takes the
same driver-level work (:mod:`quantize.backends`). A graph image
(:class:`~quantize.graph_image.GraphImage`) runs with :func:`run_graph_image`, which is
:func:`quantize.graph_run.run_graph` on its int8 graph and config.

A run that measured cycles (RTL or a board) records them per engine layer in a sidecar
beside its outputs (:func:`record_cycles`: ``Y.npy`` → ``Y.cycles.json``), never in the
image folder; ``nnaccel report IMAGE --cycles Y.cycles.json`` shows them beside the cost
model (:func:`read_cycles` refuses a file measured on another image).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim import budget

from .atomic import output_file
from .backends import backend as backend_of
from .eie_engine import eie_layers
from .engines import image_engine
from .fixedpoint import to_fixed
from .graph_run import run_graph
from .image import GraphImage, Image, is_graph
from .int8 import dequantize, quantize_activations
from .lower import lower

__all__ = ["RunResult", "run_image", "check_inputs", "quantize_input", "eie_layers",
           "saturated_inputs", "memory_estimate", "check_graph_inputs", "run_graph_image",
           "graph_memory_estimate", "CYCLES_FORMAT", "cycles_path", "engine_layer_names",
           "record_cycles", "read_cycles"]

#: The ``format`` of a cycles sidecar (version 1: ``image`` (the manifest's digest),
#: ``engine``, ``backend``, ``inputs``, ``total_cycles``, ``layers``: ``name`` and
#: ``cycles`` per engine layer, ``null`` where only the total was measured).
CYCLES_FORMAT = "nnaccel-cycles"


@dataclass
class RunResult:
    """Members: ``outputs`` (float64[batch, out], dequantized), ``raw`` (the engine's
    integer outputs), ``cycles`` (total engine cycles, RTL only), ``info``."""

    outputs: np.ndarray
    raw: np.ndarray
    cycles: int | None = None
    info: dict = field(default_factory=dict)


def quantize_input(image: Image, x) -> np.ndarray:
    fmt = image.manifest["input"]
    if fmt["format"] == "fixed":
        return to_fixed(x, fmt["frac"], fmt["width"])
    return quantize_activations(x, fmt["scale"], fmt["zero_point"])


def saturated_inputs(image: Image, x) -> int:
    """How many values of ``x`` lie outside the input format's range (they saturate)."""
    fmt = image.manifest["input"]
    x = np.asarray(x, dtype=np.float64)
    if fmt["format"] == "fixed":
        top = 2.0 ** (fmt["width"] - 1 - fmt["frac"])
        lo, hi = -top, top - 2.0 ** -fmt["frac"]
    else:
        lo = (-128 - fmt["zero_point"]) * fmt["scale"]
        hi = (127 - fmt["zero_point"]) * fmt["scale"]
    step = 2.0 ** -fmt["frac"] if fmt["format"] == "fixed" else fmt["scale"]
    return int(np.count_nonzero((x < lo - step / 2) | (x > hi + step / 2)))


def memory_estimate(image: Image, batch: int) -> int:
    """Bytes a golden run of ``batch`` inputs needs at its largest layer (an estimate)."""
    memory = image_engine(image.engine).memory
    return max((memory(spec, batch) for spec in image.manifest["layers"]), default=0)


def _dequantize_output(image: Image, y) -> np.ndarray:
    fmt = image.manifest["output"]
    if fmt["format"] == "fixed":
        return np.asarray(y, np.float64) * 2.0 ** -fmt["frac"]
    return dequantize(y, fmt["scale"], fmt["zero_point"])


def check_inputs(image: Image, x) -> np.ndarray:
    """``x`` as float64[N, in] for ``image``'s first layer; one-line errors otherwise."""
    x = np.asarray(x, dtype=np.float64)
    n_in = image.manifest["layers"][0]["in"]
    if x.ndim == 1 and x.size == n_in:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n_in or len(x) == 0:
        raise ValueError(f"inputs must have shape (N, {n_in}) with N >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or Inf")
    return x


def run_image(image: Image, x, engine="golden", progress=None) -> RunResult:
    """Run ``x`` (float[batch, in]) through the image on ``engine``: ``"golden"``,
    ``"rtl"`` or a backend object (:mod:`quantize.backends`, e.g. a board's)."""
    engine = backend_of(engine)
    x = check_inputs(image, x)
    budget.check(memory_estimate(image, len(x)), f"running {len(x)} inputs through "
                 f"{image.directory}", "run fewer inputs at a time")
    if engine.builds:
        budget.check_generator(image.config)
    saturated = saturated_inputs(image, x)
    xq = quantize_input(image, x)
    raw, cycles, info = image_engine(image.engine).run(image, xq, engine, progress)
    info["saturated_inputs"] = saturated
    return RunResult(_dequantize_output(image, raw), raw, cycles, info)


def check_graph_inputs(image: GraphImage, x) -> np.ndarray:
    """``x`` as float64 ``[batch, *input_shape]`` (flattened rows accepted); one-line
    errors otherwise."""
    x = np.asarray(x, dtype=np.float64)
    shape = image.qgraph.graph.input_shape
    size = int(np.prod(shape))
    if x.ndim == 2 and len(shape) > 1 and x.shape[1] == size:
        x = x.reshape(len(x), *shape)
    if x.shape == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or len(x) == 0:
        dims = ", ".join(map(str, shape))
        raise ValueError(f"inputs must have shape (N, {dims}) (or (N, {size})) with N >= 1, "
                         f"got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or Inf")
    return x


def run_graph_image(image: GraphImage, x, engine="golden", progress=None):
    """Run float inputs through the image on ``engine`` (``"golden"``, ``"rtl"`` or a
    backend): :func:`quantize.graph_run.run_graph` on the image's int8 graph and config."""
    x = check_graph_inputs(image, x)
    budget.check(graph_memory_estimate(image, len(x)), f"running {len(x)} inputs through "
                 f"{image.directory}", "run fewer inputs at a time")
    return run_graph(image.qgraph, x, engine, config=image.config, progress=progress)


def graph_memory_estimate(image: GraphImage, batch: int) -> int:
    """Bytes a golden run of ``batch`` inputs needs at its largest layer (an estimate:
    int64 im2col patches, weights and results of a GEMM; a few copies of a host op's
    values)."""
    largest = 0
    for layer in image.qgraph.layers:
        if layer.kind == "gemm":
            lw = lower(layer.node, layer.in_shape, batch)
            words = lw.count * (lw.m * lw.k + lw.k * lw.n + 3 * lw.m * lw.n)
        else:
            words = 4 * batch * int(np.prod(layer.shape))
        largest = max(largest, 8 * words)
    return largest


def cycles_path(output) -> Path:
    """The cycles sidecar of an outputs file: ``Y.npy`` → ``Y.cycles.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".cycles.json")


def engine_layer_names(image) -> list[str]:
    """The names of the layers that run on the engine, in order (a graph's GEMM layers; an
    MLP's layers)."""
    if is_graph(image):
        return [layer.name for layer in image.qgraph.layers if layer.kind == "gemm"]
    return [spec["name"] for spec in image.manifest["layers"]]


def _is_sidecar(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == CYCLES_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def record_cycles(output, image, backend: str, inputs: int, total, layer_cycles=None):
    """Write the cycles sidecar of ``output`` (:func:`cycles_path`) for a run of ``inputs``
    inputs on ``backend`` that measured ``total`` cycles, ``layer_cycles`` per engine layer
    (:func:`engine_layer_names`) when measured per layer. A run that measured none
    (``total`` ``None``) removes an older sidecar of ours, which described other outputs.
    Returns the sidecar's path, or ``None``."""
    path = cycles_path(output)
    if total is None:
        if path.is_file() and _is_sidecar(path):
            path.unlink()
        return None
    names = engine_layer_names(image)
    if layer_cycles is None:
        layer_cycles = [None] * len(names)
    if len(layer_cycles) != len(names):
        raise ValueError(f"{len(layer_cycles)} layer cycle counts for {len(names)} engine "
                         f"layers")
    record = {"format": CYCLES_FORMAT, "version": 1, "image": image.manifest["digest"],
              "engine": image.engine, "backend": backend, "inputs": int(inputs),
              "total_cycles": int(total),
              "layers": [{"name": n, "cycles": None if c is None else int(c)}
                         for n, c in zip(names, layer_cycles, strict=True)]}
    with output_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_cycles(path, image) -> dict:
    """The cycles sidecar at ``path``, checked against ``image``: one-line ``ValueError`` for
    a file that is not one, or that was measured on another image."""
    path = Path(path)
    try:
        if path.stat().st_size > 1 << 24:
            raise ValueError(f"--cycles {path}: over 16 MiB, not a cycles file")
        record = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"--cycles {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"--cycles {path}: not a cycles file (not text)") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"--cycles {path}: not a cycles file ({e.msg} at line {e.lineno})") \
            from None
    if not isinstance(record, dict) or record.get("format") != CYCLES_FORMAT:
        raise ValueError(f"--cycles {path}: not a cycles file (written by nnaccel run -o Y.npy "
                         f"on rtl, as Y.cycles.json)")
    if record.get("version") != 1:
        raise ValueError(f"--cycles {path}: version {record.get('version')!r}, this nnaccel "
                         f"reads version 1")
    if record.get("image") != image.manifest["digest"]:
        raise ValueError(f"--cycles {path}: measured on another image (checksum "
                         f"{str(record.get('image'))[:12]}, this image "
                         f"{image.manifest['digest'][:12]}); run this image to measure it")
    names = engine_layer_names(image)
    layers = record.get("layers")
    ok = (isinstance(layers, list) and all(isinstance(r, dict) for r in layers)
          and [r.get("name") for r in layers] == names
          and all(r.get("cycles") is None or _count(r["cycles"]) for r in layers)
          and _count(record.get("total_cycles")) and _count(record.get("inputs"))
          and record["inputs"] > 0)
    if not ok:
        raise ValueError(f"--cycles {path}: malformed (want inputs, total_cycles and one "
                         f"entry per engine layer: {', '.join(names)})")
    return record


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
