"""The systolic engine's golden and Verilator backends.

:func:`run_gemm` runs one GEMM on ``engine="golden"`` (:mod:`sim.golden.systolic`) or
``engine="rtl"`` (the generated Verilog under Verilator, cocotb testbench
:mod:`sim.tb.systolic` on :class:`sim.systolic_harness.SystolicHarness`, which reports
the engine's cycles); :func:`run_jobs` runs several back to back in one simulation,
handing each job's beats to the simulation as files. Packing jobs into beats and reading
results back is the driver's (:mod:`hw.systolic.driver`); this module only moves them.
"""

import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.systolic import driver
from hw.systolic.config import SystolicConfig
from hw.systolic.driver import PackedGemm, model_cycles, pack, unpack

from . import rtl
from .beat_source import VERILOG
from .golden import systolic as golden
from .systolic_harness import STREAMS, SystolicHarness

__all__ = ["GemmJob", "GemmRun", "PackedGemm", "pack", "unpack", "run_gemm", "run_jobs",
           "model_cycles", "random_job", "rtl_build"]


class GemmJob(driver.GemmJob):
    """:class:`hw.systolic.driver.GemmJob` with its golden result."""

    def golden(self, rounding: str) -> np.ndarray:
        return golden.gemm(self.a, self.w, self.bias, self.multiplier, self.shift,
                           self.input_zero_point, self.output_zero_point, self.act_min,
                           self.act_max, rounding, self.lut)


@dataclass
class GemmRun:
    output: np.ndarray
    cycles: int
    counters: dict = field(default_factory=dict)
    engine: str = "golden"

    @property
    def useful_macs(self) -> int:
        return int(self.counters.get("useful_macs", 0))


def random_job(rng: np.random.Generator, m: int, k: int, n: int, *,
               extreme: bool = False) -> GemmJob:
    """A random requantized GEMM whose outputs spread over the int8 range."""
    if extreme:
        a = rng.choice(np.array([-128, 127, -127, 0], np.int64), (m, k))
        w = rng.choice(np.array([-128, 127, -127, 0], np.int64), (k, n))
    else:
        a = rng.integers(-128, 128, (m, k))
        w = rng.integers(-128, 128, (k, n))
    zp_in = int(rng.integers(-128, 128))
    acc_scale = 128.0 * 128.0 * np.sqrt(k)
    bias = rng.integers(-int(acc_scale), int(acc_scale) + 1, n)
    real = rng.uniform(0.3, 3.0, n) * 40.0 / acc_scale
    mant, exp = np.frexp(real)
    multiplier = np.minimum(np.round(mant * (1 << 31)).astype(np.int64), (1 << 31) - 1)
    shift = np.clip(exp, -31, 30)
    return GemmJob(a, w, bias, multiplier, shift, zp_in, int(rng.integers(-20, 21)))


def rtl_build(cfg: SystolicConfig):
    """The Verilator model of :class:`sim.systolic_harness.SystolicHarness` (the engine
    with beat sources on its input streams), keyed by the config and the systolic
    engine's own sources."""
    return rtl.build("systolic_top", cfg, lambda: SystolicHarness(cfg),
                     sources=("hw/systolic", "hw/multiplier.py", "hw/bits.py", "hw/config.py",
                              "hw/words.py", "hw/runtime_memory.py", "sim/systolic_harness.py",
                              "sim/beat_source.py"),
                     verilog=(VERILOG,))


def _write_job(cfg: SystolicConfig, job: GemmJob, folder: Path, name: str) -> dict:
    """Write ``job``'s beats as one hex file per stream (what the harness's beat sources
    play); return the testbench's description of the job."""
    packed = pack(cfg, job)
    beats = {"act": packed.act, "weight": packed.weight, "param": packed.param,
             "cmd": [packed.command]}
    files = {}
    for prefix, words in beats.items():
        files[prefix] = str(folder / f"{name}_{prefix}.hex")
        Path(files[prefix]).write_text("".join(f"{w:x}\n" for w in words))
    # Generous: every beat and result word at 40 cycles, each result row per weight tile.
    limit = (40 * sum(len(w) for w in beats.values()) + 20000
             + 40 * packed.result_words * max(1, len(packed.weight) // cfg.rows))
    return {"files": files, "counts": {p: len(w) for p, w in beats.items()},
            "result_words": packed.result_words, "limit_cycles": limit}


def run_jobs(cfg: SystolicConfig, jobs: list[GemmJob], *, stall: float = 0.0, seed: int = 0,
             reset_after: dict | None = None, act_stall: float | None = None,
             act_delay: int = 0) -> list[GemmRun]:
    """Run ``jobs`` back to back in one Verilator simulation.

    ``stall`` is the probability that a stream source idles or the result sink refuses in
    any cycle; ``act_stall``, if given, the activation source's instead, and ``act_delay``
    starts that source so many cycles after the others (each job's command is then taken
    before its activations arrive). ``reset_after`` maps a job index to a cycle count: that
    job is started, reset after that many cycles, then run again from scratch.
    """
    build = rtl_build(cfg)
    keep = os.environ.get("WAVES", "0") not in ("", "0")  # keep dump.fst for the user
    workdir = (nullcontext(tempfile.mkdtemp(prefix="gemm-", dir=_tmp_root())) if keep
               else tempfile.TemporaryDirectory(prefix="gemm-", dir=_tmp_root()))
    with workdir as tmp:
        tmp = Path(tmp)
        if keep:
            print(f"waveform (dump.fst or dump.vcd) in {tmp / 'sim'}")
        params = {"jobs": [_write_job(cfg, job, tmp, f"job{i}") for i, job in enumerate(jobs)],
                  "streams": {prefix: file for prefix, (_, file) in STREAMS.items()},
                  "stall": stall, "seed": seed, "act_stall": act_stall,
                  "act_delay": act_delay,
                  "reset_after": {str(k): v for k, v in (reset_after or {}).items()}}
        result = rtl.run(build, "sim.tb.systolic", params, workdir=tmp / "sim")
        runs = []
        for i, job in enumerate(jobs):
            m, _, n = job.shape
            r = result["runs"][i]
            out = unpack(cfg, [int(w, 16) for w in r["words"]], m, n)
            counters = driver.parse_counters(int(r["counters"], 16))
            runs.append(GemmRun(out, r["cycles"], counters, "rtl"))
        return runs


def _tmp_root() -> Path:
    root = rtl.BUILD_ROOT / "sim" / "jobs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_gemm(cfg: SystolicConfig, a, w, bias, multiplier, shift, input_zero_point=0,
             output_zero_point=0, act_min=-128, act_max=127, *, engine: str = "golden",
             stall: float = 0.0, seed: int = 0, lut=None) -> GemmRun:
    """Run one GEMM on ``engine`` ("golden" or "rtl"), through the activation table
    ``lut`` (256 int8) if given."""
    job = GemmJob(a, w, bias, multiplier, shift, input_zero_point, output_zero_point,
                  act_min, act_max, lut)
    m, k, n = job.shape
    cfg.check_gemm(m, k, n)
    if engine == "golden":
        return GemmRun(job.golden(cfg.rounding), 0, {"useful_macs": m * k * n}, "golden")
    if engine == "rtl":
        return run_jobs(cfg, [job], stall=stall, seed=seed)[0]
    raise ValueError(f"engine={engine!r}: use 'golden' or 'rtl'")
