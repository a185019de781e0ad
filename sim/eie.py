"""The EIE engine's golden and Verilator backends.

``run_layers(config, layers, activations, engine=...)`` runs layers on the golden model
(:mod:`sim.golden.eie`) or on the Verilator model of :class:`hw.eie.EieTop` and returns the
outputs and, for the RTL, the counters; :func:`run_rtl_cases` runs several cases in one
simulation. Images, beats, commands and counters are the driver's (:mod:`hw.eie.driver`,
layers as it describes them); this module only moves them.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.eie.config import EieConfig
from hw.eie.csc import decode
from hw.eie.driver import (
    EieImage,
    act_beats,
    balance_layers,
    build_image,
    cmd_payload,
    counter_delta,
    ideal_cycles,
    layer_program,
    load_beats,
    padding_processed,
    parse_counters,
    parse_result,
    unpermute,
    work_cycles,
)
from hw.eie.layouts import load_layout

from . import rtl
from .beat_source import VERILOG
from .eie_harness import EieHarness
from .golden import eie as golden

__all__ = ["run_layers", "run_rtl_cases", "random_layer",
           # The driver's, used with these runners.
           "EieImage", "build_image", "load_beats", "act_beats", "cmd_payload", "parse_result",
           "parse_counters", "ideal_cycles", "work_cycles", "padding_processed",
           "balance_layers", "unpermute"]


def _golden_outputs(image: EieImage, layers, activations) -> list[np.ndarray]:
    specs = []
    for csc, cb, spec in zip(image.layers, image.codebooks, layers, strict=True):
        specs.append({"weights": decode(csc), "codebook": cb, "bias": spec.get("bias"),
                      "relu": spec.get("relu", True)})
    return golden.run(specs, activations, image.config)


def run_layers(config: EieConfig, layers, activations, engine: str = "golden",
               image: EieImage | None = None, balance: bool = False, **rtl_options) -> dict:
    """Run ``layers`` on ``activations``; return ``{"outputs": final outputs (list),
    "layer_outputs": every layer's golden outputs, "ideal_cycles", "padding_entries",
    and for ``engine="rtl"`` the counters, "cycles", "load_seconds", "load_cycles",
    "run_seconds"}``.

    ``engine="golden"`` computes from the decoded image with :mod:`sim.golden.eie`;
    ``engine="rtl"`` builds (or reuses) the Verilator model of ``EieTop(config)``.
    ``balance=True`` assigns rows to PEs by load (:func:`balance_layers`); outputs come
    back in the original order.
    """
    if engine not in ("golden", "rtl"):
        raise ValueError(f"engine={engine!r}: use 'golden' or 'rtl'")
    if balance:
        if image is not None:
            raise ValueError("pass either image or balance=True, not both")
        engine_layers, orders = balance_layers(config, layers)
        result = run_layers(config, engine_layers, activations, engine, **rtl_options)
        result["outputs"] = unpermute(result["outputs"], orders[-1]).tolist()
        result["layer_outputs"] = [unpermute(o, order).tolist() for o, order in
                                   zip(result["layer_outputs"], orders, strict=True)]
        if "emitted" in result:
            result["emitted"] = [unpermute(e, orders[-1]).tolist()
                                 for e in result["emitted"][-1:]]
        result["row_orders"] = [o.tolist() for o in orders]
        return result
    if image is None:
        image = build_image(config, layers)
    elif image.config != config:
        raise ValueError(f"the image was built for {image.config}, not for {config}: "
                         f"build it again for this config")
    outs = _golden_outputs(image, layers, activations)
    inputs = [np.asarray(activations)] + outs[:-1]
    result = {"layer_outputs": [o.tolist() for o in outs],
              "ideal_cycles": ideal_cycles(image, inputs),
              "work_cycles": int(work_cycles(image, inputs).max()),
              "padding_entries": padding_processed(image, inputs)}
    if engine == "golden":
        result.update(outputs=outs[-1].tolist(), cycles=None)
        return result
    rtl = run_rtl_cases(config, [{"image": image, "activations": activations,
                                  **rtl_options}])[0]
    result.update(rtl)
    return result


def run_rtl_cases(config: EieConfig, cases: list[dict], workdir: Path | None = None) -> list:
    """Run several cases in one cocotb simulation of ``EieTop(config)``.

    Each case: ``image`` (:class:`EieImage`), ``activations``, and optional ``stalls``
    (probability of idle/backpressure cycles on every stream, default 0), ``seed``,
    ``reset_after`` (cycles into the first layer at which to pulse reset, then reload the
    inputs and run again), ``emit_all`` (emit every layer's outputs), ``queue_limit``
    (run with activation queues capped at this depth).
    Returns per case: ``outputs`` (final), ``emitted`` (every emitted layer), counter
    deltas, ``cycles`` and wall times.
    """
    build = _build(config)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="eie-", dir=_sim_dir()))
    jobs = []
    digits = -(-load_layout(config).size // 4)
    for number, case in enumerate(cases):
        image = case["image"]
        if image.config != config:
            raise ValueError(f"case {number}: image built for another config "
                             f"({image.config}); build it for {config}")
        path = workdir / f"case{number}.npz"
        program = layer_program(image, emit_all=bool(case.get("emit_all")),
                                queue_limit=case.get("queue_limit"))
        # Load beats go to files the simulation's beat source reads ($readmemh).
        loads = {"load": load_beats(image, case["activations"]),
                 "acts": act_beats(image, case["activations"])}
        for suffix, words in loads.items():
            (workdir / f"case{number}_{suffix}.hex").write_text(
                "".join(f"{w:0{digits}x}\n" for w in words))
        np.savez(path, beats=np.array(len(loads["load"])), acts=np.array(len(loads["acts"])),
                 cmds=np.array([hex(step["payload"]) for step in program]),
                 emits=np.array([step["emit"] for step in program]),
                 rows=np.array([step["rows"] for step in program]),
                 out_features=np.array([step["out_features"] for step in program]))
        jobs.append({"file": str(path), "stalls": float(case.get("stalls", 0.0)),
                     "load_file": str(workdir / f"case{number}_load.hex"),
                     "acts_file": str(workdir / f"case{number}_acts.hex"),
                     "seed": int(case.get("seed", number)),
                     "reset_after": case.get("reset_after")})
    start = time.monotonic()
    raw = rtl.run(build, "sim.tb.eie", {"config": config.to_dict(), "cases": jobs},
                  workdir=workdir)
    wall = time.monotonic() - start
    results = []
    for got in raw["cases"]:
        delta = counter_delta(config, int(got["counters_before"], 16),
                              int(got["counters_after"], 16))
        results.append({"outputs": got["emitted"][-1], "emitted": got["emitted"],
                        "counters": delta, "cycles": delta["cycles"],
                        "load_seconds": got["load_seconds"],
                        "load_cycles": got["load_cycles"],
                        "run_seconds": got["run_seconds"],
                        "sim_cycles": got["sim_cycles"],
                        "build_seconds": build.build_seconds, "build_cached": build.cached,
                        "wall_seconds": wall})
    (workdir / "results.json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k not in ("outputs", "emitted")} for r in results]))
    return results


def _build(config: EieConfig):
    """The Verilator model of :class:`sim.eie_harness.EieHarness` (:func:`sim.rtl.build`): the
    engine with a beat source on its load stream, keyed by the config
    and the EIE engine's own sources, so work on other engines does not force a rebuild."""
    return rtl.build("eie_top", config, lambda: EieHarness(config),
                     sources=("hw/eie", "hw/multiplier.py", "hw/bits.py", "hw/config.py",
                              "hw/words.py", "hw/runtime_memory.py", "sim/eie_harness.py",
                              "sim/beat_source.py"),
                     verilog=(VERILOG,))


def _sim_dir() -> Path:
    path = rtl.BUILD_ROOT / "sim"
    path.mkdir(parents=True, exist_ok=True)
    return path


def random_layer(config: EieConfig, in_features: int, out_features: int, density: float,
                 act_density: float, seed: int = 0):
    """A random sparse layer and input, as in EIE's benchmark: uniformly random non-zero
    positions (``density``), codebook indices 1..15 uniform, a 16-entry codebook of
    weights in about ±0.1, and non-negative inputs (post-ReLU) with ``act_density``
    non-zeros. Returns ``(layer, activations)``."""
    for name, value in (("density", density), ("act_density", act_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value}: use a fraction from 0 to 1")
    if in_features < 1 or out_features < 1:
        raise ValueError("in_features and out_features must be at least 1")
    rng = np.random.default_rng(seed)
    k = config.codebook_size
    indices = np.zeros((out_features, in_features), dtype=np.uint8)
    step = max(1, (1 << 24) // in_features)
    for r0 in range(0, out_features, step):
        block = indices[r0:r0 + step]
        mask = rng.random(block.shape, dtype=np.float32) < density
        block[mask] = rng.integers(1, k, int(mask.sum()), dtype=np.uint8)
    scale = 1 << config.weight_frac
    codebook = np.concatenate([[0], np.round(np.linspace(-0.1, 0.1, k - 1) * scale)])
    codebook = np.clip(codebook, -(1 << (config.weight_width - 1)),
                       (1 << (config.weight_width - 1)) - 1).astype(np.int64)
    amax = min((1 << (config.act_width - 1)) - 1, 4 << config.act_frac)
    act = rng.integers(1, amax + 1, in_features) * (rng.random(in_features) < act_density)
    return {"indices": indices, "codebook": codebook, "relu": True}, act.astype(np.int64)
