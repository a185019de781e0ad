"""Activation queue of an EIE PE: pointer lookup, queue and column buffer."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..synthesis import keep_copy
from .config import EieConfig
from .layouts import bcast_layout

__all__ = ["ActivationQueue", "column_layout"]


def column_layout(config: EieConfig) -> data.StructLayout:
    """A column with entries for the PE: its sparse-matrix words ``first_word ..
    last_word``, the lanes ``lo ..`` of the first and ``.. hi - 1`` of the last,
    ``single`` when both are one word, and the activation ``a``."""
    epw_bits = (config.entries_per_word - 1).bit_length()
    word_bits = max(1, config.ptr_bits - epw_bits)
    return data.StructLayout({
        "first_word": unsigned(word_bits), "last_word": unsigned(word_bits),
        "lo": unsigned(max(1, epw_bits)), "hi": unsigned(_bits(config.entries_per_word)),
        "single": unsigned(1), "a": signed(config.act_width)})


class ActivationQueue(wiring.Component):
    """Broadcast non-zeros in, the columns this PE has entries for out, oldest first.

    1. Pointer lookup at the broadcast: ``p[j]`` and ``p[j+1]`` from the even and odd
       banks in one cycle (registered), then the column's word range (registered). A
       column without entries for this PE is dropped here: it takes no queue slot.
    2. The queue (``queue_depth`` entries; a broadcast reserves a slot from its push until
       its range is worked out), then a 2-deep column buffer that takes a column in the
       cycle it passes one on, even when full. With neither holding older work, a column
       skips them (straight to ``o`` when it is ready, else to the buffer).

    ``ready`` is a registered credit: a push while it is high always has a slot, within
    ``queue_limit`` (taken at ``start``; 0 = ``queue_depth``). ``i`` has no ready of its
    own: the producer pushes only while ``ready``.

    Members
    -------
    i : In(stream.Signature(bcast_layout(config), always_ready=True))
        A broadcast non-zero: ``p`` its column's first pointer, ``a`` its value.
    ready : Out(1)
    start : In(1)
    queue_limit : In(range)
    even_addr, odd_addr, ptr_en : Out
        The pointer banks' reads (synchronous ports: data the cycle after).
    even_data, odd_data : In(ptr_bits)
    o : Out(stream.Signature(column_layout(config)))
    idle : Out(1)
        No column looked up, queued or buffered.
    """

    def __init__(self, config: EieConfig):
        self._cfg = c = config
        super().__init__({
            "i": In(stream.Signature(bcast_layout(c), always_ready=True)),
            "ready": Out(1, init=1),
            "start": In(1),
            "queue_limit": In(_bits(c.queue_depth)),
            "even_addr": Out(_bits(c.ptr_depth // 2 - 1)),
            "odd_addr": Out(_bits(c.ptr_depth // 2 - 1)),
            "ptr_en": Out(1),
            "even_data": In(c.ptr_bits),
            "odd_data": In(c.ptr_bits),
            "o": Out(stream.Signature(column_layout(c))),
            "idle": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a push on ``i`` to its column on ``o`` (queue and buffer empty)."""
        return 3

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        keep = keep_copy(platform)
        pb = c.ptr_bits
        epw_bits = (c.entries_per_word - 1).bit_length()
        col_layout = column_layout(c)

        # The queue's effective limit (0 = the depth) and one less, for the ready.
        limit = Signal(range(c.queue_depth + 1), name="layer_copy_limit", attrs=keep)
        limit_less = Signal(range(c.queue_depth + 1), name="layer_copy_limit_less",
                            attrs=keep)
        effective = Mux(self.queue_limit == 0, c.queue_depth, self.queue_limit)
        with m.If(self.start):
            m.d.sync += [limit.eq(effective), limit_less.eq(effective - 1)]

        # The pointer lookup. (The broadcast's registers are alike in every PE.)
        g = self.i.payload.p
        l_valid = Signal(name="l_copy_valid", attrs=keep)
        l_odd = Signal(name="l_copy_odd", attrs=keep)
        l_a = Signal(signed(c.act_width), name="l_copy_a", attrs=keep)
        l2_valid = Signal(name="l2_copy_valid", attrs=keep)
        l2_odd = Signal(name="l2_copy_odd", attrs=keep)
        l2_a = Signal(signed(c.act_width), name="l2_copy_a", attrs=keep)
        l2_even, l2_oddp = Signal(pb), Signal(pb)
        l_work = Signal()               # a column with entries for this PE, worked out
        looked_up = Signal(col_layout)  # its word range
        m.d.comb += [self.even_addr.eq((g + 1) >> 1), self.odd_addr.eq(g >> 1),
                     self.ptr_en.eq(self.i.valid)]
        m.d.sync += [l_valid.eq(self.i.valid), l_odd.eq(g[0]), l_a.eq(self.i.payload.a),
                     l2_valid.eq(l_valid), l2_odd.eq(l_odd), l2_a.eq(l_a),
                     l2_even.eq(self.even_data), l2_oddp.eq(self.odd_data)]
        first_entry = Mux(l2_odd, l2_oddp, l2_even)
        last_entry = Mux(l2_odd, l2_even, l2_oddp) - 1
        m.d.sync += [
            l_work.eq(l2_valid & (l2_even != l2_oddp)),
            looked_up.first_word.eq(first_entry >> epw_bits),
            looked_up.last_word.eq(last_entry >> epw_bits),
            looked_up.lo.eq(first_entry[:epw_bits] if epw_bits else 0),
            looked_up.hi.eq((last_entry[:epw_bits] if epw_bits else 0) + 1),
            looked_up.single.eq((first_entry >> epw_bits) == (last_entry >> epw_bits)),
            looked_up.a.eq(l2_a),
        ]

        # Where a looked-up column goes, oldest work first.
        m.submodules.queue = queue = SyncFIFO(width=col_layout.size, depth=c.queue_depth)
        # The column buffer holds 2 columns; a third storage slot lets it take a column in
        # the cycle it hands one on while full (it never holds 3).
        m.submodules.columns = columns = SyncFIFO(width=col_layout.size, depth=3)
        col_room = Signal()
        bypass = Signal()
        m.d.comb += [
            self.o.valid.eq(columns.r_rdy | (l_work & ~queue.r_rdy)),
            self.o.payload.eq(Mux(columns.r_rdy, columns.r_data, looked_up)),
            columns.r_en.eq(self.o.ready),
            col_room.eq((columns.level < 2) | (columns.r_rdy & self.o.ready)),
            bypass.eq(l_work & self.o.ready & ~queue.r_rdy & ~columns.r_rdy),
            queue.r_en.eq(col_room),
            queue.w_en.eq(l_work & ~bypass & (queue.r_rdy | ~col_room)),
            queue.w_data.eq(looked_up),
        ]
        with m.If(queue.r_rdy):
            m.d.comb += [columns.w_en.eq(col_room), columns.w_data.eq(queue.r_data)]
        with m.Else():
            m.d.comb += [columns.w_en.eq(l_work & ~bypass & col_room),
                         columns.w_data.eq(looked_up)]
        # Registered ready: the queue's fill level plus the lookups in flight, as they
        # will be next cycle. The push arrives late (an AND over every PE): both outcomes
        # are compared ahead and it only selects.
        q_next = Signal(range(c.queue_depth + 4))
        m.d.comb += q_next.eq(queue.level + queue.w_en - (queue.r_en & queue.r_rdy) +
                              l_valid + l2_valid)
        fits_one, fits_two = Signal(), Signal()
        m.d.comb += [fits_one.eq(q_next < limit), fits_two.eq(q_next < limit_less)]
        m.d.sync += self.ready.eq(Mux(self.i.valid, fits_two, fits_one))
        m.d.comb += self.idle.eq(~l_valid & ~l2_valid & ~l_work & ~queue.r_rdy &
                                 ~columns.r_rdy)
        return m
