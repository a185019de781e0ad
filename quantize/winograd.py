"""Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions, as 16 GEMMs on the systolic engine.

Lavin & Gray's formulation: for a 4×4 input tile ``d`` (stride 2) and a 3×3 kernel ``g``,
the 2×2 output tile is ``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A``. Summing over input channels
turns the 16 element-wise products into 16 GEMMs, one per transform position ``ξ``:
``P_ξ[t, o] = Σ_c V_ξ[t, c] · U_ξ[c, o]`` with ``T`` tile rows, ``K = C``, ``N = O``. The
input and output transforms run on the host, the weight transform once, offline.

Integer arithmetic (``d = a − zp``, the zero-point-subtracted int8 codes, in [−255, 255]):

* **Input transform, exact.** ``V = Bᵀ d B``: every entry is a sum of four ``±d`` (each
  row of ``Bᵀ`` has two ±1), so ``|V| ≤ 1020`` (11 bits; [−512, 510] for raw int8 codes).
* **Weight transform, exact.** ``G`` has halves; ``G₂ = 2G`` is integer and
  ``U' = G₂ g G₂ᵀ = 4·G g Gᵀ``, ``|U'| ≤ 9·127 = 1143`` for int8 ``g`` (12 bits). Then
  ``Aᵀ (U' ⊙ V) A = 4·(the direct convolution's sums)``, exactly divisible by 4
  (:func:`conv_exact`).
* **Rounded for the int8 engine** (:class:`WinogradConv`):

  1. ``U'`` per ``(ξ, o)`` to int8: scale ``τ = k`` when an integer ``k`` divides every
     ``U'[ξ, ·, o]`` with ``max|U'|/k ≤ 127`` (always at the four corner positions, where
     ``U' = 4·g``: exact), otherwise ``τ = max_c |U'| / 127``, round half away (error
     ``≤ τ/2``).
  2. ``V`` per ``ξ`` to int8, affine over its calibrated range ``[lo, hi]`` (0 included):
     ``σ = max(1, (hi − lo)/255)``, zero point ``z``; exact when ``hi − lo ≤ 255``, else
     error ``≤ σ/2`` (values outside the calibrated range clip). The engine subtracts ``z``
     as its input zero point.
  3. The engine accumulates ``Σ_c (v − z)·u`` exactly in int32 and requantizes it with the
     per-channel multiplier ``στ / s_P`` to int8 ``m`` at ``P``'s calibrated scale ``s_P``
     and zero point ``z_P`` (error ``≤ s_P/2`` plus the multiplier's 2⁻³¹, or clipping
     outside the calibrated range).
  4. Host, float64: ``acc ≈ Aᵀ [s_P (m − z_P)] A / 4``, rounded to the nearest integer,
     plus the layer's int32 bias, then the layer's own TFLite requantization
     (:func:`sim.golden.systolic.requantize`), the same as the im2col path's.

:func:`WinogradConv.error_bound` gives the a-priori bound on ``|acc − acc_im2col|`` that
these four steps imply (calibrated on the same inputs: nothing clips).
"""

from dataclasses import dataclass

import numpy as np

from hw.systolic.config import SystolicConfig
from hw.systolic.driver import GemmJob, model_cycles
from sim.golden import host_ops
from sim.golden.systolic import requantize

from .backends import backend as backend_of
from .int8 import quantize_multiplier, round_half_away

__all__ = ["BT", "G2", "AT", "POSITIONS", "tiles", "input_transform", "weight_transform",
           "output_transform", "conv_exact", "im2col_acc", "WinogradConv", "cost"]

#: ``Bᵀ``, ``2G`` and ``Aᵀ`` of F(2×2, 3×3) (Lavin & Gray, 2016).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.int64)
G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], np.int64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.int64)
#: Transform positions ``ξ = 4i + j``: one GEMM each.
POSITIONS = 16


def _check_layer(weight, stride=(1, 1)):
    w = np.asarray(weight)
    if w.ndim != 4 or w.shape[2:] != (3, 3) or tuple(stride) != (1, 1):
        raise ValueError(f"Winograd F(2x2,3x3) takes 3x3 stride-1 kernels, got weight "
                         f"{w.shape} stride {tuple(stride)}")
    return w.astype(np.int64)


def tiles(d, pads=(1, 1, 1, 1)):
    """Overlapping 4×4 tiles (stride 2) of ``d[N, C, H, W]`` (zero-point subtracted), zero
    padded by ``pads`` (top, left, bottom, right) and up to whole tiles:
    ``(tiles [N, TH, TW, C, 4, 4], (OH, OW))``."""
    d = np.asarray(d, np.int64)
    n, c, h, w = d.shape
    top, left, bottom, right = pads
    oh, ow = h + top + bottom - 2, w + left + right - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    p = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), np.int64)
    rows, cols = min(h, 2 * th + 2 - top), min(w, 2 * tw + 2 - left)
    p[:, :, top:top + rows, left:left + cols] = d[:, :, :rows, :cols]
    s = p.strides
    t = np.lib.stride_tricks.as_strided(p, (n, c, th, tw, 4, 4),
                                        (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]))
    return t.transpose(0, 2, 3, 1, 4, 5).copy(), (oh, ow)


def input_transform(t) -> np.ndarray:
    """``Bᵀ d B`` of every tile: ``[..., 4, 4]`` → ``[16, rows, C]`` (rows: ``N·TH·TW``)."""
    v = np.einsum("ij,...jk,lk->...il", BT, np.asarray(t, np.int64), BT)
    c = v.shape[-3]
    return v.reshape(-1, c, POSITIONS).transpose(2, 0, 1).copy()


def weight_transform(g) -> np.ndarray:
    """``U' = G₂ g G₂ᵀ = 4·G g Gᵀ`` of ``g[O, C, 3, 3]`` as ``[16, C, O]`` integers."""
    g = _check_layer(g)
    u = np.einsum("ij,ocjk,lk->ocil", G2, g, G2)
    return u.reshape(*u.shape[:2], POSITIONS).transpose(2, 1, 0).copy()


def output_transform(p, shape, oh: int, ow: int, absolute: bool = False) -> np.ndarray:
    """``Aᵀ P A`` of ``p[16, N·TH·TW, O]`` as ``[N, O, OH, OW]`` (cropped to ``oh × ow``);
    ``shape = (N, TH, TW)``. ``absolute``: with ``|A|`` (to propagate error bounds)."""
    n, th, tw = shape
    p = np.asarray(p)
    a = (np.abs(AT) if absolute else AT).astype(p.dtype)
    m = p.transpose(1, 2, 0).reshape(n, th, tw, p.shape[2], 4, 4)
    y = np.einsum("ij,...jk,lk->...il", a, m, a)
    y = y.transpose(0, 3, 1, 4, 2, 5).reshape(n, p.shape[2], 2 * th, 2 * tw)
    return y[:, :, :oh, :ow]


def conv_exact(a, zero_point, g, pads=(1, 1, 1, 1)) -> np.ndarray:
    """Exact integer Winograd: ``Σ_{c,i,j} (a − zp)·g`` of every output as int64
    ``[N, O, OH, OW]`` (no bias), with the 16 products summed over channels in int64."""
    t, (oh, ow) = tiles(np.asarray(a, np.int64) - int(zero_point), pads)
    v = input_transform(t)
    u = weight_transform(g)
    p = np.einsum("xtc,xco->xto", v, u)
    y4 = output_transform(p, t.shape[:3], oh, ow)
    if np.any(y4 % 4):
        raise AssertionError("Aᵀ(U'⊙V)A is not a multiple of 4")
    return y4 // 4


def im2col_acc(a, zero_point, g, pads=(1, 1, 1, 1)) -> np.ndarray:
    """The im2col GEMM's sums ``Σ (a − zp)·w`` as int64 ``[N, O, OH, OW]`` (no bias)."""
    g = _check_layer(g)
    a = np.asarray(a)
    cols = host_ops.im2col(a, (3, 3), (1, 1), pads, zero_point).astype(np.int64)
    n, (o, h, w) = a.shape[0], (g.shape[0], *a.shape[2:])
    oh, ow = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    acc = (cols - int(zero_point)) @ g.reshape(o, -1).T
    return acc.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


def _affine(lo, hi):
    """``(scale, zero_point)`` of an int8 code covering ``[min(lo, 0), max(hi, 0)]``, at
    least 1 (integers need no finer step)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(1.0, (hi - lo) / 255.0)
    return scale, int(np.clip(round_half_away(-128 - lo / scale), -128, 127))


def _weight_scales(u):
    """Per ``(ξ, o)`` int8 scale of ``U'[ξ, c, o]``: an exact integer divisor when one
    brings it into [−127, 127], else ``max|U'|/127``."""
    amax = np.abs(u).max(axis=1)
    div = np.gcd.reduce(np.abs(u), axis=1)
    exact = (amax == 0) | (amax <= 127 * div)
    # The smallest divisor of the gcd that still fits, for a finer grid.
    best = np.where(div > 0, div, 1).astype(np.float64)
    for k in range(1, 128):
        hit = exact & (div % k == 0) & (amax <= 127 * k) & (best > k)
        best[hit] = k
    return np.where(exact, best, np.where(amax > 0, amax / 127.0, 1.0)), exact


@dataclass
class WinogradConv:
    """A quantized 3×3 stride-1 convolution run as Winograd GEMMs (see the module doc).

    Build with :meth:`from_layer` (a :class:`~quantize.graph_quant.QuantGraph` Conv2d
    layer) or from the int8 weights and the layer's requantization, then :meth:`calibrate`
    on representative int8 inputs; :meth:`run` gives the int8 output.

    Members
    -------
    g : int64[O, C, 3, 3]
        The layer's int8 weights.
    u_q : int64[16, C, O]
        Transformed weights as int8, ``u_scale[16, O]`` their scales (``U' ≈ τ·u_q``);
        ``u_exact[16, O]`` where no rounding happened.
    bias, multiplier, shift, input_zero_point, output_zero_point, act_min, act_max
        The layer's im2col requantization, applied unchanged after the output transform.
    v_scale, v_zero : [16]
        Input-transform quantization per position (set by :meth:`calibrate`).
    p_scale, p_zero : [16, O]
        Product quantization per position and output channel (set by :meth:`calibrate`).
    """

    g: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_zero_point: int
    output_zero_point: int
    act_min: int = -128
    act_max: int = 127
    pads: tuple = (1, 1, 1, 1)
    rounding: str = "double"
    v_scale: np.ndarray | None = None
    v_zero: np.ndarray | None = None
    p_scale: np.ndarray | None = None
    p_zero: np.ndarray | None = None

    def __post_init__(self):
        self.g = _check_layer(self.g)
        if np.abs(self.g).max(initial=0) > 127:
            raise ValueError("weights must be int8")
        self.u = weight_transform(self.g)
        self.u_scale, self.u_exact = _weight_scales(self.u)
        self.u_q = np.clip(round_half_away(self.u / self.u_scale[:, None, :]),
                           -127, 127).astype(np.int64)

    @classmethod
    def from_layer(cls, layer, rounding: str = "double") -> "WinogradConv":
        """From a quantized graph's ``Conv2d`` layer (``layer.p``, ``layer.node``)."""
        p, node = layer.p, layer.node
        if node.attrs.get("groups", 1) != 1:
            raise ValueError(f"node {node.name!r}: Winograd needs groups=1")
        _check_layer(node.weight, node.attrs["stride"])
        o, c = node.weight.shape[:2]
        g = np.asarray(p["weights"][0]).T.reshape(o, c, 3, 3)
        return cls(g, p["bias"], p["multiplier"], p["shift"], p["input_zero_point"],
                   p["output_zero_point"], p["act_min"], p["act_max"],
                   tuple(node.attrs["pads"]), p.get("rounding", rounding))

    def _exact_products(self, a):
        t, (oh, ow) = tiles(np.asarray(a, np.int64) - self.input_zero_point, self.pads)
        v = input_transform(t)
        return v, t.shape[:3], (oh, ow)

    def calibrate(self, a, headroom: float = 1.0) -> "WinogradConv":
        """Set the ``V`` and ``P`` int8 ranges from inputs ``a[N, C, H, W]``, each widened
        by ``headroom`` (≥ 1: coarser steps, fewer clipped values on unseen inputs);
        returns self."""
        if headroom < 1:
            raise ValueError(f"headroom={headroom}: must be at least 1")
        v, _, _ = self._exact_products(a)
        vq = [_affine(headroom * x.min(initial=0), headroom * x.max(initial=0)) for x in v]
        self.v_scale = np.array([s for s, _ in vq])
        self.v_zero = np.array([z for _, z in vq], np.int64)
        p = np.einsum("xtc,xco->xto", v, self.u)
        lo = headroom * np.minimum(p.min(axis=1), 0)
        hi = headroom * np.maximum(p.max(axis=1), 0)
        # Unlike V, P may take a step below 1: the engine's requantization is fractional.
        self.p_scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
        self.p_zero = np.clip(round_half_away(-128 - lo / self.p_scale), -128, 127
                              ).astype(np.int64)
        return self

    def jobs(self, a) -> tuple[list[GemmJob], tuple, tuple]:
        """The 16 engine jobs for int8 input ``a`` (``[T, C] × [C, O]`` each), the tile
        grid ``(N, TH, TW)`` and the output size ``(OH, OW)``."""
        if self.v_scale is None:
            raise ValueError("calibrate() first: the int8 scales of V and P are unset")
        v, grid, out = self._exact_products(a)
        jobs = []
        for x in range(POSITIONS):
            vq = np.clip(round_half_away(v[x] / self.v_scale[x]) + self.v_zero[x], -128, 127)
            real = self.v_scale[x] * self.u_scale[x] / self.p_scale[x]
            mult, shift = zip(*(quantize_multiplier(r) for r in real), strict=True)
            jobs.append(GemmJob(vq.astype(np.int64), self.u_q[x], self.engine_bias(x),
                                np.array(mult), np.array(shift), int(self.v_zero[x]), 0))
        return jobs, grid, out

    def engine_bias(self, x: int) -> np.ndarray:
        """GEMM ``x``'s int32 bias: the engine has one output zero point per job, so the
        per-channel ``z_P`` enters as ``round(z_P · s_P / (σ τ))`` in accumulator units
        (after requantization ``z_P`` within half a step of ``σ τ / s_P``)."""
        b = round_half_away(self.p_zero[x] * self.p_scale[x]
                            / (self.v_scale[x] * self.u_scale[x]))
        return np.clip(b, -(1 << 31), (1 << 31) - 1).astype(np.int64)

    def accumulators(self, m, grid, out) -> np.ndarray:
        """``acc`` (int64 ``[N, O, OH, OW]``, bias included) from the engine's 16 int8
        results ``m[16, T, O]``: ``Aᵀ [s_P (m − z_P)] A / 4`` in float64, rounded."""
        m = np.asarray(m, np.float64)
        p = (m - self.p_zero[:, None, :]) * self.p_scale[:, None, :]
        y4 = output_transform(p, grid, *out)
        return np.rint(y4 / 4).astype(np.int64) + np.asarray(self.bias, np.int64)[:, None, None]

    def finish(self, m, grid, out) -> np.ndarray:
        """Output transform, bias and the layer's requantization: int8 ``[N, O, OH, OW]``."""
        acc = self.accumulators(m, grid, out)
        y = requantize(acc.transpose(0, 2, 3, 1), self.multiplier, self.shift,
                       self.output_zero_point, self.act_min, self.act_max, self.rounding)
        return y.transpose(0, 3, 1, 2)

    def error_bound(self, a) -> np.ndarray:
        """A-priori bound on ``|acc − acc_im2col|`` per output (``[N, O, OH, OW]``), valid
        when nothing clips (calibrated on ``a`` itself): per product ``Σ_c (σ/2·|U'| +
        |V|·τ/2 + στ/4)`` from rounding ``V`` and ``U'``, plus ``s_P + στ/2`` from the
        engine's requantization (two roundings) and the zero-point bias, plus ``2⁻³⁰`` of
        ``Σ|V||U'|`` for the
        multiplier; summed with ``|A|ᵀ · |A|`` over the positions, halved twice (÷4), plus
        the host's final rounding (½)."""
        v, grid, out = self._exact_products(a)
        sig = np.where(self._v_exact(), 0.0, self.v_scale)[:, None, None]
        tau = np.where(self.u_exact, 0.0, self.u_scale)[:, None, :]
        st = (self.v_scale[:, None] * self.u_scale)[:, None, :]
        av, au = np.abs(v).astype(np.float64), np.abs(self.u).astype(np.float64)
        e = (sig / 2 * au.sum(axis=1)[:, None, :] + av.sum(axis=2)[:, :, None] * tau / 2
             + sig * tau / 4 * v.shape[2])
        # TFLite's double rounding rounds twice: up to one whole step of s_P.
        e = e + self.p_scale[:, None, :] + st / 2
        e = e + np.einsum("xtc,xco->xto", av, au) * 2.0 ** -30
        y4 = output_transform(e, grid, *out, absolute=True)
        return y4 / 4 + 0.5

    def _v_exact(self):
        return self.v_scale == 1.0

    def run(self, a, engine="golden", config: SystolicConfig | None = None):
        """int8 output ``[N, O, OH, OW]`` and the engine results of the 16 jobs, on
        ``config`` (default: an 8×8 array sized for the jobs, the layer's rounding)."""
        jobs, grid, out = self.jobs(a)
        if config is None:
            config = SystolicConfig.fit([jobs[0].shape], rows=8, cols=8,
                                        rounding=self.rounding)
        eng = backend_of(engine)
        res = eng.gemms(config, jobs, f"winograd 16x {jobs[0].shape}")
        m = np.stack([np.asarray(r["output"], np.int64) for r in res])
        return self.finish(m, grid, out), res

    def im2col(self, a) -> np.ndarray:
        """The reference: the same layer through the im2col GEMM's arithmetic."""
        acc = im2col_acc(a, self.input_zero_point, self.g, self.pads)
        acc = acc + np.asarray(self.bias, np.int64)[:, None, None]
        y = requantize(acc.transpose(0, 2, 3, 1), self.multiplier, self.shift,
                       self.output_zero_point, self.act_min, self.act_max, self.rounding)
        return y.transpose(0, 3, 1, 2)


def cost(cfg, n: int, c: int, h: int, w: int, o: int, pads=(1, 1, 1, 1)) -> dict:
    """Both schedules of a 3×3 stride-1 layer (``n`` samples, ``c × h × w`` in, ``o`` out)
    on ``cfg``: engine cycles from :func:`model_cycles` per GEMM (each a whole job),
    multiplies, and the host's transform work counted separately (additions)."""
    oh, ow = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    th, tw = -(-oh // 2), -(-ow // 2)
    t = n * th * tw
    m = n * oh * ow
    im2col = model_cycles(cfg, m, 9 * c, o)
    wino = POSITIONS * model_cycles(cfg, t, c, o)
    return {"m": m, "tiles": t, "im2col_gemm": [m, 9 * c, o], "winograd_gemm": [t, c, o],
            "im2col_cycles": im2col, "winograd_cycles": wino,
            "cycles_ratio": im2col / wino,
            "im2col_macs": m * 9 * c * o, "winograd_macs": POSITIONS * t * c * o,
            "macs_ratio": m * 9 * c * o / (POSITIONS * t * c * o),
            # Bᵀ d B: 8 one-dimensional 4-point transforms of 4 additions per tile and
            # channel; Aᵀ m A: 4 + 2 of them per tile and output channel.
            "host_input_adds": 32 * t * c, "host_output_adds": 24 * t * o,
            "host_words_in": POSITIONS * t * c, "im2col_words_in": m * 9 * c}
