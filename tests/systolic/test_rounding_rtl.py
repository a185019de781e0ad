"""The generated systolic engine with ruy's x86 requantization rounding under Verilator,
every output word against the golden model."""

import numpy as np
import pytest

from hw.systolic import PRESETS
from sim.systolic import GemmJob, random_job, run_jobs

from .cases import all_jobs

pytestmark = pytest.mark.rtl


def _ties_job(rng, cfg, m, k):
    """Small accumulators, multiplier 0.5 and right shifts of 1 to 3: many outputs are
    exact ties of the final shift inside int8, which "ruy_x86" rounds up and "double" away
    from zero."""
    n = 2 * cfg.cols
    a = rng.integers(-12, 13, (m, k))
    w = rng.integers(-12, 13, (k, n))
    shift = rng.integers(-3, 0, n)
    bias = rng.integers(-200, 200, n)
    return GemmJob(a, w, bias, np.full(n, 1 << 30), shift, int(rng.integers(-3, 4)),
                   int(rng.integers(-10, 11)))


def test_ruy_x86_rounding_under_random_stalls():
    cfg = PRESETS["4x4"].replace(rounding="ruy_x86")
    rng = np.random.default_rng(21)
    jobs = all_jobs(cfg, seed=21) + [_ties_job(rng, cfg, 40, 3), _ties_job(rng, cfg, 9, 11),
                                     random_job(rng, 33, 2 * cfg.rows + 1, 2 * cfg.cols)]
    runs = run_jobs(cfg, jobs, stall=0.3, seed=21)
    parted = 0
    for i, (job, run) in enumerate(zip(jobs, runs, strict=True)):
        want = job.golden("ruy_x86")
        bad = np.argwhere(run.output != want)
        assert bad.size == 0, (f"job {i} {job.shape}: {len(bad)} of {want.size} words differ, "
                               f"first at {bad[0].tolist()}: rtl {run.output[tuple(bad[0])]}, "
                               f"golden {want[tuple(bad[0])]}")
        parted += int((want != job.golden("double")).sum())
    # the words on which the mode matters were there to get wrong
    assert parted > 50
    assert sum(r.counters["output_stall"] for r in runs) > 0
