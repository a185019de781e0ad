"""Engine words from their Amaranth layouts: integers in, integers out.

The host side of every engine packs stream payloads with :func:`pack` and reads them with
:func:`unpack`. Both walk the :mod:`amaranth.lib.data` layout the gateware uses (field
offsets, widths, signedness, array strides), so the host and the hardware cannot disagree
on a bit; they give what ``layout.const(value).as_bits()`` and ``layout.from_bits(bits)``
give (checked in ``tests/test_words.py``), at the speed a testbench streaming thousands of
beats needs (lanes of whole bytes go through NumPy).
"""

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "pack_lanes", "unpack_lanes"]


def pack(shape, value) -> int:
    """The bits of ``value`` laid out as ``shape``: a dict for a struct (missing fields are
    0), a sequence for an array, an integer for a plain shape (wrapped to its width)."""
    if isinstance(shape, data.ArrayLayout):
        elem = shape.elem_shape
        if not isinstance(elem, data.Layout):
            return pack_lanes(value, Shape.cast(elem).width, shape.length)
        stride = elem.size
        return sum(pack(elem, v) << (i * stride) for i, v in enumerate(value))
    if isinstance(shape, data.Layout):
        word = 0
        for name, field in shape:
            if name in value:
                word |= pack(field.shape, value[name]) << field.offset
        unknown = set(value) - {name for name, _ in shape}
        if unknown:
            raise ValueError(f"no field {', '.join(sorted(unknown))} in {shape!r}")
        return word
    return int(value) & ((1 << Shape.cast(shape).width) - 1)


def unpack(shape, bits: int):
    """``bits`` read as ``shape``: a dict for a struct, a list for an array, an int (signed
    where the shape is) for a plain shape."""
    if isinstance(shape, data.ArrayLayout):
        elem = shape.elem_shape
        if not isinstance(elem, data.Layout):
            elem = Shape.cast(elem)
            return unpack_lanes(bits, elem.width, shape.length, elem.signed).tolist()
        stride, mask = elem.size, (1 << elem.size) - 1
        return [unpack(elem, (bits >> (i * stride)) & mask) for i in range(shape.length)]
    if isinstance(shape, data.Layout):
        return {name: unpack(field.shape, (bits >> field.offset) & ((1 << field.width) - 1))
                for name, field in shape}
    shape = Shape.cast(shape)
    bits &= (1 << shape.width) - 1
    if shape.signed and bits >> (shape.width - 1):
        bits -= 1 << shape.width
    return bits


def pack_lanes(lanes, width: int, length: int | None = None) -> int:
    """Lane ``k`` of ``lanes`` (wrapped to ``width`` bits) at bit ``k * width``."""
    if not isinstance(lanes, np.ndarray):
        lanes = np.array(lanes, dtype=object)    # Python ints keep every bit
    if length is not None and lanes.shape != (length,):
        raise ValueError(f"expected {length} lanes, got shape {lanes.shape}")
    if width in (8, 16, 32, 64) and lanes.size and lanes.dtype.kind in "iu":
        raw = lanes.astype(np.int64 if lanes.dtype.kind == "i" else np.uint64)
        return int.from_bytes(raw.astype(f"<u{width // 8}").tobytes(), "little")
    mask, word = (1 << width) - 1, 0
    for k, x in enumerate(lanes.tolist()):
        word |= (int(x) & mask) << (k * width)
    return word


def unpack_lanes(bits: int, width: int, length: int, signed: bool = False) -> np.ndarray:
    """``length`` lanes of ``width`` bits from ``bits``, sign-extended if ``signed``
    (int64; object for unsigned 64-bit lanes, which int64 cannot hold)."""
    if width in (8, 16, 32):
        raw = (bits & ((1 << (width * length)) - 1)).to_bytes(width // 8 * length, "little")
        return np.frombuffer(raw, f"<{'i' if signed else 'u'}{width // 8}").astype(np.int64)
    mask = (1 << width) - 1
    out = [(bits >> (k * width)) & mask for k in range(length)]
    if signed:
        out = [x - (1 << width) if x >> (width - 1) else x for x in out]
    return np.array(out, dtype=np.int64 if signed or width < 64 else object)
