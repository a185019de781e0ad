"""Storage accounting of Deep Compression (Han, Mao, Dally 2016) per layer.

The paper's figures count, per layer, only what the weights need:

* **dense**: 32 bits per weight;
* **pruned**: each stored entry is a 32-bit weight plus an ``r``-bit relative index (the
  number of zeros since the previous entry, positions taken column by column as EIE
  stores them). A gap longer than ``2**r - 1`` inserts filler zero entries, each covering
  ``2**r`` positions;
* **pruned + quantized (P+Q)**: each entry is a ``b``-bit codebook index plus the ``r``-bit
  relative index, plus the codebook (``2**b`` entries × 32 bits);
* **+ Huffman**: the codebook-index stream and the relative-index stream Huffman coded,
  plus the codebook and the code-length tables (8 bits per symbol).

A layer that keeps most of its weights at a few bits each (ternary, binary) is smaller
stored **dense**: every weight's ``b``-bit codebook index in order, no relative index
(``index_bits = 0`` in its row). ``layer_storage(..., dense=True)`` accounts that row kind
too and keeps whichever kind has the smaller Huffman figure; a dense row counts
``n·32`` pruned, ``n·b`` + codebook P+Q and the Huffman-coded indices of all ``n`` weights +
codebook + table. Pruning + sharing rows stay sparse (the paper's format): only the
ternary/binary quantizer asks for the dense kind, so a binary layer counts 1 bit a weight
plus its two 32-bit scales.

Biases, column pointers and an engine's padding are *not* in these figures (as in the
paper); the real bytes of the engine images are reported next to them under their own name.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from .huffman import huffman_bits

__all__ = ["LayerStorage", "relative_indices", "layer_storage", "totals",
           "weight_sharing_ratio", "check_index_bits", "MIN_INDEX_BITS", "MAX_INDEX_BITS"]

DENSE_BITS = 32
TABLE_BITS_PER_SYMBOL = 8
#: Relative-index widths: 0 bits could not encode any gap, and beyond 16 bits the run
#: alphabet (``2**index_bits`` symbols, Huffman coded) is larger than any layer.
MIN_INDEX_BITS, MAX_INDEX_BITS = 1, 16


def check_index_bits(index_bits: int) -> int:
    """``index_bits`` if it is a valid relative-index width, else ``ValueError``."""
    if (not isinstance(index_bits, int | np.integer) or isinstance(index_bits, bool)
            or not MIN_INDEX_BITS <= index_bits <= MAX_INDEX_BITS):
        raise ValueError(f"--index-bits must be in {MIN_INDEX_BITS}..{MAX_INDEX_BITS}, "
                         f"got {index_bits}")
    return int(index_bits)


def _ratio(dense: int, stored: int) -> float:
    """``dense / stored``; a layer that stores nothing (every weight pruned) is infinitely
    compressed, an empty one not at all."""
    if stored:
        return dense / stored
    return math.inf if dense else 1.0


def weight_sharing_ratio(n: int, bits: int, weight_bits: int = DENSE_BITS) -> float:
    """The paper's weight-sharing compression rate ``r = n·b / (n·log2 k + k·b)``."""
    k = 2 ** bits
    return n * weight_bits / (n * bits + k * weight_bits)


def relative_indices(mask: np.ndarray, index_bits: int, index: np.ndarray | None = None):
    """Zero-run stream of ``mask`` in column-major order.

    Returns ``(runs, symbols)``: the relative index of every stored entry (fillers
    included) and the codebook index stored with it (fillers carry 0). ``index`` defaults
    to zeros. Raises ``ValueError`` for ``index_bits`` outside
    ``MIN_INDEX_BITS .. MAX_INDEX_BITS``.
    """
    span = 2 ** check_index_bits(index_bits)
    flat = np.asarray(mask, bool).T.reshape(-1)
    pos = np.flatnonzero(flat)
    gaps = np.diff(np.concatenate(([-1], pos))) - 1
    fillers = gaps // span
    rem = gaps - fillers * span
    count = fillers + 1  # entries per kept weight: its fillers, then itself
    total = int(count.sum())
    runs = np.full(total, span - 1, dtype=np.int64)
    ends = np.cumsum(count) - 1
    runs[ends] = rem
    symbols = np.zeros(total, dtype=np.int64)
    if index is not None:
        symbols[ends] = np.asarray(index).T.reshape(-1)[pos]
    return runs, symbols


@dataclass
class LayerStorage:
    """One row of the compression table (sizes in bits)."""

    name: str
    shape: tuple
    weights: int
    kept: int
    fillers: int
    bits: int
    index_bits: int
    dense_bits: int
    pruned_bits: int
    pq_bits: int
    huffman_bits: int

    @property
    def density(self) -> float:
        return self.kept / self.weights if self.weights else 0.0

    def ratios(self) -> dict:
        return {"pruned": _ratio(self.dense_bits, self.pruned_bits),
                "pq": _ratio(self.dense_bits, self.pq_bits),
                "huffman": _ratio(self.dense_bits, self.huffman_bits)}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["density"] = self.density
        d.update({f"ratio_{k}": v for k, v in self.ratios().items()})
        return d


def layer_storage(name: str, mask: np.ndarray, index: np.ndarray, bits: int,
                  index_bits: int = 5, dense: bool = False) -> LayerStorage:
    """Account one shared layer (``mask`` kept weights, ``index`` codebook indices).

    With ``dense``, the dense row kind (every weight's index, no relative index) is used
    when its Huffman figure is smaller than the sparse one's. Raises ``ValueError`` for
    ``bits < 1`` or an invalid ``index_bits``.
    """
    if not isinstance(bits, int | np.integer) or bits < 1:
        raise ValueError(f"codebook bits must be a positive integer, got {bits}")
    runs, symbols = relative_indices(mask, index_bits, index)
    entries = runs.size
    k = 2 ** bits
    codebook = k * DENSE_BITS
    huff = (huffman_bits(symbols, k) + huffman_bits(runs, 2 ** index_bits) + codebook
            + (k + 2 ** index_bits) * TABLE_BITS_PER_SYMBOL)
    kept = int(np.count_nonzero(mask))
    sparse = LayerStorage(
        name=name, shape=tuple(int(s) for s in mask.shape), weights=int(mask.size),
        kept=kept, fillers=entries - kept, bits=bits, index_bits=index_bits,
        dense_bits=DENSE_BITS * int(mask.size),
        pruned_bits=entries * (DENSE_BITS + index_bits),
        pq_bits=entries * (bits + index_bits) + codebook,
        huffman_bits=huff)
    if not dense:
        return sparse
    n = int(mask.size)
    codes = np.where(np.asarray(mask, bool), np.asarray(index), 0).reshape(-1)
    flat = LayerStorage(
        name=name, shape=sparse.shape, weights=n, kept=kept, fillers=0, bits=bits,
        index_bits=0, dense_bits=DENSE_BITS * n, pruned_bits=DENSE_BITS * n,
        pq_bits=n * bits + codebook,
        huffman_bits=huffman_bits(codes, k) + codebook + k * TABLE_BITS_PER_SYMBOL)
    return flat if flat.huffman_bits < sparse.huffman_bits else sparse


def totals(rows: list[LayerStorage]) -> dict:
    """Whole-network sizes and ratios (sums over layers)."""
    s = {key: sum(getattr(r, key) for r in rows)
         for key in ("weights", "kept", "fillers", "dense_bits", "pruned_bits", "pq_bits",
                     "huffman_bits")}
    s["density"] = s["kept"] / s["weights"] if s["weights"] else 0.0
    s["ratio_pruned"] = _ratio(s["dense_bits"], s["pruned_bits"])
    s["ratio_pq"] = _ratio(s["dense_bits"], s["pq_bits"])
    s["ratio_huffman"] = _ratio(s["dense_bits"], s["huffman_bits"])
    return s
