"""Canonical Huffman coding of small-alphabet symbol streams (codebook and zero-run indices).

``encode`` returns the bit stream packed MSB first plus the code lengths (the table a
decoder needs); ``decode(encode(x)) == x``.
"""

import heapq
from dataclasses import dataclass

import numpy as np

__all__ = ["HuffmanCode", "code_lengths", "canonical_codes", "encode", "decode", "huffman_bits"]

#: Longest code word the int64 canonical codes hold (a table from a corrupt file may claim more).
MAX_CODE_LENGTH = 62


def code_lengths(freqs) -> np.ndarray:
    """Huffman code length per symbol (0 for absent symbols; 1 when only one is present)."""
    freqs = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(freqs.size, dtype=np.int64)
    present = np.flatnonzero(freqs > 0)
    if present.size == 1:
        lengths[present] = 1
        return lengths
    heap = [(int(freqs[s]), int(s), (int(s),)) for s in present]
    heapq.heapify(heap)
    tie = freqs.size
    while len(heap) > 1:
        fa, _, a = heapq.heappop(heap)
        fb, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (fa + fb, tie, a + b))
        tie += 1
    return lengths


def canonical_codes(lengths) -> np.ndarray:
    """Canonical code values (as integers, ``lengths[s]`` bits each) from code lengths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        prev = int(lengths[s])
        codes[s] = code
        code += 1
    return codes


@dataclass
class HuffmanCode:
    """Members: ``data`` (bytes, MSB first), ``nbits`` (payload bits), ``lengths``
    (code length per symbol), ``count`` (symbols encoded)."""

    data: bytes
    nbits: int
    lengths: np.ndarray
    count: int


def huffman_bits(symbols, alphabet: int) -> int:
    """Payload bits of the Huffman coding of ``symbols`` (no table)."""
    freqs = np.bincount(np.asarray(symbols, dtype=np.int64).reshape(-1), minlength=alphabet)
    return int(np.sum(freqs * code_lengths(freqs)))


def encode(symbols, alphabet: int) -> HuffmanCode:
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols must be in 0..{alphabet - 1}")
    freqs = np.bincount(symbols, minlength=alphabet)
    lengths = code_lengths(freqs)
    codes = canonical_codes(lengths)
    if symbols.size == 0:
        return HuffmanCode(b"", 0, lengths, 0)
    lens = lengths[symbols]
    maxlen = int(lens.max())
    # Expand every code into its bits (MSB first) with a vectorised shift table.
    shifts = np.arange(maxlen - 1, -1, -1)
    bits = (codes[symbols][:, None] << (maxlen - lens)[:, None] >> shifts[None, :]) & 1
    keep = np.arange(maxlen)[None, :] < lens[:, None]
    stream = bits[keep].astype(np.uint8)
    return HuffmanCode(np.packbits(stream).tobytes(), int(stream.size), lengths,
                       int(symbols.size))


def decode(code: HuffmanCode) -> np.ndarray:
    """The symbols of ``code`` (canonical decoding, one symbol per step).

    Raises ``ValueError`` for a corrupt code: a length table that is no prefix code
    (lengths outside 0..``MAX_CODE_LENGTH`` or over-full), or a stream that does not
    decode to exactly ``count`` symbols.
    """
    lengths = np.asarray(code.lengths, dtype=np.int64)
    used = lengths[lengths != 0]
    if (used.size and (used.min() < 0 or used.max() > MAX_CODE_LENGTH
                       or sum(1 << (MAX_CODE_LENGTH - int(n)) for n in used)
                       > 1 << MAX_CODE_LENGTH)):
        raise ValueError("corrupt Huffman table: code lengths do not form a prefix code")
    codes = canonical_codes(lengths)
    table = {(int(lengths[s]), int(codes[s])): int(s) for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.frombuffer(code.data, dtype=np.uint8))[: code.nbits].tolist()
    out = np.empty(code.count, dtype=np.int64)
    value, length, n = 0, 0, 0
    for bit in bits:
        value = (value << 1) | bit
        length += 1
        s = table.get((length, value))
        if s is not None:
            if n == code.count:
                raise ValueError(f"corrupt Huffman stream: more than {code.count} symbols")
            out[n] = s
            n += 1
            value, length = 0, 0
    if n != code.count or length:
        raise ValueError(f"corrupt Huffman stream: decoded {n} of {code.count} symbols")
    return out
