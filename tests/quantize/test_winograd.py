"""Winograd F(2×2, 3×3): exact integer transforms against direct convolution, the int8
pipeline's error against its a-priori bound, the cost model, and the 16 GEMMs on the RTL."""

import numpy as np
import pytest

from hw.systolic.config import SystolicConfig
from hw.systolic.driver import model_cycles
from quantize.int8 import quantize_multiplier
from quantize.winograd import (
    BT,
    POSITIONS,
    WinogradConv,
    conv_exact,
    cost,
    im2col_acc,
    input_transform,
    tiles,
    weight_transform,
)
from sim.golden.systolic import gemm
from sim.systolic import GemmJob, run_jobs


def direct_conv(a, zp, g, pads):
    """Σ_{c,i,j} (a − zp)·g by the definition, zero padding (real 0) around the input."""
    n, c, h, w = a.shape
    top, left, bottom, right = pads
    d = np.zeros((n, c, h + top + bottom, w + left + right), np.int64)
    d[:, :, top:top + h, left:left + w] = a.astype(np.int64) - zp
    oh, ow = d.shape[2] - 2, d.shape[3] - 2
    out = np.zeros((n, g.shape[0], oh, ow), np.int64)
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", d[:, :, i:i + oh, j:j + ow], g[:, :, i, j])
    return out


CASES = [((2, 3, 8, 8), 5, (1, 1, 1, 1)), ((1, 4, 7, 9), 3, (1, 1, 1, 1)),
         ((1, 4, 7, 9), 3, (0, 0, 0, 0)), ((2, 2, 6, 5), 2, (2, 0, 1, 1)),
         ((1, 1, 1, 1), 1, (1, 1, 1, 1)), ((3, 16, 5, 5), 8, (1, 1, 1, 1))]


@pytest.mark.parametrize("shape,o,pads", CASES)
def test_exact_winograd_is_direct_convolution(shape, o, pads):
    rng = np.random.default_rng(sum(shape) + o)
    for zp in (-128, 0, 37, 127):
        a = rng.integers(-128, 128, shape)
        g = rng.integers(-127, 128, (o, shape[1], 3, 3))
        ref = direct_conv(a, zp, g, pads)
        np.testing.assert_array_equal(conv_exact(a, zp, g, pads), ref)
        np.testing.assert_array_equal(im2col_acc(a, zp, g, pads), ref)


def test_transform_ranges_are_the_documented_ones():
    """|V| ≤ 1020 for zero-point-subtracted int8 in [−255, 255], [−512, 510] for raw
    int8 codes; |U'| ≤ 9·127 = 1143; all reached, so neither fits int8."""
    coef = np.einsum("ij,lk->iljk", BT, BT).reshape(16, 4, 4)   # V_ξ = Σ coef_ξ ⊙ d
    hi = [input_transform(np.where(c > 0, 127, -128).reshape(1, 1, 1, 1, 4, 4))[x, 0, 0]
          for x, c in enumerate(coef)]
    lo = [input_transform(np.where(c > 0, -128, 127).reshape(1, 1, 1, 1, 4, 4))[x, 0, 0]
          for x, c in enumerate(coef)]
    assert max(hi) == 510 and min(lo) == -512
    rng = np.random.default_rng(0)
    raw = input_transform(rng.integers(-128, 128, (5000, 1, 4, 4)))
    assert raw.min() >= -512 and raw.max() <= 510
    full = [input_transform(np.where(c > 0, 255, -255).reshape(1, 1, 1, 1, 4, 4))[x, 0, 0]
            for x, c in enumerate(coef)]
    assert min(full) == max(full) == 1020
    for w in (127, -127):
        assert np.abs(weight_transform(np.full((1, 1, 3, 3), w))).max() == 1143


def test_tiles_cover_the_padded_input_with_stride_2():
    a = np.arange(2 * 3 * 5 * 6).reshape(2, 3, 5, 6)
    t, (oh, ow) = tiles(a, (1, 1, 1, 1))
    assert (oh, ow) == (5, 6) and t.shape == (2, 3, 3, 3, 4, 4)
    p = np.zeros((2, 3, 8, 8), np.int64)
    p[:, :, 1:6, 1:7] = a
    np.testing.assert_array_equal(t[1, 2, 1, 0], p[1, 0, 4:8, 2:6])


def _layer(rng, c, o, zp, out_range=100.0):
    g = rng.integers(-127, 128, (o, c, 3, 3))
    real = rng.uniform(0.5, 2, o) * out_range / (127 * 127 * np.sqrt(9 * c))
    mult, shift = zip(*(quantize_multiplier(r) for r in real), strict=True)
    bias = rng.integers(-20000, 20000, o)
    return WinogradConv(g, bias, np.array(mult), np.array(shift), zp, -5)


def _inputs(rng, shape, zp, relu):
    a = rng.integers(-128, 128, shape)
    return np.maximum(a, zp) if relu else a


def test_weight_transform_rounding_is_exact_at_corners_and_half_a_step_elsewhere():
    wc = _layer(np.random.default_rng(1), 16, 8, 0)
    corners = [0, 3, 12, 15]
    assert wc.u_exact[corners].all() and not wc.u_exact[[1, 2, 5, 10]].any()
    err = np.abs(wc.u - wc.u_q * wc.u_scale[:, None, :])
    np.testing.assert_array_equal(err[corners], 0)
    assert (err <= wc.u_scale[:, None, :] / 2 + 1e-9).all()
    assert np.abs(wc.u_q).max() <= 127


@pytest.mark.parametrize("relu", [True, False])
def test_int8_pipeline_error_is_within_the_bound(relu):
    """Calibrated on its own input, nothing clips: every accumulator within the a-priori
    bound of the module doc, and the measured rates the docs quote."""
    rng = np.random.default_rng(2 + relu)
    zp = -100 if relu else 3
    wc = _layer(rng, 32, 16, zp)
    a = _inputs(rng, (4, 32, 8, 8), zp, relu)
    wc.calibrate(a)
    jobs, grid, out = wc.jobs(a)
    assert [j.shape for j in jobs] == [(4 * 16, 32, 16)] * POSITIONS
    m = np.stack([gemm(j.a, j.w, j.bias, j.multiplier, j.shift, j.input_zero_point)
                  for j in jobs])
    acc = wc.accumulators(m, grid, out)
    ref = im2col_acc(a, zp, wc.g) + wc.bias[:, None, None]
    err = np.abs(acc - ref)
    bound = wc.error_bound(a)
    assert (err <= bound).all(), f"worst err/bound {(err / bound).max():.3f}"
    y, _ = wc.run(a)
    steps = np.abs(y.astype(np.int64) - wc.im2col(a).astype(np.int64))
    print(f"relu={relu}: err/bound max {(err / bound).max():.3f}, rms err / rms acc "
          f"{np.sqrt((err ** 2).mean() / (ref ** 2).mean()):.4f}; int8 steps max "
          f"{steps.max()}, equal {np.mean(steps == 0):.3f}, within 1 {np.mean(steps <= 1):.3f}")
    assert np.mean(steps == 0) > 0.4 and np.mean(steps <= 1) > 0.9 and steps.max() <= 6


def test_only_the_engine_rounds_when_v_and_u_fit_int8():
    """Small inputs and a kernel with one tap: every U' is a multiple of that tap (exact
    at all 16 positions) and V spans fewer than 256 values (exact), so the only rounding
    is the engine's requantization of P: the error stays within that term of the bound."""
    rng = np.random.default_rng(4)
    g = np.zeros((4, 3, 3, 3), np.int64)
    g[:, :, 0, 0] = rng.integers(-127, 128, (4, 3))
    wc = WinogradConv(g, np.zeros(4, np.int64), np.full(4, 1 << 30), np.full(4, -6), 0, 0)
    a = rng.integers(-15, 16, (2, 3, 6, 6))
    wc.calibrate(a)
    assert (wc.v_scale == 1).all() and wc.u_exact.all()
    np.testing.assert_array_equal(wc.u_q * wc.u_scale[:, None, :], wc.u)
    jobs, grid, out = wc.jobs(a)
    m = np.stack([gemm(j.a, j.w, j.bias, j.multiplier, j.shift, j.input_zero_point)
                  for j in jobs])
    err = np.abs(wc.accumulators(m, grid, out) - im2col_acc(a, 0, g))
    assert (err <= wc.error_bound(a)).all()
    y, _ = wc.run(a)
    steps = np.abs(y.astype(np.int64) - wc.im2col(a).astype(np.int64))
    print(f"one-tap kernel: acc err max {err.max()}, int8 steps max {steps.max()}")


def test_cost_counts_both_schedules():
    cfg = SystolicConfig(rows=16, cols=16)
    c = cost(cfg, 1, 64, 56, 56, 64)
    assert c["macs_ratio"] == 2.25 and c["tiles"] == 28 * 28
    assert c["im2col_cycles"] == model_cycles(cfg, 56 * 56, 576, 64)
    assert c["winograd_cycles"] == 16 * model_cycles(cfg, 784, 64, 64)
    odd = cost(cfg, 1, 8, 7, 7, 8)
    assert odd["tiles"] == 16 and odd["macs_ratio"] == 49 * 9 / (16 * 16)


def test_refuses_what_is_not_3x3_stride_1():
    with pytest.raises(ValueError, match="3x3 stride-1"):
        WinogradConv(np.zeros((1, 1, 5, 5), np.int64), [0], [1 << 30], [0], 0, 0)


@pytest.mark.rtl
def test_rtl_runs_the_16_gemms_of_a_64_channel_layer_word_for_word():
    """ResNet-18 layer1.0.conv1's channels (64 → 64) at 8×8 on the 8×8 engine: the 16
    Winograd GEMMs (16×64×64) and the im2col GEMM (64×576×64) in one simulation."""
    rng = np.random.default_rng(5)
    wc = _layer(rng, 64, 64, -128)
    a = _inputs(rng, (1, 64, 8, 8), -128, True)
    wc.calibrate(a)
    jobs, grid, out = wc.jobs(a)
    jobs = [GemmJob(**j.arrays()) for j in jobs]
    cfg = SystolicConfig.fit([j.shape for j in jobs] + [(64, 576, 64)], rows=8, cols=8)
    runs = run_jobs(cfg, jobs)
    for job, run in zip(jobs, runs, strict=True):
        np.testing.assert_array_equal(run.output, job.golden(cfg.rounding))
    measured = sum(r.cycles for r in runs)
    model = sum(model_cycles(cfg, *j.shape) for j in jobs)
    y = wc.finish(np.stack([np.asarray(r.output, np.int64) for r in runs]), grid, out)
    steps = np.abs(y.astype(np.int64) - wc.im2col(a).astype(np.int64))
    print(f"RTL 16 GEMMs {jobs[0].shape}: {measured} cycles, model {model}; "
          f"int8 steps vs im2col max {steps.max()}, equal {np.mean(steps == 0):.3f}")
    assert abs(model - measured) <= 0.02 * measured
