"""GEMM cases shared by the systolic RTL tests: shapes and corner cases."""

import numpy as np

from hw.systolic import SystolicConfig
from sim.golden.systolic import INT32_MAX, INT32_MIN
from sim.systolic import GemmJob, random_job


def shapes(cfg: SystolicConfig) -> list[tuple[int, int, int]]:
    r, c = cfg.rows, cfg.cols
    return [
        (1, 1, 1),
        (1, r, c),
        (r, r, c),
        (3, 2 * r + 1, c + 1),      # K over three tiles, N over two, both ragged
        (2 * r + 3, r - 1 or 1, 2 * c - 1),
        (1, 3 * r, 1),              # one output, K over three tiles
        (r + c + 5, 4 * r, 3 * c),  # long enough for weight loads to hide
    ]


def corner_jobs(cfg: SystolicConfig, rng: np.random.Generator) -> list[GemmJob]:
    r, c = cfg.rows, cfg.cols
    jobs = []
    # Largest products: (-128 - 127) * -128 summed over several tiles, then a shift right.
    k = 3 * r
    a = np.full((4, k), -128)
    w = np.full((k, c), -128)
    w[:, 1::2] = 127
    jobs.append(GemmJob(a, w, np.zeros(c, np.int64), np.full(c, INT32_MAX), np.full(c, -20),
                        input_zero_point=127))
    # Saturation both ways, multipliers near 2^31 and at 2^30, shifts at both ends,
    # int32 bias extremes.
    n = 2 * c
    job = random_job(rng, 5, r + 1, n)
    job.multiplier[:] = rng.choice([INT32_MAX, INT32_MAX - 1, 1 << 30, (1 << 30) + 1], n)
    job.shift[:] = rng.choice([30, 29, 0, -1, -30, -31], n)
    job.bias[:] = rng.choice([INT32_MAX, INT32_MIN, 0, -5, 1 << 24], n)
    jobs.append(job)
    # Zero weights (zero rows of the output), all-zero activations, ReLU-style bounds.
    job = random_job(rng, 6, 2 * r, c + 2)
    job.w[:, 0] = 0
    job.a[2] = job.input_zero_point
    job.act_min, job.act_max = job.output_zero_point, 127
    jobs.append(job)
    # Extreme values everywhere.
    jobs.append(random_job(rng, 7, 2 * r + 2, c, extreme=True))
    return jobs


def all_jobs(cfg: SystolicConfig, seed: int) -> list[GemmJob]:
    rng = np.random.default_rng(seed)
    jobs = [random_job(rng, *shape) for shape in shapes(cfg)]
    return jobs + corner_jobs(cfg, rng)
