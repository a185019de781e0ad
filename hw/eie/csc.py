"""Interleaved compressed-sparse-column format of the EIE engine: encoder and decoder.

The format (EIE, Han et al. 2016): row ``i`` of a layer belongs to PE ``i mod pes`` where it
is local row ``i // pes``. For every column ``j`` a PE stores its non-zero weights of that
column, in row order, as entries of ``index_bits + zrun_bits`` bits::

    entry = v | (z << index_bits)

``v`` is the codebook index (1 .. 2**index_bits - 1 for a weight; 0 is the codebook's zero,
used only by padding), ``z`` the number of zero rows of this PE before the entry (counted
from local row 0 for the column's first entry, else from the previous entry + 1). A run of
``2**zrun_bits`` or more zeros first emits padding entries ``v = 0, z = 2**zrun_bits - 1``,
each covering ``2**zrun_bits`` rows. Column pointers ``p[j]`` (``cols + 1`` per PE, relative
to the PE's first entry of the layer) delimit column ``j``'s entries ``p[j] .. p[j+1]-1``.

Encoding is vectorized NumPy (one sort over the non-zeros); a 25088 × 4096 matrix with 4 %
non-zeros encodes for 64 PEs in a few seconds.

Signatures
----------
``encode(indices, config, codebook=None) -> CscLayer``
    ``indices``: 2-D integer array (out_features × in_features; uint8 from the compression
    front end), 0 = pruned weight, else the codebook index. ``config``: an
    :class:`hw.eie.EieConfig` (only ``pes``, ``index_bits``, ``zrun_bits``, ``weight_width``
    are read). ``codebook``: optional ``2**index_bits`` signed fixed-point integers (entry 0
    must be 0); it is checked and carried in the result. Raises ``ValueError`` for an index
    out of range or a bad codebook.
``decode(layer) -> np.ndarray``
    The dense uint8 index matrix back; ``decode(encode(W, c)) == W``.
``balanced_row_order(indices, pes) -> np.ndarray``
    Optional row-to-PE assignment by load (see its docstring);
    :func:`hw.eie.driver.balance_layers` applies it to a whole network (and
    ``sim.eie.run_layers(..., balance=True)`` runs one so).
``pack_words(entries, config) -> np.ndarray``
    One PE's entries packed into ``config.word_bits``-bit memory words (uint64), entry ``k``
    in word ``k // entries_per_word`` at bit ``(k % entries_per_word) * entry_bits``.
``unpack_words(words, count, config) -> np.ndarray``
    The first ``count`` entries of one PE back from its words (inverse of ``pack_words``).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["CscLayer", "encode", "decode", "pack_words", "unpack_words", "check_codebook",
           "balanced_row_order"]


@dataclass(frozen=True)
class CscLayer:
    """One layer in interleaved CSC form.

    Members
    -------
    rows, cols, pes:
        Output features, input features, PE count.
    index_bits, zrun_bits:
        Entry field widths.
    entries:
        uint16 entries of all PEs, PE 0's first; PE ``p`` owns
        ``entries[pe_offsets[p]:pe_offsets[p + 1]]``.
    pe_offsets:
        int64, ``pes + 1`` values.
    pointers:
        int64 ``(pes, cols + 1)``, relative to each PE's first entry.
    codebook:
        int64 codebook values (or ``None``).
    """

    rows: int
    cols: int
    pes: int
    index_bits: int
    zrun_bits: int
    entries: np.ndarray
    pe_offsets: np.ndarray
    pointers: np.ndarray
    codebook: np.ndarray | None = None

    def pe_entries(self, pe: int) -> np.ndarray:
        return self.entries[self.pe_offsets[pe]:self.pe_offsets[pe + 1]]

    @property
    def entry_counts(self) -> np.ndarray:
        """Entries (padding included) per PE."""
        return np.diff(self.pe_offsets)

    @property
    def padding_counts(self) -> np.ndarray:
        """Padding entries per PE."""
        pad = ((self.entries & ((1 << self.index_bits) - 1)) == 0).astype(np.int64)
        # A cumulative sum, not reduceat: a PE with no entries has equal offsets (or offsets
        # at the end of the array), which reduceat would misread.
        cum = np.concatenate([[0], np.cumsum(pad)])
        return cum[self.pe_offsets[1:]] - cum[self.pe_offsets[:-1]]

    def column_entries(self, columns) -> np.ndarray:
        """Entries per PE over the given columns, e.g. the non-zero activations' indices."""
        columns = np.asarray(columns, dtype=np.int64)
        return (self.pointers[:, columns + 1] - self.pointers[:, columns]).sum(axis=1)


def check_codebook(codebook, index_bits: int, weight_width: int) -> np.ndarray:
    """Validated codebook as int64: ``2**index_bits`` values, entry 0 equal to 0."""
    cb = np.asarray(codebook)
    size = 1 << index_bits
    if cb.shape != (size,) or not np.issubdtype(cb.dtype, np.integer):
        raise ValueError(f"codebook must be {size} integers (fixed point), got shape "
                         f"{cb.shape} dtype {cb.dtype}")
    cb = cb.astype(np.int64)
    if cb[0] != 0:
        raise ValueError(f"codebook entry 0 is reserved for the value 0 (padding), got {cb[0]}")
    lo, hi = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1
    if cb.min() < lo or cb.max() > hi:
        raise ValueError(f"codebook values must fit {weight_width}-bit signed ({lo}..{hi})")
    return cb


def encode(indices, config, codebook=None) -> CscLayer:
    """Encode a dense codebook-index matrix for ``config.pes`` PEs (see module docstring)."""
    idx = np.asarray(indices)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 2-D integer matrix, got shape {idx.shape} "
                         f"dtype {idx.dtype}")
    rows, cols = idx.shape
    pes, ib, zb = config.pes, config.index_bits, config.zrun_bits
    if idx.size and (idx.min() < 0 or idx.max() >= (1 << ib)):
        raise ValueError(f"codebook index out of range: indices must be 0..{(1 << ib) - 1} "
                         f"for index_bits={ib}, found {int(idx.min())}..{int(idx.max())}")
    cb = None if codebook is None else check_codebook(codebook, ib, config.weight_width)
    r, c = np.nonzero(idx)                     # row-major order
    v = idx[r, c].astype(np.uint16)
    pe = r % pes
    local = r // pes
    rows_per_pe = -(-rows // pes) if rows else 0
    group = pe * cols + c                      # (pe, column) in CSC order
    key = group * max(rows_per_pe, 1) + local
    order = np.argsort(key, kind="stable")
    group, local, v = group[order], local[order], v[order]
    # Zero run before each non-zero within its (pe, column) group.
    prev = np.empty_like(local)
    prev[0:1] = -1
    prev[1:] = local[:-1]
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    prev[first] = -1
    run = local - prev - 1
    span = 1 << zb
    pads = run // span
    z = (run % span).astype(np.uint16)
    # Each non-zero becomes ``pads`` padding entries followed by the entry itself.
    sizes = pads + 1
    ends = np.cumsum(sizes)
    entries = np.full(int(ends[-1]) if len(ends) else 0, (span - 1) << ib, dtype=np.uint16)
    entries[ends - 1] = v | (z << ib)
    counts = np.bincount(group, weights=sizes, minlength=pes * cols).astype(np.int64)
    counts = counts.reshape(pes, cols)
    pointers = np.zeros((pes, cols + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=pointers[:, 1:])
    pe_offsets = np.zeros(pes + 1, dtype=np.int64)
    np.cumsum(pointers[:, -1], out=pe_offsets[1:])
    return CscLayer(rows, cols, pes, ib, zb, entries, pe_offsets, pointers, cb)


def decode(layer: CscLayer) -> np.ndarray:
    """Dense uint8 index matrix (rows × cols) of ``layer``; checks the image is consistent."""
    pes, cols = layer.pes, layer.cols
    offsets = np.asarray(layer.pe_offsets)
    if (np.shape(layer.pointers) != (pes, cols + 1) or offsets.shape != (pes + 1,)
            or offsets[0] != 0 or offsets[-1] != len(layer.entries)):
        raise ValueError("corrupt CSC image: pointer or PE-offset table does not match the "
                         "layer's shape and entries")
    counts = np.diff(layer.pointers, axis=1)            # (pes, cols)
    if ((counts < 0).any() or (layer.pointers[:, 0] != 0).any()
            or not np.array_equal(layer.pointers[:, -1], layer.entry_counts)):
        raise ValueError("corrupt CSC image: pointers do not match the entry counts")
    group = np.repeat(np.arange(pes * cols, dtype=np.int64), counts.ravel())
    mask = (1 << layer.index_bits) - 1
    v = layer.entries & mask
    step = (layer.entries >> layer.index_bits).astype(np.int64) + 1
    cum = np.cumsum(step)
    starts = np.zeros(pes * cols, dtype=np.int64)
    np.cumsum(counts.ravel()[:-1], out=starts[1:])
    base = np.zeros(len(cum), dtype=np.int64)
    nonempty = counts.ravel() > 0
    first_pos = starts[nonempty]
    base[first_pos] = np.concatenate([[0], cum[first_pos[1:] - 1]]) if len(first_pos) else []
    base = np.maximum.accumulate(base) if len(base) else base
    local = cum - base - 1
    pe, c = np.divmod(group, cols)
    row = local * pes + pe
    dense = np.zeros((layer.rows, cols), dtype=np.uint8)
    keep = v != 0
    if keep.any() and row[keep].max() >= layer.rows:
        raise ValueError("corrupt CSC image: an entry lies beyond the last row")
    dense[row[keep], c[keep]] = v[keep]
    return dense


def pack_words(entries, config) -> np.ndarray:
    """Pack one PE's entries into uint64 memory words (see module docstring)."""
    e = np.asarray(entries, dtype=np.uint64)
    epw, eb = config.entries_per_word, config.entry_bits
    n = -(-len(e) // epw)
    padded = np.zeros(n * epw, dtype=np.uint64)
    padded[:len(e)] = e
    lanes = padded.reshape(n, epw)
    words = np.zeros(n, dtype=np.uint64)
    for k in range(epw):                      # loop over lanes, not entries
        words |= lanes[:, k] << np.uint64(k * eb)
    return words


def unpack_words(words, count: int, config) -> np.ndarray:
    """The first ``count`` entries of one PE from its packed words (inverse of
    :func:`pack_words`)."""
    epw, eb = config.entries_per_word, config.entry_bits
    shifts = (np.arange(epw, dtype=np.uint64) * np.uint64(eb))
    lanes = (np.asarray(words, np.uint64)[:, None] >> shifts[None, :]) & np.uint64((1 << eb) - 1)
    return lanes.reshape(-1)[:count].astype(np.uint16)


def balanced_row_order(indices, pes: int) -> np.ndarray:
    """Rows to PEs by load instead of ``i mod pes`` (an option beyond EIE).

    Greedy longest-processing-time assignment: rows in decreasing order of non-zeros, each
    to the PE with the fewest non-zeros so far that still has a free slot (every PE gets
    ``ceil(rows / pes)`` slots). Returns ``order`` of length ``ceil(rows / pes) * pes``:
    engine row ``k`` (PE ``k mod pes``) computes original row ``order[k]``, or nothing
    when ``order[k] == -1``. Encode ``indices`` permuted this way (rows of ``-1`` all zero)
    and undo the permutation on the outputs (``y[order[k]] = y_engine[k]``).
    """
    import heapq
    idx = np.asarray(indices)
    rows = idx.shape[0]
    slots = -(-rows // pes)
    nnz = np.count_nonzero(idx, axis=1)
    heap = [(0, p) for p in range(pes)]
    filled = np.zeros(pes, dtype=np.int64)
    order = np.full(slots * pes, -1, dtype=np.int64)
    for row in np.argsort(-nnz, kind="stable").tolist():
        load, p = heapq.heappop(heap)
        order[filled[p] * pes + p] = row
        filled[p] += 1
        if filled[p] < slots:
            heapq.heappush(heap, (load + int(nnz[row]), p))
    return order
