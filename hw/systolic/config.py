"""The one frozen configuration of the systolic engine."""

from dataclasses import dataclass

from ..config import EngineConfig

__all__ = ["SystolicConfig", "ROUNDING_MODES", "PRESETS"]

#: The requantization rounding paths, each named after the LiteRT kernels it matches bit for
#: bit (definitions in ``sim/golden/systolic.py``; which kernel runs which: docs/systolic.md).
ROUNDING_MODES = ("double", "single", "ruy_x86")

#: Largest |x - zp_x| times largest |w| for int8 x, int8 zero point and int8 w in [-128, 127].
_MAX_PRODUCT = 255 * 128


@dataclass(frozen=True)
class SystolicConfig(EngineConfig):
    """Parameters of a weight-stationary int8 systolic GEMM engine.

    The same object drives the generator (:class:`hw.systolic.SystolicTop`), the golden
    model, the host driver (:mod:`hw.systolic.driver`) and the testbenches, and is written
    into image manifests. :meth:`fit` sizes its buffers for a list of M×K×N GEMMs.

    Parameters
    ----------
    rows, cols:
        Array size. A weight tile is ``rows`` (K) × ``cols`` (N) int8 values.
    input_width:
        Activation and weight width; only 8 (int8) is supported.
    acc_width:
        Width of partial sums in the mesh and of the accumulator memory (at most 32, the
        int32 that TFLite requantizes). Must hold the largest sum of products of
        :attr:`max_k` terms.
    act_depth:
        Activation buffer depth in words of ``rows`` int8: a GEMM needs
        ``ceil(K/rows) * M`` words.
    weight_depth:
        Weight buffer depth in words of ``cols`` int8: a GEMM needs
        ``ceil(N/cols) * ceil(K/rows) * rows`` words.
    acc_depth:
        Accumulator depth, the largest M.
    param_depth:
        Output-channel parameter memory depth in words of ``cols`` channels: a GEMM
        needs ``ceil(N/cols)`` words.
    rounding:
        How the requantizers round, one of :data:`ROUNDING_MODES`:

        * ``"double"``: ``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``
          (ties away from zero). LiteRT's reference CONV_2D and DEPTHWISE_CONV_2D
          (``OpResolverType.BUILTIN_REF``).
        * ``"single"``: ``TFLITE_SINGLE_ROUNDING``, one rounding shift of the 64-bit
          product. LiteRT's reference FULLY_CONNECTED.
        * ``"ruy_x86"``: the same high multiply, then a rounding shift with ties upward.
          LiteRT's optimized CONV_2D and FULLY_CONNECTED on x86 with AVX or later
          (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``; ruy's AVX, AVX2-FMA and AVX-512 kernels).

        LiteRT's default resolver hands int8 CONV_2D and FULLY_CONNECTED to XNNPACK, which
        requantizes in float32: no mode matches it bit for bit (docs/systolic.md).
    k_limit:
        Largest K a command may carry, when smaller than what the buffers admit; ``0``
        (the default, and what older manifests without the field mean) leaves K to the
        buffers. :meth:`fit` sets it to the workload's largest K, so power-of-two buffer
        depths do not demand a wider accumulator than the GEMMs themselves.
    act_lut:
        Build the 256-entry activation table after the requantizers (GELU, sigmoid, … on
        chip). Off by default: the table's per-column memories sit in the output stage's
        routing and cost Fmax on the ECP5 (docs/fpga-timing.md); without it a job with a
        table is refused.
    """

    rows: int = 8
    cols: int = 8
    input_width: int = 8
    acc_width: int = 32
    act_depth: int = 2048
    weight_depth: int = 2048
    acc_depth: int = 512
    param_depth: int = 64
    rounding: str = "double"
    k_limit: int = 0
    act_lut: bool = False

    def __post_init__(self):
        if not isinstance(self.act_lut, bool):
            raise ValueError(f"SystolicConfig.act_lut={self.act_lut!r}: use true or false")
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 256:
                raise ValueError(f"SystolicConfig.{name}={value!r}: use an integer from 1 to 256")
        if self.input_width != 8:
            raise ValueError(f"SystolicConfig.input_width={self.input_width}: only 8 (int8) "
                             f"is supported")
        for name in ("act_depth", "weight_depth", "acc_depth", "param_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SystolicConfig.{name}={value!r}: use a positive integer")
        if self.weight_depth < self.rows:
            raise ValueError(f"SystolicConfig.weight_depth={self.weight_depth} cannot hold one "
                             f"{self.rows}-row weight tile: use at least {self.rows}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"SystolicConfig.rounding={self.rounding!r}: use one of "
                             f"{', '.join(ROUNDING_MODES)}")
        if not isinstance(self.k_limit, int) or self.k_limit < 0:
            raise ValueError(f"SystolicConfig.k_limit={self.k_limit!r}: use 0 (K up to what "
                             f"the buffers admit) or a positive integer")
        if not 2 <= self.acc_width <= 32:
            raise ValueError(f"SystolicConfig.acc_width={self.acc_width}: use 2 to 32 "
                             f"(requantization takes int32)")
        needed = (self.max_k * _MAX_PRODUCT).bit_length() + 1
        if self.acc_width < needed:
            fits = ((1 << (self.acc_width - 1)) - 1) // _MAX_PRODUCT
            raise ValueError(
                f"SystolicConfig.acc_width={self.acc_width} is too narrow for K up to "
                f"{self.max_k} (needs {needed} bits; {self.acc_width} bits hold K up to "
                f"{fits}): raise acc_width (at most 32), set k_limit to the largest K you "
                f"run, or lower weight_depth/act_depth")

    @property
    def max_k(self) -> int:
        """Largest K a command may carry: what the buffers admit (M = 1, N <= cols),
        capped by :attr:`k_limit` when that is set."""
        tiles = min(self.act_depth, self.weight_depth // self.rows)
        return min(tiles * self.rows, self.k_limit or tiles * self.rows)

    @property
    def max_m(self) -> int:
        return self.acc_depth

    @property
    def max_n(self) -> int:
        return self.param_depth * self.cols

    @property
    def macs(self) -> int:
        return self.rows * self.cols

    def check_gemm(self, m: int, k: int, n: int) -> None:
        """Raise ``ValueError`` saying which buffer is too small for an M×K×N GEMM."""
        for name, value in (("M", m), ("K", k), ("N", n)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GEMM {name}={value!r}: must be a positive integer")
        kt = -(-k // self.rows)
        nt = -(-n // self.cols)
        if self.k_limit and k > self.k_limit:
            raise ValueError(f"GEMM K={k} exceeds k_limit={self.k_limit} (the largest K whose "
                             f"sums acc_width={self.acc_width} holds is planned for): raise "
                             f"k_limit or split K")
        if m > self.acc_depth:
            raise ValueError(f"GEMM M={m} exceeds the accumulator (acc_depth={self.acc_depth})"
                             f": raise acc_depth or split M")
        if kt * m > self.act_depth:
            raise ValueError(f"GEMM {m}x{k} activations need {kt * m} words of the activation "
                             f"buffer (act_depth={self.act_depth}): raise act_depth or split M")
        if nt * kt * self.rows > self.weight_depth:
            raise ValueError(f"GEMM {k}x{n} weights need {nt * kt * self.rows} words of the "
                             f"weight buffer (weight_depth={self.weight_depth}): raise "
                             f"weight_depth or split N")
        if nt > self.param_depth:
            raise ValueError(f"GEMM N={n} needs {nt} parameter words (param_depth="
                             f"{self.param_depth}): raise param_depth or split N")

    DEPTHS = ("act_depth", "weight_depth", "acc_depth", "param_depth")

    def needs(self, gemms) -> dict:
        """Buffer depths the M×K×N GEMMs ``gemms`` (``(m, k, n)`` tuples, one at a time)
        need on this array."""
        if not gemms:
            raise ValueError("SystolicConfig.needs: give at least one (m, k, n) GEMM")
        tiles = [(m, -(-k // self.rows), -(-n // self.cols)) for m, k, n in gemms]
        return {
            "act_depth": max(kt * m for m, kt, _ in tiles),
            "weight_depth": max(nt * kt * self.rows for _, kt, nt in tiles),
            "acc_depth": max(m for m, _, _ in tiles),
            "param_depth": max(nt for _, _, nt in tiles),
        }

    @classmethod
    def fit(cls, workload, base=None, **fields):
        """:meth:`EngineConfig.fit`, with :attr:`k_limit` set to the workload's largest K.

        The accumulator then only has to hold the sums of the K the GEMMs carry, not of the
        K the power-of-two buffers would admit. A ``base`` that already holds the workload
        keeps its own ``k_limit`` (and is returned unchanged); a ``k_limit`` in ``fields``
        or a workload given as a dict of needs is taken as it is.
        """
        if "k_limit" in fields or isinstance(workload, dict) or not workload:
            return super().fit(workload, base, **fields)
        k = max(k for _, k, _ in workload)
        if base is not None and base.max_k >= k:
            try:
                return super().fit(workload, base, **fields)
            except ValueError:
                pass  # the grown buffers admit a K the accumulator cannot hold: cap it
        return super().fit(workload, base, k_limit=k, **fields)


PRESETS = {
    "4x4": SystolicConfig(rows=4, cols=4, act_depth=1024, weight_depth=1024, acc_depth=256,
                          param_depth=64),
    "8x8": SystolicConfig(),
    "16x16": SystolicConfig(rows=16, cols=16, act_depth=16384, weight_depth=16384,
                            acc_depth=512, param_depth=32),
    "32x32": SystolicConfig(rows=32, cols=32, act_depth=8192, weight_depth=8192,
                            acc_depth=512, param_depth=16),
}
