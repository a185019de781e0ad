"""The generated systolic engine under Verilator, every output word against the golden model."""

import numpy as np
import pytest

from hw.systolic import PRESETS
from sim.systolic import random_job, run_jobs

from .cases import all_jobs

pytestmark = pytest.mark.rtl


def _check(cfg, jobs, runs):
    assert len(runs) == len(jobs)
    for i, (job, run) in enumerate(zip(jobs, runs, strict=True)):
        want = job.golden(cfg.rounding)
        bad = np.argwhere(run.output != want)
        assert bad.size == 0, (f"job {i} {job.shape}: {len(bad)} of {want.size} words differ, "
                               f"first at {bad[0].tolist()}: rtl {run.output[tuple(bad[0])]}, "
                               f"golden {want[tuple(bad[0])]}")
        m, k, n = job.shape
        assert run.counters["useful_macs"] == m * k * n
        assert run.counters["busy"] == m * -(-k // cfg.rows) * -(-n // cfg.cols)


@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_random_and_corner_gemms(preset):
    cfg = PRESETS[preset]
    jobs = all_jobs(cfg, seed=1)
    runs = run_jobs(cfg, jobs)
    _check(cfg, jobs, runs)
    # Each job's cycles are its own, from its first input beat to its last result word.
    alone = run_jobs(cfg, [jobs[3]])[0]
    assert alone.cycles == runs[3].cycles > 0
    assert alone.counters == runs[3].counters


@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_random_stalls_on_every_stream(preset):
    cfg = PRESETS[preset]
    jobs = all_jobs(cfg, seed=2)
    # one output row per issued row: a slow sink must push back into the array
    jobs.append(random_job(np.random.default_rng(9), 16 * (cfg.rows + cfg.cols), cfg.rows,
                           cfg.cols))
    runs = run_jobs(cfg, jobs, stall=0.35, seed=5)
    _check(cfg, jobs, runs)
    assert sum(r.counters["output_stall"] for r in runs) > 0  # backpressure reached the array


def test_reset_mid_gemm_then_correct_gemm():
    cfg = PRESETS["4x4"]
    rng = np.random.default_rng(3)
    jobs = [random_job(rng, 9, 10, 7), random_job(rng, 20, 13, 9)]
    runs = run_jobs(cfg, jobs, reset_after={1: 120})
    _check(cfg, jobs, runs)


def test_single_rounding_config():
    cfg = PRESETS["4x4"].replace(rounding="single")
    jobs = all_jobs(cfg, seed=4)
    _check(cfg, jobs, run_jobs(cfg, jobs, stall=0.1))


@pytest.mark.slow
def test_16x16_preset():
    cfg = PRESETS["16x16"]
    jobs = all_jobs(cfg, seed=6)
    _check(cfg, jobs, run_jobs(cfg, jobs, stall=0.2))
