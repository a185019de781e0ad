"""Host side of the systolic engine: pack a GEMM into buffer words, run it, unpack results.

:func:`run_gemm` is what the ``nnaccel gemm`` command, the benchmarks, the compression
front end and the board driver call. ``engine="golden"`` evaluates
:mod:`sim.golden.systolic`; ``engine="rtl"`` runs the generated Verilog under Verilator
(cocotb testbench :mod:`sim.tb.systolic`) and reports the engine's cycles.
"""

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.systolic.config import SystolicConfig
from hw.systolic.layouts import (
    ChannelParams,
    act_word,
    gemm_command,
    param_word,
    result_word,
    weight_word,
)
from sim.golden import systolic as golden

__all__ = ["GemmJob", "GemmRun", "PackedGemm", "pack", "unpack", "run_gemm", "run_jobs",
           "model_cycles", "random_job", "rtl_build"]


@dataclass
class GemmJob:
    """One requantized GEMM: int8 ``a`` (M×K) times int8 ``w`` (K×N)."""

    a: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_zero_point: int = 0
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

    def __post_init__(self):
        self.a = _int_array(self.a, "a", 2, -128, 127)
        self.w = _int_array(self.w, "w", 2, -128, 127)
        m, k = self.a.shape
        k2, n = self.w.shape
        if k != k2:
            raise ValueError(f"a is {m}x{k} but w is {k2}x{n}: w must have K={k} rows")
        self.bias = _int_array(self.bias, "bias", 1, golden.INT32_MIN, golden.INT32_MAX, n)
        self.multiplier = _int_array(self.multiplier, "multiplier", 1, 0, golden.INT32_MAX, n)
        self.shift = _int_array(self.shift, "shift", 1, -31, 30, n)
        for name in ("input_zero_point", "output_zero_point", "act_min", "act_max"):
            value = int(getattr(self, name))
            if not -128 <= value <= 127:
                raise ValueError(f"{name}={value}: must be an int8 (-128..127)")
            setattr(self, name, value)
        if self.act_min > self.act_max:
            raise ValueError(f"act_min={self.act_min} > act_max={self.act_max}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape[0], self.a.shape[1], self.w.shape[1]

    def golden(self, rounding: str) -> np.ndarray:
        return golden.gemm(self.a, self.w, self.bias, self.multiplier, self.shift,
                           self.input_zero_point, self.output_zero_point, self.act_min,
                           self.act_max, rounding)

    def arrays(self) -> dict:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _int_array(x, name, ndim, lo, hi, length=None):
    arr = np.asarray(x)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries, need one per output channel "
                         f"({length})")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} values must lie in [{lo}, {hi}]")
    return arr


@dataclass
class PackedGemm:
    """A GEMM as the stream beats the engine takes: payload integers per stream."""

    act: list[int]
    weight: list[int]
    param: list[int]
    command: int
    result_words: int


@dataclass
class GemmRun:
    output: np.ndarray
    cycles: int
    counters: dict = field(default_factory=dict)
    engine: str = "golden"

    @property
    def useful_macs(self) -> int:
        return int(self.counters.get("useful_macs", 0))


def _words(values: np.ndarray) -> list[int]:
    """Rows of int8 → little-endian integers (element 0 in the low byte)."""
    raw = np.ascontiguousarray(values.astype(np.int8)).view(np.uint8)
    width = raw.shape[1]
    return [int.from_bytes(raw[i].tobytes(), "little") for i in range(raw.shape[0])] \
        if width else []


def _field(layout, name):
    f = layout[name]
    return f.offset, f.width


def _struct(layout, **values) -> int:
    word = 0
    for name, value in values.items():
        offset, width = _field(layout, name)
        word |= (int(value) & ((1 << width) - 1)) << offset
    return word


def pack(cfg: SystolicConfig, job: GemmJob) -> PackedGemm:
    """Lay ``job`` out in the engine's buffers (see :class:`hw.systolic.SystolicTop`)."""
    m, k, n = job.shape
    cfg.check_gemm(m, k, n)
    rows, cols = cfg.rows, cfg.cols
    kt, nt = -(-k // rows), -(-n // cols)
    a = np.zeros((m, kt * rows), np.int8)
    a[:, :k] = job.a
    w = np.zeros((kt * rows, nt * cols), np.int8)
    w[:k, :n] = job.w
    # activation word kt*M + m
    a_words = _words(a.reshape(m, kt, rows).transpose(1, 0, 2).reshape(kt * m, rows))
    # weight word (nt*KT + kt)*rows + r
    w_words = _words(w.reshape(kt * rows, nt, cols).transpose(1, 0, 2).reshape(-1, cols))
    al, wl, pl = act_word(cfg), weight_word(cfg), param_word(cfg)
    a_shift, w_shift, p_shift = (_field(al, "data")[0], _field(wl, "data")[0],
                                 _field(pl, "data")[0])
    act = [addr | (word << a_shift) for addr, word in enumerate(a_words)]
    weight = [addr | (word << w_shift) for addr, word in enumerate(w_words)]
    channel_bits = ChannelParams.size
    param = []
    for t in range(nt):
        word = 0
        for c in range(cols):
            ch = t * cols + c
            if ch < n:
                value = _struct(ChannelParams, bias=job.bias[ch], multiplier=job.multiplier[ch],
                                shift=job.shift[ch])
                word |= value << (c * channel_bits)
        param.append(t | (word << p_shift))
    command = _struct(gemm_command(cfg), m=m, k=k, n=n,
                      input_zero_point=job.input_zero_point,
                      output_zero_point=job.output_zero_point,
                      act_min=job.act_min, act_max=job.act_max)
    return PackedGemm(act, weight, param, command, result_words=nt * m)


def unpack(cfg: SystolicConfig, words: list[int], m: int, n: int) -> np.ndarray:
    """Result beats (N tile by N tile, row by row) → int8[M, N]; checks ``last``."""
    cols = cfg.cols
    nt = -(-n // cols)
    if len(words) != nt * m:
        raise ValueError(f"expected {nt * m} result words, got {len(words)}")
    last_offset, _ = _field(result_word(cfg), "last")
    lasts = [(w >> last_offset) & 1 for w in words]
    if lasts[-1] != 1 or any(lasts[:-1]):
        raise ValueError("result stream's 'last' flag is not on the final word only")
    mask = (1 << (8 * cols)) - 1
    raw = b"".join((w & mask).to_bytes(cols, "little") for w in words)
    out = np.frombuffer(raw, np.int8).reshape(nt, m, cols).transpose(1, 0, 2).reshape(m, -1)
    return out[:, :n].copy()


def random_job(rng: np.random.Generator, m: int, k: int, n: int, *,
               extreme: bool = False) -> GemmJob:
    """A random requantized GEMM whose outputs spread over the int8 range."""
    if extreme:
        a = rng.choice(np.array([-128, 127, -127, 0], np.int64), (m, k))
        w = rng.choice(np.array([-128, 127, -127, 0], np.int64), (k, n))
    else:
        a = rng.integers(-128, 128, (m, k))
        w = rng.integers(-128, 128, (k, n))
    zp_in = int(rng.integers(-128, 128))
    acc_scale = 128.0 * 128.0 * np.sqrt(k)
    bias = rng.integers(-int(acc_scale), int(acc_scale) + 1, n)
    real = rng.uniform(0.3, 3.0, n) * 40.0 / acc_scale
    mant, exp = np.frexp(real)
    multiplier = np.minimum(np.round(mant * (1 << 31)).astype(np.int64), (1 << 31) - 1)
    shift = np.clip(exp, -31, 30)
    return GemmJob(a, w, bias, multiplier, shift, zp_in, int(rng.integers(-20, 21)))


def rtl_build(cfg: SystolicConfig):
    from hw.systolic.top import SystolicTop
    from sim import rtl
    return rtl.build("systolic_top", cfg, lambda: SystolicTop(cfg),
                     sources=("hw/systolic", "hw/runtime_memory.py"))


def run_jobs(cfg: SystolicConfig, jobs: list[GemmJob], *, stall: float = 0.0, seed: int = 0,
             reset_after: dict | None = None) -> list[GemmRun]:
    """Run ``jobs`` back to back in one Verilator simulation.

    ``stall`` is the probability that a stream source idles or the result sink refuses in
    any cycle. ``reset_after`` maps a job index to a cycle count: that job is started,
    reset after that many cycles, then run again from scratch.
    """
    import os
    from contextlib import nullcontext

    from sim import rtl
    build = rtl_build(cfg)
    keep = os.environ.get("WAVES", "0") not in ("", "0")  # keep dump.fst for the user
    workdir = (nullcontext(tempfile.mkdtemp(prefix="gemm-", dir=_tmp_root())) if keep
               else tempfile.TemporaryDirectory(prefix="gemm-", dir=_tmp_root()))
    with workdir as tmp:
        tmp = Path(tmp)
        if keep:
            print(f"waveform (dump.fst or dump.vcd) in {tmp / 'sim'}")
        for i, job in enumerate(jobs):
            np.savez(tmp / f"job{i}.npz", **job.arrays())
        params = {"config": cfg.to_dict(), "jobs": len(jobs), "dir": str(tmp),
                  "stall": stall, "seed": seed,
                  "reset_after": {str(k): v for k, v in (reset_after or {}).items()}}
        result = rtl.run(build, "sim.tb.systolic", params, workdir=tmp / "sim")
        runs = []
        for i, job in enumerate(jobs):
            m, _, n = job.shape
            r = result["runs"][i]
            out = unpack(cfg, [int(w, 16) for w in r["words"]], m, n)
            runs.append(GemmRun(out, r["cycles"], r["counters"], "rtl"))
        return runs


def _tmp_root() -> Path:
    from sim.rtl import BUILD_ROOT
    root = BUILD_ROOT / "sim" / "jobs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_gemm(cfg: SystolicConfig, a, w, bias, multiplier, shift, input_zero_point=0,
             output_zero_point=0, act_min=-128, act_max=127, *, engine: str = "golden",
             stall: float = 0.0, seed: int = 0) -> GemmRun:
    """Run one GEMM on ``engine`` ("golden" or "rtl")."""
    job = GemmJob(a, w, bias, multiplier, shift, input_zero_point, output_zero_point,
                  act_min, act_max)
    m, k, n = job.shape
    cfg.check_gemm(m, k, n)
    if engine == "golden":
        return GemmRun(job.golden(cfg.rounding), 0, {"useful_macs": m * k * n}, "golden")
    if engine == "rtl":
        return run_jobs(cfg, [job], stall=stall, seed=seed)[0]
    raise ValueError(f"engine={engine!r}: use 'golden' or 'rtl'")


def model_cycles(cfg: SystolicConfig, m: int, k: int, n: int) -> int:
    """Analytical cycle estimate of one GEMM as the testbench runs it (loads included).

    Loads stream one word a cycle on each of three parallel streams; each tile then
    issues ``m`` rows, but a tile cannot start before its weights shifted in
    (``SystolicTop.weight_load_cycles`` after the previous latch) nor before the bank it
    reuses has drained from the mesh (``array latency + 3`` cycles after that bank's last
    row). ``make bench`` reports this model's error against the simulated RTL.
    """
    kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
    tiles = kt * nt
    from hw.systolic.requant import Requantizer
    from hw.systolic.top import SystolicTop
    latency = SystolicTop.array_latency_of(cfg)
    load = SystolicTop.weight_load_cycles_of(cfg)
    loads = max(kt * m, tiles * cfg.rows, nt)
    # A tile's weights shift in over `load` cycles, and it reuses the bank of the tile
    # two before it, which must have left the mesh: start(t+1) - start(t-1) >= m + latency + 3.
    period = max(m, load, (m + latency + 3) / 2)
    compute = m + (tiles - 1) * period
    drain = latency + 2 + Requantizer.LATENCY + 5
    # The first tile: one idle loader cycle, then `load` cycles to its latch.
    return round(loads + 1 + 1 + load + 1 + compute + drain)
