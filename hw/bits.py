"""Bit-width arithmetic shared by the engines' configs, layouts and drivers."""

__all__ = ["bits_for", "ceil_log2", "pow2_at_least"]


def bits_for(n: int) -> int:
    """Bits to hold the unsigned values ``0 .. n`` (at least 1).

    An address into ``depth`` words is ``bits_for(depth - 1)`` bits wide.
    """
    return max(1, int(n).bit_length())


def ceil_log2(n: int) -> int:
    """The smallest ``k`` with ``2**k >= n`` (0 for ``n <= 1``)."""
    return max(0, int(n) - 1).bit_length()


def pow2_at_least(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for ``n <= 1``)."""
    return 1 << ceil_log2(n)
