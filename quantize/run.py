"""Run a compressed network from its image on any backend.

Inputs are float, as the trained net expects them; quantizing them is part of the
compressed model (the manifest's input format). Outputs come back dequantized, one row per
input. ``engine="golden"`` chains the project's golden models (``sim/golden``);
``engine="rtl"`` runs the generated engine under Verilator and reports cycles; a board
backend (:class:`quantize.backends.Board`) runs it on an FPGA. Every backend takes the
same driver-level work (:mod:`quantize.backends`).
"""

from dataclasses import dataclass, field

import numpy as np

from hw.eie import csc
from hw.eie import driver as eie_driver
from hw.eie.csc import unpack_words
from hw.systolic.driver import GemmJob
from sim import budget
from sim.golden import eie as eie_golden

from .backends import backend as backend_of
from .backends import dense_layers
from .fixedpoint import to_fixed
from .image import Image
from .int8 import dequantize, quantize_activations

__all__ = ["RunResult", "run_image", "check_inputs", "quantize_input", "eie_layers",
           "saturated_inputs", "memory_estimate"]


@dataclass
class RunResult:
    """Members: ``outputs`` (float64[batch, out], dequantized), ``raw`` (the engine's
    integer outputs), ``cycles`` (total engine cycles, RTL only), ``info``."""

    outputs: np.ndarray
    raw: np.ndarray
    cycles: int | None = None
    info: dict = field(default_factory=dict)


def eie_layers(image: Image) -> list[dict]:
    """Per layer: the :class:`hw.eie.csc.CscLayer`, codebook, bias and ReLU flag."""
    cfg = image.config
    out = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=False):
        words = np.split(arrays["spmat"], np.cumsum(spec["pe_words"])[:-1])
        entries = np.concatenate([unpack_words(w, n, cfg)
                                  for w, n in zip(words, spec["pe_entries"], strict=False)])
        offsets = np.concatenate(([0], np.cumsum(spec["pe_entries"]))).astype(np.int64)
        codebook = arrays["codebook"].astype(np.int64)
        layer = csc.CscLayer(spec["out"], spec["in"], cfg.pes, cfg.index_bits, cfg.zrun_bits,
                             entries, offsets, arrays["ptr"].astype(np.int64), codebook)
        out.append({"name": spec["name"], "csc": layer, "codebook": codebook,
                    "bias": arrays["bias"].astype(np.int64), "relu": spec["relu"]})
    return out


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
    worst = 0
    for spec in image.manifest["layers"]:
        n_in, n_out = spec["in"], spec["out"]
        if image.engine == "eie":
            entries = sum(spec["pe_entries"])
            need = n_in * n_out * 2 + entries * 64 + batch * (n_in + n_out) * 8
        else:
            need = 8 * (batch * n_in + n_in * n_out + 3 * batch * n_out)
        worst = max(worst, need)
    return worst


def _dequantize_output(image: Image, y) -> np.ndarray:
    fmt = image.manifest["output"]
    if fmt["format"] == "fixed":
        return np.asarray(y, np.float64) * 2.0 ** -fmt["frac"]
    return dequantize(y, fmt["scale"], fmt["zero_point"])


def _run_eie(image: Image, xq: np.ndarray, backend, progress):
    layers = eie_layers(image)
    built = eie_driver.build_image(image.config, [
        {"csc": spec["csc"], "codebook": spec["codebook"], "bias": spec["bias"],
         "relu": spec["relu"]} for spec in layers])
    results = backend.eie(layers, built, xq, progress)
    outputs = np.array([np.asarray(r["outputs"]) for r in results], dtype=np.int64)
    if not backend.timed:
        return outputs, None, {}
    cycles = [r["cycles"] for r in results]
    info = {"cycles_per_input": cycles, "ideal_cycles": [
        eie_driver.ideal_cycles(built, _layer_inputs(layers, x, image.config)) for x in xq]}
    if all("layer_cycles" in r for r in results):
        info["layer_cycles"] = [int(c) for c in np.sum([r["layer_cycles"] for r in results],
                                                       axis=0)]
    return outputs, int(sum(cycles)), info


def _layer_inputs(layers, x, config):
    return [np.asarray(x)] + eie_golden.run(dense_layers(layers), x, config)[:-1]


def _chunks(image: Image, m: int) -> list[slice]:
    cfg = image.config
    kt = max(-(-spec["in"] // cfg.rows) for spec in image.manifest["layers"])
    size = max(1, min(cfg.acc_depth, cfg.act_depth // kt))
    return [slice(i, min(i + size, m)) for i in range(0, m, size)]


def _run_systolic(image: Image, xq: np.ndarray, backend, progress):
    a = xq
    per_layer = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=True):
        args = (arrays["weight"], arrays["bias"], arrays["multiplier"], arrays["shift"],
                spec["input"]["zero_point"], spec["output"]["zero_point"], spec["act_min"],
                spec["act_max"])
        parts = _chunks(image, len(a)) if backend.chunked else [slice(0, len(a))]
        runs = backend.gemms(image.config, [GemmJob(a[p], *args) for p in parts],
                             f"{spec['name']}: {len(a)}x{spec['in']}x{spec['out']}", progress)
        a = np.concatenate([r["output"] for r in runs]).astype(np.int64)
        if backend.timed:
            per_layer.append(sum(r["cycles"] for r in runs))
    info = {"layer_cycles": per_layer} if per_layer else {}
    return a, (sum(per_layer) if backend.timed else None), info


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
    run = {"eie": _run_eie, "systolic": _run_systolic}[image.engine]
    raw, cycles, info = run(image, xq, engine, progress)
    info["saturated_inputs"] = saturated
    return RunResult(_dequantize_output(image, raw), raw, cycles, info)
