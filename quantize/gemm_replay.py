"""Replaying a given requantized GEMM (``nnaccel gemm --operands``): operands from an ``.npz``
file, checked key by key, run on the golden model or the RTL.

The keys (:data:`OPERAND_KEYS`), every integer array in any integer dtype whose values fit:

* ``a``: int8 activations, M × K;
* ``w``: int8 weights, K × N (``weights_layout="kn"``) or N × K (``"oi"``, out × in as
  TFLite's FULLY_CONNECTED stores them);
* ``bias``: int32, (N,);
* ``multiplier``: int32 in [0, 2^31 - 1] and ``shift``: int32 in [-31, 30], TFLite's
  ``QuantizeMultiplier`` pair per output channel, (N,), or a scalar for every channel;
* optional scalars: ``input_zero_point``, ``output_zero_point`` (int8, default 0),
  ``act_min``, ``act_max`` (int8 clamp, default -128 and 127) and ``rounding`` (a string,
  one of :data:`hw.systolic.ROUNDING_MODES`).

A missing, unknown or malformed key is a one-line :class:`ValueError` that names the key and
the shape and dtype it should have.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.systolic import ROUNDING_MODES, SystolicConfig
from sim.systolic import GemmJob, GemmRun, model_cycles, run_gemm

__all__ = ["OPERAND_KEYS", "WEIGHT_LAYOUTS", "Operands", "load_operands", "run_report"]

#: Each key: (required, what it must be).
OPERAND_KEYS = {
    "a": (True, "int8 (M, K)"),
    "w": (True, "int8 (K, N) with --weights-layout kn, (N, K) with oi"),
    "bias": (True, "int32 (N,)"),
    "multiplier": (True, "int32 in [0, 2147483647], (N,) or a scalar"),
    "shift": (True, "int32 in [-31, 30], (N,) or a scalar"),
    "input_zero_point": (False, "an int8 scalar"),
    "output_zero_point": (False, "an int8 scalar"),
    "act_min": (False, "an int8 scalar"),
    "act_max": (False, "an int8 scalar"),
    "rounding": (False, f"a string scalar, one of {', '.join(ROUNDING_MODES)}"),
}

#: How ``w`` is laid out in the file.
WEIGHT_LAYOUTS = {"kn": "K x N (in x out)", "oi": "N x K (out x in, TFLite's layout)"}

_INT8 = (-128, 127)
_INT32 = (-(1 << 31), (1 << 31) - 1)


@dataclass(frozen=True)
class Operands:
    """A checked GEMM and the rounding mode its file names (``None`` if it names none)."""

    job: GemmJob
    rounding: str | None


def _fail(key: str, got: str) -> ValueError:
    return ValueError(f"operand {key!r}: expected {OPERAND_KEYS[key][1]}, got {got}")


def _ints(arrays, key, shape, bounds, note=""):
    """``arrays[key]`` as int64 of ``shape`` (a tuple with ``None`` for any size), its
    values within ``bounds``; ``note`` says what fixed the sizes."""
    arr = arrays[key]
    described = f"{arr.dtype} {arr.shape}{note}"
    if not np.issubdtype(arr.dtype, np.integer):
        raise _fail(key, described)
    if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape,
                                                                                strict=True)):
        raise _fail(key, described)
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < bounds[0] or arr.max() > bounds[1]):
        raise _fail(key, f"values from {arr.min()} to {arr.max()}")
    return arr


def _per_channel(arrays, key, n, bounds):
    if arrays[key].ndim == 0:
        return np.full(n, int(_ints(arrays, key, (), bounds)), np.int64)
    return _ints(arrays, key, (n,), bounds, f" (w gives N={n})")


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--operands {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--operands {path}: not an .npz archive (the zip of arrays "
                         f"numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"--operands {path}: not a readable .npz archive ({e})") from None
    except ValueError:           # an object array: refused without pickle
        raise ValueError(f"--operands {path}: holds Python objects, not plain arrays; save "
                         f"numeric arrays and a str rounding") from None


def load_operands(path, weights_layout: str = "kn") -> Operands:
    """The GEMM in the ``.npz`` file ``path``; ``w`` read as ``weights_layout``."""
    if weights_layout not in WEIGHT_LAYOUTS:
        raise ValueError(f"weights_layout={weights_layout!r}: use one of "
                         f"{', '.join(WEIGHT_LAYOUTS)}")
    arrays = _read(path)
    unknown = sorted(set(arrays) - set(OPERAND_KEYS))
    if unknown:
        raise ValueError(f"--operands {path}: unknown key {unknown[0]!r}; the keys are "
                         f"{', '.join(OPERAND_KEYS)}")
    for key, (required, _) in OPERAND_KEYS.items():
        if required and key not in arrays:
            raise ValueError(f"--operands {path}: missing key {key!r}: "
                             f"{OPERAND_KEYS[key][1]}")
    a = _ints(arrays, "a", (None, None), _INT8)
    if not a.size:
        raise _fail("a", f"the empty shape {a.shape}")
    k = a.shape[1]
    w = _ints(arrays, "w", (k, None) if weights_layout == "kn" else (None, k), _INT8,
              f" (a gives K={k}; --weights-layout {weights_layout})")
    if not w.size:
        raise _fail("w", f"the empty shape {w.shape}")
    if weights_layout == "oi":
        w = w.T
    n = w.shape[1]
    note = f" (w gives N={n})"
    fields = {"bias": _ints(arrays, "bias", (n,), _INT32, note),
              "multiplier": _per_channel(arrays, "multiplier", n, (0, _INT32[1])),
              "shift": _per_channel(arrays, "shift", n, (-31, 30))}
    for key in ("input_zero_point", "output_zero_point", "act_min", "act_max"):
        if key in arrays:
            fields[key] = int(_ints(arrays, key, (), _INT8))
    rounding = None
    if "rounding" in arrays:
        value = arrays["rounding"]
        if value.ndim != 0 or value.dtype.kind != "U" or str(value) not in ROUNDING_MODES:
            raise _fail("rounding", f"{value.dtype} {value.shape} {value!r}")
        rounding = str(value)
    if fields.get("act_min", -128) > fields.get("act_max", 127):
        raise ValueError(f"operands act_min={fields['act_min']} > act_max={fields['act_max']}")
    return Operands(GemmJob(a, w, **fields), rounding)


def run_report(cfg: SystolicConfig, job: GemmJob, engine: str, *, seed: int = 0,
               stall: float = 0.0) -> tuple[dict, GemmRun]:
    """Run ``job`` on ``engine`` ("golden" or "rtl"): its cycles, MACs and utilization, and
    on the RTL the engine's counters and the output words that differ from the golden model
    in ``cfg.rounding`` (the golden model is the reference: nothing to differ from)."""
    m, k, n = job.shape
    cfg.check_gemm(m, k, n)
    run = run_gemm(cfg, job.a, job.w, job.bias, job.multiplier, job.shift,
                   job.input_zero_point, job.output_zero_point, job.act_min, job.act_max,
                   engine=engine, stall=stall, seed=seed)
    rtl = engine == "rtl"
    cycles = run.cycles if rtl else model_cycles(cfg, m, k, n)
    macs = m * k * n
    report = {
        "engine": engine, "rows": cfg.rows, "cols": cfg.cols, "m": m, "k": k, "n": n,
        "seed": seed, "rounding": cfg.rounding, "cycles": cycles,
        "cycles_source": "rtl" if rtl else "model", "useful_macs": macs,
        "utilization": macs / (cfg.rows * cfg.cols * cycles),
        "counters": run.counters if rtl else {},
    }
    if rtl:
        report["mismatches"] = int((run.output != job.golden(cfg.rounding)).sum())
    return report, run
