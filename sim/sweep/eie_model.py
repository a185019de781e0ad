"""Cycle model of one EIE layer with finite activation queues.

:func:`hw.eie.driver.work_cycles` bounds a layer's time by its busiest PE's MAC cycles; it
does not see the queues. Here the broadcast of non-zero activations is replayed against
every PE's queue as :class:`hw.eie.activation_queue.ActivationQueue` describes it:

* one non-zero is broadcast per cycle at most, and only while every PE has a free slot
  (a broadcast reserves a slot in all PEs before its column's range is known);
* a PE keeps a column that has entries for it in its queue (``queue_depth`` slots) or
  column buffer (2 more) until it starts working on it; a column without entries for it
  is dropped at the pointer lookup and takes no slot;
* a PE starts a column ``ACTIVATION_LATENCY`` cycles after its broadcast at the earliest,
  once its previous column is done, and spends one cycle per real entry of each
  sparse-matrix word (one for a word of padding only), as :func:`work_cycles` counts.

The busiest PE's finish time is the layer's time; queue depth enters only through the
broadcast stalls, which is the effect EIE's Fig. 8 shows.
"""

import numpy as np

from hw.eie.config import EieConfig
from hw.eie.csc import CscLayer

__all__ = ["column_work", "queue_cycles", "useful_macs", "ACTIVATION_LATENCY", "BUFFER_SLOTS"]

#: Broadcast to the column on the queue's output (``ActivationQueue.latency``).
ACTIVATION_LATENCY = 3
#: The column buffer behind each queue.
BUFFER_SLOTS = 2


def column_work(csc: CscLayer, config: EieConfig, activations) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Per PE and non-zero activation: the MAC-stage cycles of that column of ``csc``
    (encoded for ``config``), counted as :func:`hw.eie.driver.work_cycles` counts them.

    Returns ``(columns, work)``: the non-zero columns in broadcast order and an int64 array
    of shape ``(pes, len(columns))`` (0 where the PE has no entry in the column).
    """
    epw, mask = config.entries_per_word, (1 << config.index_bits) - 1
    cols = np.nonzero(np.asarray(activations))[0]
    work = np.zeros((csc.pes, len(cols)), dtype=np.int64)
    for p in range(csc.pes):
        cum = np.concatenate([[0], np.cumsum((csc.pe_entries(p) & mask) != 0)])
        s, e = csc.pointers[p, cols], csc.pointers[p, cols + 1]
        where = np.nonzero(e > s)[0]
        s, e = s[where], e[where]
        if not len(s):
            continue
        ws, we = s // epw, (e - 1) // epw
        nw = we - ws + 1
        piece = np.repeat(np.arange(len(s)), nw)
        offset = np.arange(int(nw.sum())) - np.repeat(np.cumsum(nw) - nw, nw)
        word = ws[piece] + offset
        lo = np.maximum(s[piece], word * epw)
        hi = np.minimum(e[piece], word * epw + epw)
        work[p, where] = np.bincount(piece, np.maximum(cum[hi] - cum[lo], 1),
                                     minlength=len(s)).astype(np.int64)
    return cols, work


def queue_cycles(work: np.ndarray, queue_depth: int) -> int:
    """Cycles from the first broadcast to the busiest PE's last MAC cycle, for the per-PE,
    per-column ``work`` of :func:`column_work` and queues of ``queue_depth`` slots."""
    if queue_depth < 1:
        raise ValueError(f"queue_depth={queue_depth}: use at least 1")
    pes, columns = work.shape
    slots = queue_depth + BUFFER_SLOTS
    starts = np.zeros((pes, columns + 1), dtype=np.int64)   # start of each PE's k-th column
    held = np.zeros(pes, dtype=np.int64)                    # columns each PE has taken
    finish = np.zeros(pes, dtype=np.int64)
    rows = np.arange(pes)
    broadcast = -1
    for j in range(columns):
        broadcast += 1
        full = held >= slots
        if full.any():
            # The slot frees when that PE starts the column `slots` behind its newest.
            freed = starts[rows[full], held[full] - slots]
            broadcast = max(broadcast, int(freed.max()) + 1)
        w = work[:, j]
        has = w > 0
        start = np.maximum(broadcast + ACTIVATION_LATENCY, finish[has])
        starts[rows[has], held[has]] = start
        finish[has] = start + w[has]
        held[has] += 1
    return int(finish.max()) if columns else 0


def useful_macs(csc: CscLayer, config: EieConfig, activations) -> int:
    """Real (non-padding) weights in the columns of the non-zero activations: the MACs the
    layer needs."""
    mask = (1 << config.index_bits) - 1
    cols = np.nonzero(np.asarray(activations))[0]
    total = 0
    for p in range(csc.pes):
        cum = np.concatenate([[0], np.cumsum((csc.pe_entries(p) & mask) != 0)])
        total += int((cum[csc.pointers[p, cols + 1]] - cum[csc.pointers[p, cols]]).sum())
    return total
