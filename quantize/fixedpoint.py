"""16-bit fixed point for the sparse engine: fraction bits chosen from the data."""

import numpy as np

__all__ = ["frac_bits_for", "to_fixed", "from_fixed"]


def frac_bits_for(max_abs: float, bits: int = 16, max_frac: int | None = None) -> int:
    """Most fraction bits for which ``±max_abs`` still fits a signed ``bits``-bit value.

    Raises ``ValueError`` for a NaN or infinite ``max_abs``.
    """
    max_frac = bits - 1 if max_frac is None else max_frac
    max_abs = float(max_abs)
    if not np.isfinite(max_abs):
        raise ValueError(f"no fixed-point format holds {max_abs}: the values must be finite")
    if max_abs <= 0:
        return max_frac
    limit = 2 ** (bits - 1) - 1
    f = int(np.floor(np.log2(limit / max_abs)))
    while f > -bits and round(max_abs * 2.0 ** f) > limit:
        f -= 1
    return int(min(f, max_frac))


def to_fixed(x, frac: int, bits: int = 16) -> np.ndarray:
    """Round to nearest (halves away from zero) and saturate to signed ``bits``.

    Infinities saturate; a NaN raises ``ValueError`` (it has no nearest integer).
    """
    x = np.asarray(x, dtype=np.float64) * 2.0 ** frac
    if np.isnan(x).any():
        raise ValueError("cannot convert NaN to fixed point")
    q = np.sign(x) * np.floor(np.abs(x) + 0.5)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(q, lo, hi).astype(np.int64)


def from_fixed(q, frac: int) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * 2.0 ** -frac
