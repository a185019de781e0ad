"""One sweep point measured: the task a Dask worker (or the serial loop) runs.

:func:`run_point` takes a point as a plain dict (:meth:`~sim.sweep.spec.Point.to_dict`) and
returns a plain dict, so a point crosses to a remote worker and back as JSON would.

* ``model``: systolic cycles from :func:`hw.systolic.driver.model_cycles`; EIE cycles from
  the queue model (:mod:`sim.sweep.eie_model`) beside the busiest PE's work bound.
* ``rtl``: the Verilator model of the config (built once per config and reused, as every
  RTL run here), random data, every output word checked against the golden model
  (``mismatches``).
* ``synth``: the board flow (:func:`boards.synth.synthesize`) with one nextpnr seed;
  resources, Fmax and whether it fits. A design the device cannot hold is a result
  (``fits: false`` with the overflowing resource), not a failure.

:data:`SOURCES` names, per measure, the files whose content decides its result; their hash
is part of a result's key (:mod:`sim.sweep.store`), so a code change reruns only the points
it can affect.
"""

import hashlib
import os
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from boards.engines import EIE_BOARD_DEFAULTS
from boards.synth import synthesize
from hw.eie import EieConfig
from hw.eie.csc import encode
from hw.systolic import SystolicConfig
from hw.systolic.driver import model_cycles
from sim.eie import build_image, run_rtl_cases
from sim.golden import eie as golden_eie
from sim.rtl import BUILD_ROOT, REPO
from sim.systolic import random_job, run_jobs

from . import workloads as wl
from .eie_model import column_work, layer_cycles, useful_macs

__all__ = ["run_point", "resolve_config", "source_hash", "SOURCES"]

#: What defines the workloads (benchmark layers, convolutions, compressed images).
_WORKLOADS = ("sim/sweep/measures.py", "sim/sweep/workloads.py", "sim/bench/eie.py",
              "sim/bench/convs.py", "sim/eie.py", "quantize/lower.py", "quantize/graph.py",
              "quantize/image.py", "quantize/graph_image.py")
#: Per measure: the files and folders (``*.py`` in them) its results depend on.
SOURCES = {
    "model": ("hw", *_WORKLOADS, "sim/sweep/eie_model.py"),
    "rtl": ("hw", *_WORKLOADS, "sim/systolic.py", "sim/rtl.py", "sim/verilator.py",
            "sim/golden", "sim/tb", "sim/beat_source.py", "sim/eie_harness.py",
            "sim/systolic_harness.py"),
    "synth": ("hw", "boards", *_WORKLOADS),
}


#: Each engine's own package under ``hw/``: a point of one engine does not depend on the
#: other's.
_ENGINE_PACKAGES = {"systolic": "hw/systolic", "eie": "hw/eie"}


def source_hash(measure: str, root: Path = REPO, engine: str | None = None) -> str:
    """SHA-256 (16 hex digits) of the sources :data:`SOURCES` names for ``measure``; with
    ``engine``, without the other engines' packages."""
    skip = [root / d for e, d in _ENGINE_PACKAGES.items() if engine not in (None, e)]
    digest = hashlib.sha256()
    for name in SOURCES[measure]:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            if any(f.is_relative_to(d) for d in skip):
                continue
            digest.update(str(f.relative_to(root)).encode() + b"\0")
            digest.update(f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@cache
def _encoded(text: str, config: EieConfig):
    """Layer, input and encoding of an EIE workload (kept per worker process: the queue
    depths of one PE count share them)."""
    layer, acts = wl.eie_layer(text, config)
    return layer, acts, encode(layer["indices"], config)


def _eie_key(config: EieConfig) -> EieConfig:
    # Only these fields shape the random layer and its encoding.
    return EieConfig(pes=config.pes, index_bits=config.index_bits, zrun_bits=config.zrun_bits,
                     weight_width=config.weight_width, weight_frac=config.weight_frac,
                     act_width=config.act_width, act_frac=config.act_frac,
                     word_bits=config.word_bits, acc_width=64)


def resolve_config(point: dict):
    """The engine config a point measures: the spec's axes, memory depths not given sized
    for the point's ``fit`` workloads (without workloads: the engine's defaults; for EIE the
    board-sized memories of :data:`boards.engines.EIE_BOARD_DEFAULTS`)."""
    axes, fit = dict(point["axes"]), list(point["fit"])
    if point["engine"] == "systolic":
        gemms = [g for w in fit for g in wl.gemms(w)]
        if not gemms:
            return SystolicConfig(**axes)
        config = SystolicConfig.fit(gemms, **axes)
        for gemm in gemms:
            config.check_gemm(*gemm)              # depths the spec gives may be too small
        return config
    if not fit:
        return EieConfig(**{**EIE_BOARD_DEFAULTS, **axes})
    probe = EieConfig().replace(**{"acc_width": 64, **axes})
    needs = {}
    for text in fit:
        csc = _encoded(text, _eie_key(probe))[2]
        for name, value in probe.needs([csc]).items():
            needs[name] = max(needs.get(name, 0), value)
    config = EieConfig.fit(needs, **axes)
    for name, need in needs.items():
        if getattr(config, name) < need:
            raise ValueError(f"EieConfig.{name}={getattr(config, name)} is too small for the "
                             f"workloads (they need {need}): raise it or leave it out")
    return config


def run_point(point: dict) -> dict:
    """Measure one point; raises on failure (the runner records the error)."""
    config = resolve_config(point)
    engine, measure = point["engine"], point["measure"]
    if measure == "synth":
        return _synth(point, engine, config)
    if measure == "model":
        return (_systolic_model if engine == "systolic" else _eie_model)(point, config)
    with _quiet():
        return (_systolic_rtl if engine == "systolic" else _eie_rtl)(point, config)


@contextmanager
def _quiet():
    """Simulator logs into each run's sim.log (:func:`sim.rtl.run`), not over the
    sweep's progress line."""
    saved = os.environ.get("NNACCEL_QUIET")
    os.environ["NNACCEL_QUIET"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["NNACCEL_QUIET"]
        else:
            os.environ["NNACCEL_QUIET"] = saved


def _perf(config, cycles: int, macs: int, peak: int, **more) -> dict:
    return {"config": config.to_dict(), "cycles": int(cycles), "macs": int(macs),
            "peak_macs_per_cycle": peak, "macs_per_cycle": macs / cycles,
            "utilization": macs / (peak * cycles), **more}


def _systolic_model(point, config: SystolicConfig) -> dict:
    gemms = wl.gemms(point["workload"])
    cycles = sum(model_cycles(config, m, k, n) for m, k, n in gemms)
    return _perf(config, cycles, sum(m * k * n for m, k, n in gemms), config.macs,
                 gemms=len(gemms))


def _systolic_rtl(point, config: SystolicConfig) -> dict:
    gemms = wl.gemms(point["workload"])
    rng = np.random.default_rng(0)
    jobs = [random_job(rng, m, k, n) for m, k, n in gemms]
    runs = run_jobs(config, jobs)
    mismatches = sum(int((r.output != j.golden(config.rounding)).sum())
                     for r, j in zip(runs, jobs, strict=True))
    model = sum(model_cycles(config, m, k, n) for m, k, n in gemms)
    return _perf(config, sum(r.cycles for r in runs), sum(m * k * n for m, k, n in gemms),
                 config.macs, gemms=len(gemms), mismatches=mismatches, model_cycles=model)


def _eie_model(point, config: EieConfig) -> dict:
    _, acts, csc = _encoded(point["workload"], _eie_key(config))
    _, work = column_work(csc, config, acts)
    bound = int(work.sum(axis=1).max()) if work.size else 0
    return _perf(config, layer_cycles(work, config.queue_depth, csc.rows),
                 useful_macs(csc, config, acts), config.pes, work_cycles=bound,
                 nonzero_inputs=int(work.shape[1]))


def _eie_rtl(point, config: EieConfig) -> dict:
    layer, acts, csc = _encoded(point["workload"], _eie_key(config))
    image = build_image(config, [layer])
    got = run_rtl_cases(config, [{"image": image, "activations": acts}])[0]
    want = golden_eie.layer(layer["indices"], acts, config, codebook=layer["codebook"],
                            relu=layer["relu"])
    mismatches = int(np.count_nonzero(np.asarray(got["outputs"]) != want))
    # The queue model's cycles are the model point's: an RTL record does not depend on it.
    return _perf(config, got["cycles"], useful_macs(csc, config, acts), config.pes,
                 mismatches=mismatches)


def _synth(point, engine: str, config) -> dict:
    digest = hashlib.sha256(repr((engine, config, point["board"], point["clock_mhz"],
                                  point["seed"])).encode()).hexdigest()[:12]
    build_dir = BUILD_ROOT / "sweep" / "synth" / f"{point['board']}-{engine}-{digest}"
    out = {"config": config.to_dict(), "board": point["board"], "seed": point["seed"]}
    limit = point.get("pnr_timeout_min")
    try:
        # A place and route stopped at the limit raises TimeoutError: the point fails with
        # that line (how far the router got), and runs again next time.
        report = synthesize(point["board"], engine, config, build_dir=build_dir,
                            clock_mhz=point["clock_mhz"] or None, seeds=(point["seed"],),
                            pnr_timeout=None if limit is None else limit * 60)
    except ValueError as e:
        if "does not fit" not in str(e):
            raise
        return {**out, "fits": False, "reason": str(e)}
    fmax = min(report.fmax_mhz.values()) if report.fmax_mhz else None
    return {**out, "fits": True, "device": report.device, "fmax_mhz": fmax,
            "clock_mhz": report.clock_mhz, "clock_met": report.clock_met,
            "resources": report.resources,
            "utilisation": {k: list(v) for k, v in report.utilisation.items()},
            "synth_seconds": round(report.seconds, 1),
            "build_dir": str(build_dir.relative_to(REPO) if build_dir.is_relative_to(REPO)
                             else build_dir)}
