"""Host driver of the systolic engine: a GEMM job in, stream beats out; beats in, results out.

The driver knows the engine's buffers and words (:mod:`hw.systolic.layouts`) and nothing
of how beats travel: the Verilator testbench (:mod:`sim.tb.systolic`), the board adapter's
host side (:mod:`boards.engines`) and every test hand these beats to their transport and
give the result beats back to :func:`unpack`.

::

    job = GemmJob(a, w, bias, multiplier, shift, input_zero_point, output_zero_point)
    packed = pack(cfg, job)          # packed.act / .weight / .param beats, .command
    ...                              # a backend plays them, collects result beats
    y = unpack(cfg, beats, m, n)     # int8[M, N]
    counters = parse_counters(bits)  # the engine's counter word as a dict
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..words import pack as pack_word
from ..words import pack_lanes, unpack_lanes
from ..words import unpack as unpack_word
from .config import SystolicConfig
from .layouts import (
    LUT_SIZE,
    Counters,
    act_word,
    gemm_command,
    lut_chunk,
    lut_entries,
    lut_words,
    param_word,
    result_word,
    weight_word,
)
from .requant import Requantizer
from .top import SystolicTop

__all__ = ["GemmJob", "PackedGemm", "pack", "unpack", "parse_counters", "model_cycles",
           "serial_load_cycles", "INT32_MIN", "INT32_MAX"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


@dataclass
class GemmJob:
    """One requantized GEMM: int8 ``a`` (M×K) times int8 ``w`` (K×N), per-channel int32
    ``bias``, ``multiplier`` and ``shift`` (TFLite's), zero points and the output clamp,
    and optionally ``lut``: 256 int8, the activation table each clamped output code ``q``
    then goes through (``lut[q + 128]``). Every field is checked on construction
    (one-line ``ValueError``)."""

    a: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_zero_point: int = 0
    output_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127
    lut: np.ndarray | None = None

    def __post_init__(self):
        self.a = _int_array(self.a, "a", 2, -128, 127)
        self.w = _int_array(self.w, "w", 2, -128, 127)
        m, k = self.a.shape
        k2, n = self.w.shape
        if k != k2:
            raise ValueError(f"a is {m}x{k} but w is {k2}x{n}: w must have K={k} rows")
        self.bias = _int_array(self.bias, "bias", 1, INT32_MIN, INT32_MAX, n)
        self.multiplier = _int_array(self.multiplier, "multiplier", 1, 0, INT32_MAX, n)
        self.shift = _int_array(self.shift, "shift", 1, -31, 30, n)
        for name in ("input_zero_point", "output_zero_point", "act_min", "act_max"):
            value = int(getattr(self, name))
            if not -128 <= value <= 127:
                raise ValueError(f"{name}={value}: must be an int8 (-128..127)")
            setattr(self, name, value)
        if self.act_min > self.act_max:
            raise ValueError(f"act_min={self.act_min} > act_max={self.act_max}")
        if self.lut is not None:
            self.lut = _int_array(self.lut, "lut", 1, -128, 127)
            if self.lut.shape[0] != LUT_SIZE:
                raise ValueError(f"lut has {self.lut.shape[0]} entries, need {LUT_SIZE} "
                                 f"(one per int8 code)")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape[0], self.a.shape[1], self.w.shape[1]

    def arrays(self) -> dict:
        """The fields as arrays (``lut`` only when there is one)."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "lut" or self.lut is not None}


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
    """A GEMM as the beats the engine takes: payload integers per stream."""

    act: list[int]
    weight: list[int]
    param: list[int]
    command: int
    result_words: int


def pack(cfg: SystolicConfig, job: GemmJob) -> PackedGemm:
    """Lay ``job`` out in the engine's buffers (see :class:`hw.systolic.SystolicTop`):
    activation word ``kt*M + m`` holds row ``m`` of K tile ``kt``; weight word
    ``(nt*KT + kt)*rows + r`` row ``r`` of tile ``(kt, nt)``; parameter word ``nt`` the
    channels of N tile ``nt``, then (a job with a ``lut``) :func:`lut_words` words of the
    activation table, :func:`lut_entries` entries each."""
    m, k, n = job.shape
    cfg.check_gemm(m, k, n)
    if job.lut is not None and not cfg.act_lut:
        raise ValueError("the job has an activation table but the config has none: build "
                         "the engine with act_lut=True")
    rows, cols = cfg.rows, cfg.cols
    kt, nt = -(-k // rows), -(-n // cols)
    a = np.zeros((m, kt * rows), np.int64)
    a[:, :k] = job.a
    w = np.zeros((kt * rows, nt * cols), np.int64)
    w[:k, :n] = job.w
    a_rows = a.reshape(m, kt, rows).transpose(1, 0, 2).reshape(kt * m, rows)
    w_rows = w.reshape(kt * rows, nt, cols).transpose(1, 0, 2).reshape(-1, cols)
    act = _addressed(act_word(cfg), a_rows)
    weight = _addressed(weight_word(cfg), w_rows)
    params = param_word(cfg)
    param = []
    for t in range(nt):
        channels = [{"bias": job.bias[ch], "multiplier": job.multiplier[ch],
                     "shift": job.shift[ch]} if ch < n else {}
                    for ch in range(t * cols, (t + 1) * cols)]
        param.append(pack_word(params, {"addr": t, "data": channels}))
    if job.lut is not None:
        chunk, e = lut_chunk(cfg), lut_entries(cfg)
        data_offset = params["data"].offset
        for c in range(lut_words(cfg)):
            bits = pack_word(chunk, {"chunk": c, "entries": job.lut[c * e:(c + 1) * e]})
            param.append(pack_word(params, {"lut": 1}) | (bits << data_offset))
    command = pack_word(gemm_command(cfg), {
        "m": m, "k": k, "n": n, "input_zero_point": job.input_zero_point,
        "output_zero_point": job.output_zero_point, "act_min": job.act_min,
        "act_max": job.act_max, "lut": int(job.lut is not None)})
    return PackedGemm(act, weight, param, command, result_words=nt * m)


def _addressed(layout, rows: np.ndarray) -> list[int]:
    """Words ``{"addr": i, "data": rows[i]}`` of an addressed buffer ``layout``."""
    addr, data = layout["addr"], layout["data"]
    lane = data.shape.elem_shape.width
    return [(i << addr.offset) | (pack_lanes(row, lane) << data.offset)
            for i, row in enumerate(rows)]


def unpack(cfg: SystolicConfig, words: list[int], m: int, n: int) -> np.ndarray:
    """Result beats (N tile by N tile, row by row) → int8[M, N]; checks ``last``."""
    cols = cfg.cols
    nt = -(-n // cols)
    if len(words) != nt * m:
        raise ValueError(f"expected {nt * m} result words, got {len(words)}")
    layout = result_word(cfg)
    last = layout["last"].offset
    lasts = [(w >> last) & 1 for w in words]
    if lasts[-1] != 1 or any(lasts[:-1]):
        raise ValueError("result stream's 'last' flag is not on the final word only")
    data = layout["data"]
    lanes = np.array([unpack_lanes(w >> data.offset, 8, cols, signed=True) for w in words],
                     dtype=np.int8).reshape(nt, m, cols)
    return lanes.transpose(1, 0, 2).reshape(m, -1)[:, :n].copy()


def parse_counters(bits: int) -> dict:
    """The engine's counter word (:data:`hw.systolic.layouts.Counters`) as a dict."""
    return unpack_word(Counters, bits)


def model_cycles(cfg: SystolicConfig, m: int, k: int, n: int, *, lut: bool = False) -> int:
    """Analytical cycle estimate of one GEMM as the testbench runs it (loads included).

    Loads stream one word a cycle on each of three parallel streams (the parameter stream
    carries :func:`lut_words` more with an activation table, ``lut``; the table adds
    no latency to the output path). The command waits for the weights and parameters
    only: the activations stream in while the GEMM runs, and as they arrive a word a cycle
    from the first cycle on, well ahead of the rows that read them (which start only after
    the weights are in and the first tile has shifted in), they never hold issue back.
    Each tile then issues ``m`` rows, but a tile cannot start before its weights shifted in
    (``SystolicTop.weight_load_cycles`` after the previous latch) nor before the bank it
    reuses has drained from the mesh (``array latency + 3`` cycles after that bank's last
    row). ``make bench`` reports this model's error against the simulated RTL.
    """
    kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
    tiles = kt * nt
    latency = SystolicTop.array_latency_of(cfg)
    load = SystolicTop.weight_load_cycles_of(cfg)
    loads = serial_load_cycles(cfg, m, k, n, lut=lut)
    # A tile's weights shift in over `load` cycles, and it reuses the bank of the tile
    # two before it, which must have left the mesh: start(t+1) - start(t-1) >= m + latency + 3.
    period = max(m, load, (m + latency + 3) / 2)
    compute = m + (tiles - 1) * period
    drain = latency + 2 + Requantizer.LATENCY + 5
    # The first tile: one idle loader cycle, then `load` cycles to its latch.
    return round(loads + 1 + 1 + load + 1 + compute + drain)


def serial_load_cycles(cfg: SystolicConfig, m: int, k: int, n: int, *,
                       lut: bool = False) -> int:
    """The loads a GEMM's command waits for (:func:`model_cycles`' first term): the longer
    of the weight stream (``KT·NT·rows`` words) and the parameter stream (``NT`` words,
    plus the activation table's with ``lut``), a word a cycle. ``m`` does not count: the
    activations stream in while the GEMM runs."""
    kt, nt = -(-k // cfg.rows), -(-n // cfg.cols)
    return max(kt * nt * cfg.rows, nt + (lut_words(cfg) if lut else 0))
