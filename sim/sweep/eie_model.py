"""Cycle model of one EIE layer with finite activation queues.

:func:`hw.eie.driver.work_cycles` bounds a layer's time by its busiest PE's MAC cycles; it
does not see the queues. Here the broadcast of non-zero activations is replayed against
every PE's queue as :class:`hw.eie.activation_queue.ActivationQueue` builds it:

* one non-zero is broadcast per cycle at most, and only while every PE's registered
  ``ready`` allows it: counting the broadcast of the cycle before (still in the pointer
  lookup) and the columns waiting in its queue, two of the ``queue_depth`` slots must be
  free (the queue's ``fits_two`` comparison for back-to-back pushes). This is a
  simplification of the queue's credit, chosen among a few as the one that matches the
  RTL runs of docs/sweep.md best;
* a column with entries for a PE leaves the lookup ``ACTIVATION_LATENCY`` cycles after its
  broadcast, into the queue, and moves on to the column buffer once the column
  ``BUFFER_SLOTS`` ahead of it has started (the buffer takes a column in the cycle it
  hands one on, so it never stalls the queue at 2); a column without entries for the PE
  is dropped at the lookup and takes no queue slot;
* a PE starts a column ``ACTIVATION_LATENCY`` cycles after its broadcast at the earliest,
  once its previous column is done, and spends one cycle per real entry of each
  sparse-matrix word (one for a word of padding only), as :func:`work_cycles` counts.

The busiest PE's finish, the write-back (each PE writes its ``ceil(O / pes)`` outputs, one
a cycle, all PEs together) and a fixed :data:`LAYER_OVERHEAD` make the layer's time
(:func:`layer_cycles`). Queue depth enters through the broadcast stalls, the effect EIE's
Fig. 8 shows; docs/sweep.md gives the model's error against RTL runs.
"""

import numpy as np

from hw.eie.config import EieConfig
from hw.eie.csc import CscLayer
from hw.eie.driver import span_work

__all__ = ["column_work", "queue_cycles", "layer_cycles", "useful_macs", "ACTIVATION_LATENCY",
           "BUFFER_SLOTS", "LAYER_OVERHEAD"]

#: Broadcast to the column on the queue's output (``ActivationQueue.latency``).
ACTIVATION_LATENCY = 3
#: Columns the column buffer behind each queue takes before a column must start.
BUFFER_SLOTS = 3
#: Cycles of a layer outside the broadcast and the write-back (command, scan start, MAC
#: pipeline drain, result handshake): RTL cycles less the rest of the model, 25 to 27 on
#: the 2- and 4-PE layers of docs/sweep.md.
LAYER_OVERHEAD = 26


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
        work[p] = span_work(csc.pointers[p, cols], csc.pointers[p, cols + 1], cum, epw)
    return cols, work


def queue_cycles(work: np.ndarray, queue_depth: int) -> int:
    """Cycles from the first broadcast to the busiest PE's last MAC cycle, for the per-PE,
    per-column ``work`` of :func:`column_work` and queues of ``queue_depth`` slots."""
    if queue_depth < 1:
        raise ValueError(f"queue_depth={queue_depth}: use at least 1")
    pes, columns = work.shape
    never = np.iinfo(np.int64).max // 4
    # Per PE, its k-th column with entries: when it starts and when it enters the buffer.
    starts = np.full((pes, columns + 1), never, dtype=np.int64)
    buffered = np.full((pes, columns + 1), never, dtype=np.int64)
    held = np.zeros(pes, dtype=np.int64)       # columns with entries broadcast so far
    moved = np.zeros(pes, dtype=np.int64)      # of those, in the buffer or started
    finish = np.zeros(pes, dtype=np.int64)
    rows = np.arange(pes)
    has = work > 0
    sent = np.zeros(columns, dtype=np.int64)   # broadcast times
    lat = ACTIVATION_LATENCY
    room = max(queue_depth - 1, 1)   # two free slots; a 1-deep queue only needs its one
    t = 0
    for j in range(columns):
        t = sent[j - 1] + 1 if j else 0
        recent = range(max(0, j - lat), j)
        while True:
            while (step := buffered[rows, moved] <= t).any():
                moved += step
            # Columns in a PE's queue: broadcast, out of the lookup, not yet buffered.
            waiting = held - moved
            for i in recent:
                if sent[i] > t - lat:
                    waiting -= has[:, i]
            in_lookup = int(j > 0 and sent[j - 1] >= t - 1)
            if (waiting + in_lookup < room).all():
                break
            later = [int(buffered[rows, moved].min())] + [int(sent[i]) + d for i in recent
                                                           for d in (2, lat)]
            t = max(t + 1, min((x for x in later if x > t), default=t + 1))
        sent[j] = t
        mine = has[:, j]
        p, k = rows[mine], held[mine]
        start = np.maximum(t + lat, finish[mine])
        starts[p, k] = start
        ahead = np.where(k >= BUFFER_SLOTS, starts[p, np.maximum(k - BUFFER_SLOTS, 0)], 0)
        buffered[p, k] = np.maximum(t + lat, ahead)
        finish[mine] = start + work[mine, j]
        held[mine] += 1
    return int(finish.max()) if columns else 0


def layer_cycles(work: np.ndarray, queue_depth: int, out_features: int) -> int:
    """A layer's cycles: :func:`queue_cycles`, then the write-back of ``out_features``
    outputs over ``work.shape[0]`` PEs, and :data:`LAYER_OVERHEAD`."""
    return queue_cycles(work, queue_depth) + -(-out_features // work.shape[0]) + LAYER_OVERHEAD


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
