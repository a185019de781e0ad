"""The systolic engine's part of the soak: random requantized GEMMs, every output word checked.

A *vector* is one row of ``A``: ``K`` int8 inputs in, ``N`` int8 outputs out. A batch is a
list of GEMMs (mostly large ``M``, some tiny) whose rows add up to the batch's vector
count, run back to back in one simulation of the existing testbench
(:func:`sim.systolic.run_jobs`) with one random stall probability on every stream; each
output is compared with :func:`sim.golden.systolic.gemm`.
"""

from pathlib import Path

import numpy as np

from hw.systolic import PRESETS
from sim.golden.systolic import INT32_MAX, INT32_MIN
from sim.systolic import GemmJob, random_job, rtl_build, run_jobs

__all__ = ["CONFIGS", "SHARES", "BATCH_VECTORS", "random_gemm", "make_batch", "run_batch"]

#: The builds the RTL tests make (so the Verilator cache is shared): both rounding modes.
CONFIGS = {
    "8x8": PRESETS["8x8"],
    "4x4": PRESETS["4x4"],
    "4x4-single": PRESETS["4x4"].replace(rounding="single"),
}
#: Fraction of the vectors each config gets.
SHARES = {"8x8": 0.6, "4x4": 0.2, "4x4-single": 0.2}
#: Rows of A per simulation: each simulation costs a couple of seconds to start.
BATCH_VECTORS = 50000

_CORNER_MULTIPLIERS = [INT32_MAX, INT32_MAX - 1, 1 << 30, (1 << 30) + 1, 1, 0]
_CORNER_SHIFTS = [30, 29, 1, 0, -1, -30, -31]
_CORNER_BIAS = [INT32_MAX, INT32_MIN, 0, -1, 1 << 24, -(1 << 24)]


def _tiles(rng: np.random.Generator, size: int) -> int:
    """A dimension over one to three tiles of ``size``, one tile most often."""
    tiles = int(rng.choice([1, 1, 1, 2, 2, 3]))
    return int(rng.integers((tiles - 1) * size + 1, tiles * size + 1))


def random_gemm(cfg, rng: np.random.Generator, max_rows: int) -> GemmJob:
    """A random GEMM of at most ``max_rows`` rows that fits ``cfg``, corner values mixed in:
    extreme inputs, zero rows of ``A - zp``, zero weight columns, any multiplier, shift and
    bias (not only TFLite's normalised ones), any clamp bounds."""
    k, n = _tiles(rng, cfg.rows), _tiles(rng, cfg.cols)
    if rng.random() < 0.05:
        k = 1
    if rng.random() < 0.05:
        n = 1
    kt = -(-k // cfg.rows)
    top = min(cfg.acc_depth, cfg.act_depth // kt, max_rows)
    m = int(rng.integers(max(1, top // 2), top + 1)) if rng.random() < 0.8 else \
        int(rng.integers(1, min(top, 16) + 1))
    job = random_job(rng, m, k, n, extreme=rng.random() < 0.2)
    if rng.random() < 0.3:
        job.output_zero_point = int(rng.integers(-128, 128))
    if rng.random() < 0.3:
        pick = rng.random(n) < 0.5
        job.multiplier[pick] = rng.choice(_CORNER_MULTIPLIERS, int(pick.sum()))
    if rng.random() < 0.15:
        job.multiplier[:] = rng.integers(0, INT32_MAX, n, endpoint=True)
    if rng.random() < 0.3:
        pick = rng.random(n) < 0.5
        job.shift[pick] = rng.choice(_CORNER_SHIFTS, int(pick.sum()))
        job.shift[~pick] = rng.integers(-31, 31, int((~pick).sum()))
    if rng.random() < 0.2:
        pick = rng.random(n) < 0.5
        job.bias[pick] = rng.choice(_CORNER_BIAS, int(pick.sum()))
        job.bias[~pick] = rng.integers(INT32_MIN, INT32_MAX, int((~pick).sum()),
                                       endpoint=True)
    if rng.random() < 0.4:
        lo, hi = sorted(rng.integers(-128, 128, 2).tolist())
        job.act_min, job.act_max = lo, hi
    if rng.random() < 0.2:
        job.a[rng.random(m) < 0.2] = job.input_zero_point
    if rng.random() < 0.2:
        job.w[:, rng.random(n) < 0.3] = 0
    return job


def make_batch(cfg, vectors: int, seed: int) -> tuple[list[GemmJob], float, int]:
    """The batch of ``seed``: ``(jobs, stall, testbench seed)``, ``vectors`` rows in all."""
    rng = np.random.default_rng(seed)
    jobs, rows = [], 0
    while rows < vectors:
        job = random_gemm(cfg, rng, vectors - rows)
        jobs.append(job)
        rows += job.shape[0]
    return jobs, float(rng.uniform(0.1, 0.5)), int(rng.integers(1 << 31))


def run_batch(cfg, vectors: int, seed: int, keep_dir: Path) -> dict:
    """Run the batch of ``seed``; return its counts and its first mismatch, if any.

    A mismatching job is saved as ``keep_dir/<seed>-job<i>.npz`` (:class:`GemmJob` fields).
    """
    jobs, stall, tb_seed = make_batch(cfg, vectors, seed)
    build = rtl_build(cfg).directory.name        # the model run_jobs runs (cached)
    runs = run_jobs(cfg, jobs, stall=stall, seed=tb_seed)
    out = {"vectors": 0, "words": 0, "mismatches": 0, "cycles": 0, "jobs": len(jobs),
           "build": build,
           "stall": stall, "first": None, "failures": []}
    for i, (job, run) in enumerate(zip(jobs, runs, strict=True)):
        m, k, n = job.shape
        want = job.golden(cfg.rounding)
        bad = np.argwhere(run.output != want)
        out["vectors"] += m
        out["words"] += want.size
        out["mismatches"] += len(bad)
        out["cycles"] += run.cycles
        if len(bad) and out["first"] is None:
            keep_dir.mkdir(parents=True, exist_ok=True)
            path = keep_dir / f"{seed}-job{i}.npz"
            np.savez(path, **job.arrays())
            row, col = bad[0].tolist()
            out["first"] = {"job": i, "shape": [m, k, n], "row": row, "col": col,
                            "rtl": int(run.output[row, col]), "golden": int(want[row, col]),
                            "job_file": str(path)}
        kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
        if run.counters["useful_macs"] != m * k * n or run.counters["busy"] != m * kt * nt:
            out["failures"].append(f"job {i} {job.shape}: counters useful_macs="
                                   f"{run.counters['useful_macs']} busy={run.counters['busy']},"
                                   f" expected {m * k * n} and {m * kt * nt}")
    return out
