"""Run a compressed network from its image on any backend.

Inputs are float, as the trained net expects them; quantizing them is part of the
compressed model (the manifest's input format). Outputs come back dequantized, one row per
input. ``engine="golden"`` chains the project's golden models (``sim/golden``);
``engine="rtl"`` runs the generated engine under Verilator and reports cycles; a board
backend (:class:`quantize.backends.Board`) runs it on an FPGA. Every backend takes the
same driver-level work (:mod:`quantize.backends`). A graph image
(:class:`~quantize.graph_image.GraphImage`) runs with :func:`run_graph_image`, which is
:func:`quantize.graph_run.run_graph` on its int8 graph and config.
"""

from dataclasses import dataclass, field

import numpy as np

from sim import budget

from .backends import backend as backend_of
from .eie_engine import eie_layers
from .engines import image_engine
from .fixedpoint import to_fixed
from .graph_run import run_graph
from .image import GraphImage, Image
from .int8 import dequantize, quantize_activations
from .lower import lower

__all__ = ["RunResult", "run_image", "check_inputs", "quantize_input", "eie_layers",
           "saturated_inputs", "memory_estimate", "check_graph_inputs", "run_graph_image",
           "graph_memory_estimate"]


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
