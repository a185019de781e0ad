"""A memory budget for golden runs and generators: estimate first, refuse before allocating.

The budget is half the machine's physical memory unless ``NNACCEL_MAX_MEMORY`` (or a
command's ``--max-memory``) sets it, as bytes with an optional K/M/G/T suffix
(``NNACCEL_MAX_MEMORY=40G``). A job whose estimate exceeds it fails with one line that
names the job, the estimate and the two ways out: a smaller job or a larger budget.
"""

import os

__all__ = ["BudgetError", "parse_size", "limit", "check", "set_limit", "check_generator"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_override: int | None = None


class BudgetError(ValueError):
    """A job's memory estimate is over the budget."""


def parse_size(text: str, what: str = "--max-memory") -> int:
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1
    if not value > 0:
        raise ValueError(f"{what} {text!r}: use a size such as 8G, 512M or 1000000 (bytes)")
    return int(value)


def _physical() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def set_limit(size: str | int | None) -> None:
    """Set the budget for this process (a command's ``--max-memory``); ``None`` resets."""
    global _override
    _override = None if size is None else parse_size(size) if isinstance(size, str) else size


def limit() -> int:
    if _override is not None:
        return _override
    env = os.environ.get("NNACCEL_MAX_MEMORY")
    return parse_size(env, "NNACCEL_MAX_MEMORY") if env else _physical() // 2


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def check(nbytes: float, what: str, smaller: str) -> None:
    """Refuse ``what`` if it needs more than the budget; ``smaller`` says how to shrink it."""
    budget = limit()
    if nbytes > budget:
        raise BudgetError(f"{what} needs about {_fmt(nbytes)}, over the {_fmt(budget)} memory "
                          f"budget: {smaller}, or raise the budget (--max-memory or "
                          f"NNACCEL_MAX_MEMORY)")


def check_generator(config) -> None:
    """Refuse to elaborate an engine whose generator would outgrow the budget. Measured
    peak memory of ``nnaccel verilog``: about 100 MiB plus 6.5 MiB per EIE PE and 0.42 MiB
    per systolic MAC (8 → 32 PEs, 8×8 → 32×32 arrays), rounded up here."""
    if hasattr(config, "pes"):
        need, size = (128 + 8 * config.pes) << 20, f"{config.pes} EIE PEs"
        smaller = "use fewer --pes"
    else:
        macs = config.rows * config.cols
        need, size = (128 << 20) + macs * (512 << 10), f"a {config.rows}x{config.cols} array"
        smaller = "use fewer --rows/--cols"
    check(need, f"generating {size}", smaller)
