"""SystolicConfig and GEMM job validation: errors that say what to change."""

import numpy as np
import pytest

from hw.systolic import PRESETS, SystolicConfig
from sim.systolic import GemmJob, pack, random_job, run_gemm


def test_presets_are_valid_and_derive_sizes():
    cfg = PRESETS["16x16"]
    assert cfg.macs == 256
    assert cfg.max_k == 16384
    cfg.check_gemm(512, 512, 512)


@pytest.mark.parametrize("changes, message", [
    ({"rows": 0}, "rows=0"),
    ({"cols": 300}, "cols=300"),
    ({"input_width": 16}, "only 8"),
    ({"rounding": "nearest"}, "rounding='nearest'"),
    ({"acc_width": 20}, "too narrow for K up to 2048"),
    ({"weight_depth": 4}, "cannot hold one 8-row weight tile"),
    ({"act_depth": 0}, "act_depth=0"),
])
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        SystolicConfig(**changes)


def test_narrow_accumulator_is_fine_for_small_buffers():
    cfg = SystolicConfig(rows=4, cols=4, act_depth=16, weight_depth=16, acc_width=22)
    assert cfg.max_k == 16


@pytest.mark.parametrize("shape, message", [
    ((600, 8, 8), "acc_depth=512"),
    ((512, 64, 8), "activation buffer"),
    ((1, 64, 520), "weight buffer"),
    ((1, 8, 600), "parameter words"),
    ((0, 8, 8), "M=0"),
])
def test_gemm_too_large_for_buffers(shape, message):
    cfg = PRESETS["8x8"]
    with pytest.raises(ValueError, match=message):
        cfg.check_gemm(*shape)


def test_bad_job_inputs():
    rng = np.random.default_rng(0)
    job = random_job(rng, 2, 3, 4)
    with pytest.raises(ValueError, match="w must have K=3 rows"):
        GemmJob(job.a, job.w[:2], job.bias, job.multiplier, job.shift)
    with pytest.raises(ValueError, match="shift values must lie in"):
        GemmJob(job.a, job.w, job.bias, job.multiplier, job.shift + 40)
    with pytest.raises(ValueError, match="a values must lie in"):
        GemmJob(job.a * 300, job.w, job.bias, job.multiplier, job.shift)
    with pytest.raises(ValueError, match="one per output channel"):
        GemmJob(job.a, job.w, job.bias[:2], job.multiplier, job.shift)
    with pytest.raises(ValueError, match="engine='fpga'"):
        run_gemm(PRESETS["4x4"], job.a, job.w, job.bias, job.multiplier, job.shift,
                 engine="fpga")
    with pytest.raises(ValueError, match="weight buffer"):
        pack(SystolicConfig(rows=4, cols=4, act_depth=64, weight_depth=8),
             random_job(rng, 1, 16, 4))
