"""The generated systolic engine under Verilator, every output word against the golden model."""

import math

import numpy as np
import pytest

from hw.systolic import PRESETS
from sim.systolic import GemmJob, model_cycles, random_job, run_jobs

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
    # one output row per issued row: a slow sink must push back into the array (in the
    # second N tile, whose rows read words already in, not the stalling activation stream)
    jobs.append(random_job(np.random.default_rng(9), 16 * (cfg.rows + cfg.cols), cfg.rows,
                           2 * cfg.cols))
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


def _table(f, in_scale, out_scale, out_zp):
    """int8[256]: ``table[q + 128] = quantize(f(q * in_scale))``."""
    real = f(np.arange(-128, 128) * in_scale)
    return np.clip(np.round(real / out_scale) + out_zp, -128, 127).astype(np.int64)


GELU = _table(lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
              0.05, 0.04, -20)
SIGMOID = _table(lambda x: 1 / (1 + np.exp(-x)), 0.06, 1 / 256, -128)


@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_activation_tables_under_random_stalls(preset):
    """Jobs through a random, a GELU and a sigmoid table, between jobs that bypass it (a
    table left loaded must not touch them), on stalling streams."""
    cfg = PRESETS[preset].replace(act_lut=True)
    rng = np.random.default_rng(11)
    tables = [rng.integers(-128, 128, 256), GELU, SIGMOID]
    jobs = []
    for i, (m, k, n) in enumerate([(13, 2 * cfg.rows + 1, 2 * cfg.cols + 3), (5, 7, 3),
                                   (2 * cfg.rows, cfg.rows, cfg.cols), (1, 1, 1)]):
        job = random_job(rng, m, k, n)
        lut = tables[i % len(tables)]
        jobs += [GemmJob(*list(job.arrays().values()), lut), job]
    # the clamp applies before the table
    jobs.append(GemmJob(*list(random_job(rng, 9, 11, 5).arrays().values())[:7], -3, 40,
                        SIGMOID))
    runs = run_jobs(cfg, jobs, stall=0.3, seed=8)
    _check(cfg, jobs, runs)
    for job, run in zip(jobs[:8:2], runs[:8:2], strict=True):
        plain = GemmJob(*list(job.arrays().values())[:9]).golden(cfg.rounding)
        assert (run.output != plain).any()          # the table was applied


def test_activation_table_costs_only_its_parameter_words():
    """The table's words ride the parameter stream: a job that stream bounds takes exactly
    the model's extra cycles with a table; a weight-bound one the same cycles as without."""
    cfg = PRESETS["4x4"].replace(act_lut=True)
    rng = np.random.default_rng(12)
    plain = [random_job(rng, 2, 1, 4), random_job(rng, 3, 5, 9)]
    jobs = plain + [GemmJob(*list(j.arrays().values()), GELU) for j in plain]
    runs = run_jobs(cfg, jobs)
    _check(cfg, jobs, runs)
    for job, bypass, table in zip(plain, runs[:2], runs[2:], strict=True):
        extra = model_cycles(cfg, *job.shape, lut=True) - model_cycles(cfg, *job.shape)
        assert table.cycles - bypass.cycles == extra
    assert runs[2].cycles > runs[0].cycles and runs[3].cycles == runs[1].cycles


@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_starved_activation_stream(preset):
    """The command is taken before any activation word arrives, and the words then trickle
    in (idle 80 % of cycles, other streams and the sink stalling too): every row waits for
    its word, so results stay exact, and the waits count as weight stalls."""
    cfg = PRESETS[preset]
    jobs = all_jobs(cfg, seed=13)
    delay = 150
    runs = run_jobs(cfg, jobs, stall=0.2, seed=14, act_stall=0.8, act_delay=delay)
    _check(cfg, jobs, runs)
    for job, run in zip(jobs, runs, strict=True):
        m, k, _ = job.shape
        words = m * -(-k // cfg.rows)
        # the last word arrives after the delay and about five cycles a word
        assert run.cycles > delay + 2 * words
    # most of the delay is spent waiting with a tile latched
    assert sum(r.counters["weight_stall"] for r in runs) > len(runs) * delay // 2


def test_activation_count_starts_afresh_for_each_gemm():
    """Back to back, each command is taken long before its activations arrive: rows read
    only the words written for their own GEMM, never the previous GEMM's (which fill the
    same addresses), and a GEMM with as many words as the last still waits for them."""
    cfg = PRESETS["4x4"]
    rng = np.random.default_rng(15)
    jobs = [random_job(rng, 40, 9, 5), random_job(rng, 40, 9, 5), random_job(rng, 7, 3, 6),
            random_job(rng, 25, 13, 2)]
    delay = 300
    runs = run_jobs(cfg, jobs, act_delay=delay)
    _check(cfg, jobs, runs)
    for job, run in zip(jobs, runs, strict=True):
        m, k, _ = job.shape
        # a word a cycle from the delay on: the last row issues after its word
        assert run.cycles > delay + m * -(-k // cfg.rows)
        assert run.counters["weight_stall"] > delay - 100


def test_activations_stream_during_compute():
    """Loads overlap compute: a GEMM whose activation words outnumber its weight words takes
    the cost model's cycles (which counts only the weight and parameter loads)."""
    cfg = PRESETS["4x4"]
    rng = np.random.default_rng(16)
    jobs = [random_job(rng, 250, 8, 4), random_job(rng, 64, 4, 12)]
    runs = run_jobs(cfg, jobs)
    _check(cfg, jobs, runs)
    for job, run in zip(jobs, runs, strict=True):
        m, k, _ = job.shape
        model = model_cycles(cfg, *job.shape)
        assert abs(run.cycles - model) <= 0.01 * run.cycles
        assert run.cycles < model + m * -(-k // cfg.rows) // 2   # not after the loads
        assert run.counters["weight_stall"] < 20
