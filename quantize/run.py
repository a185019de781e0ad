"""Run a compressed network from its image on an engine's golden model or its RTL.

Inputs are float, as the trained net expects them; quantizing them is part of the
compressed model (the manifest's input format). Outputs come back dequantized, one row per
input. ``engine="golden"`` chains the project's golden models (``sim/golden``);
``engine="rtl"`` runs the generated engine under Verilator through the engine's host
driver and reports cycles.
"""

from dataclasses import dataclass, field

import numpy as np

from . import csc
from .fixedpoint import to_fixed
from .image import Image
from .int8 import dequantize, quantize_activations

__all__ = ["RunResult", "run_image", "quantize_input", "eie_layers", "unpack_words"]


@dataclass
class RunResult:
    """Members: ``outputs`` (float64[batch, out], dequantized), ``raw`` (the engine's
    integer outputs), ``cycles`` (total engine cycles, RTL only), ``info``."""

    outputs: np.ndarray
    raw: np.ndarray
    cycles: int | None = None
    info: dict = field(default_factory=dict)


def unpack_words(words: np.ndarray, count: int, config) -> np.ndarray:
    """Entries of one PE from its packed words (inverse of ``csc.pack_words``)."""
    epw, eb = config.entries_per_word, config.entry_bits
    shifts = (np.arange(epw, dtype=np.uint64) * np.uint64(eb))
    lanes = (np.asarray(words, np.uint64)[:, None] >> shifts[None, :]) & np.uint64((1 << eb) - 1)
    return lanes.reshape(-1)[:count].astype(np.uint16)


def eie_layers(image: Image) -> list[dict]:
    """Per layer: the :class:`quantize.csc.CscLayer`, codebook, bias and ReLU flag."""
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


def _dequantize_output(image: Image, y) -> np.ndarray:
    fmt = image.manifest["output"]
    if fmt["format"] == "fixed":
        return np.asarray(y, np.float64) * 2.0 ** -fmt["frac"]
    return dequantize(y, fmt["scale"], fmt["zero_point"])


def _run_eie(image: Image, xq: np.ndarray, engine: str, progress):
    layers = eie_layers(image)
    if engine == "golden":
        from sim.golden import eie as golden
        dense = [{"weights": csc.decode(spec["csc"]), "codebook": spec["codebook"],
                  "bias": spec["bias"], "relu": spec["relu"]} for spec in layers]
        rows = [golden.run(dense, x, image.config)[-1] for x in xq]
        return np.stack(rows), None, {}
    try:
        from sim import eie as driver
    except ModuleNotFoundError as e:
        if e.name != "sim.eie":
            raise
        raise ValueError("the EIE engine's RTL host driver (sim/eie.py) is not available "
                         "yet; use --engine golden") from None
    result = driver.run_network(image.config, layers, xq, engine="rtl", progress=progress)
    return np.asarray(result.outputs), int(result.cycles), getattr(result, "info", {}) or {}


def _run_systolic(image: Image, xq: np.ndarray, engine: str, progress):
    from sim.golden import systolic as golden
    a = xq
    cycles = 0
    per_layer = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=False):
        args = (arrays["weight"], arrays["bias"], arrays["multiplier"], arrays["shift"],
                spec["input"]["zero_point"], spec["output"]["zero_point"], spec["act_min"],
                spec["act_max"])
        if engine == "golden":
            a = golden.gemm(a, *args, rounding=image.config.rounding)
        else:
            from sim import systolic as driver
            if progress:
                progress(f"{spec['name']}: {a.shape[0]}x{spec['in']}x{spec['out']} GEMM on RTL")
            result = driver.run_gemm(image.config, a, *args, engine="rtl")
            a = np.asarray(result.output)
            cycles += int(result.cycles)
            per_layer.append(int(result.cycles))
    info = {"layer_cycles": per_layer} if per_layer else {}
    return a, (cycles if engine == "rtl" else None), info


def run_image(image: Image, x, engine: str = "golden", progress=None) -> RunResult:
    """Run ``x`` (float[batch, in]) through the image on ``golden`` or ``rtl``."""
    if engine not in ("golden", "rtl"):
        raise ValueError(f"--engine {engine!r}: use golden or rtl")
    x = np.asarray(x, dtype=np.float64)
    n_in = image.manifest["layers"][0]["in"]
    if x.ndim == 1 and x.size == n_in:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"inputs must have shape (N, {n_in}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or Inf")
    xq = quantize_input(image, x)
    run = _run_eie if image.engine == "eie" else _run_systolic
    raw, cycles, info = run(image, xq, engine, progress)
    return RunResult(_dequantize_output(image, raw), raw, cycles, info)
