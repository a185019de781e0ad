"""CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, not reflected).

The same checksum guards every frame of the host link, on both sides: :func:`crc16` for
the host (it equals :func:`binascii.crc_hqx` with ``0xFFFF``, which the tests use as the
independent reference) and :func:`crc16_update` for the gateware, where it builds the
combinational next-state expression of one byte step.
"""

from amaranth.hdl import Cat, Value

__all__ = ["CRC_INIT", "CRC_POLY", "crc16", "crc16_update"]

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC of ``data`` continuing from ``crc``."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _byte_step_matrix():
    """For each output bit: the crc bits and byte bits whose XOR it is (the step is linear)."""
    state = [({i}, set()) for i in range(16)]                # (crc bits, byte bits)
    for k in range(7, -1, -1):                               # byte MSB first
        feedback = (state[15][0], state[15][1] ^ {k})
        shifted = [(set(), set())] + state[:15]
        state = [(c ^ feedback[0], b ^ feedback[1]) if CRC_POLY >> i & 1 else (c, b)
                 for i, (c, b) in enumerate(shifted)]
    return state


_STEP = _byte_step_matrix()


def crc16_update(crc: Value, byte: Value) -> Value:
    """16-bit expression: ``crc`` after shifting in ``byte`` (MSB first), one clock's work.

    Built as one XOR tree per output bit from the step's matrix over GF(2), so the
    expression stays small.
    """
    crc, byte = Value.cast(crc), Value.cast(byte)
    bits = []
    for crc_bits, byte_bits in _STEP:
        terms = [crc[i] for i in sorted(crc_bits)] + [byte[i] for i in sorted(byte_bits)]
        bit = terms[0]
        for t in terms[1:]:
            bit = bit ^ t
        bits.append(bit)
    return Cat(*bits)
