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
    ({"act_lut": 1}, "act_lut=1"),
])
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        SystolicConfig(**changes)


@pytest.mark.parametrize("rounding", ["double", "single", "ruy_x86"])
def test_every_rounding_mode_is_a_config_and_survives_its_dict(rounding):
    cfg = PRESETS["4x4"].replace(rounding=rounding)
    assert SystolicConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_rounding_lists_the_modes():
    with pytest.raises(ValueError, match="use one of double, single, ruy_x86"):
        SystolicConfig(rounding="ruy")


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
    with_table = GemmJob(*list(job.arrays().values()), np.zeros(256, np.int64))
    with pytest.raises(ValueError, match="config has none: build the engine with act_lut=True"):
        pack(PRESETS["4x4"], with_table)
    assert pack(PRESETS["4x4"].replace(act_lut=True), with_table).command


# VGG-16 conv4_x and conv5_x as im2col GEMMs (M = H*W, K = 3*3*C_in, N = C_out).
VGG_DEEP = {"conv4_1": (784, 2304, 512), "conv4_2": (784, 4608, 512),
            "conv5_1": (196, 4608, 512)}


@pytest.mark.parametrize("rows", [8, 16])
@pytest.mark.parametrize("layer", sorted(VGG_DEEP))
def test_fit_sizes_the_accumulator_for_the_real_k(layer, rows):
    m, k, n = VGG_DEEP[layer]
    cfg = SystolicConfig.fit([(m, k, n)], rows=rows, cols=rows)
    assert cfg.acc_width == 32 and cfg.k_limit == k and cfg.max_k == k
    # The power-of-two depths alone admit a K whose sums 32 bits cannot hold.
    with pytest.raises(ValueError, match="too narrow"):
        cfg.replace(k_limit=0)
    cfg.check_gemm(m, k, n)
    with pytest.raises(ValueError, match=f"K={k + 1} exceeds k_limit={k}"):
        cfg.check_gemm(1, k + 1, n)


def test_fit_refuses_a_k_that_needs_more_than_32_bits():
    # 65793 * 255 * 128 < 2**31 <= 65794 * 255 * 128
    SystolicConfig.fit([(1, 65793, 8)], rows=8, cols=8)
    with pytest.raises(ValueError, match=r"too narrow for K up to 65794 \(needs 33 bits; 32 "
                                         r"bits hold K up to 65793\): raise acc_width"):
        SystolicConfig.fit([(1, 65794, 8)], rows=8, cols=8)


def test_fit_keeps_a_base_that_holds_the_workload():
    base = PRESETS["8x8"]
    assert SystolicConfig.fit([(16, 64, 16)], base=base) == base


def test_configs_without_k_limit_still_load():
    old = PRESETS["16x16"].to_dict()
    del old["k_limit"]
    cfg = SystolicConfig.from_dict(old)
    assert cfg == PRESETS["16x16"] and cfg.max_k == 16384
    fitted = SystolicConfig.fit([VGG_DEEP["conv5_1"]], rows=16, cols=16)
    assert SystolicConfig.from_dict(fitted.to_dict()) == fitted
    with pytest.raises(ValueError, match="k_limit=-1"):
        SystolicConfig(k_limit=-1)
