"""Entry decoder of an EIE PE: sparse-matrix words in, one real entry per cycle out."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from .config import EieConfig

__all__ = ["EntryDecoder", "row_bits"]


def row_bits(config: EieConfig) -> int:
    """Width of a row address inside a column (a word of padding may overshoot)."""
    epw = config.entries_per_word
    return _bits(config.act_depth + (epw + 1) * (1 << config.zrun_bits))


def _tree_sum(terms):
    """Sum as a balanced tree of adders (Yosys keeps the shape it is given)."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _at_most_two(bits):
    """At most two of ``bits`` are set: a tree of bit counts saturated at 3."""
    counts = [(bits[i], 1) for i in range(len(bits))]      # (count, its largest value)
    while len(counts) > 1:
        pairs = []
        for i in range(0, len(counts), 2):
            if i + 1 == len(counts):
                pairs.append(counts[i])
                continue
            (a, a_max), (b, b_max) = counts[i], counts[i + 1]
            total, most = a + b, a_max + b_max
            # (saturated only where it can pass 3: a constant compare fails the lint)
            pairs.append((Mux(total > 3, 3, total), 3) if most > 3 else (total, most))
        counts = pairs
    count, most = counts[0]
    return count <= 2 if most > 2 else Const(1)


def _lowest(bits):
    """The lowest set bit of ``bits`` (one-hot, 0 when none is)."""
    return bits & (~bits + 1)


class EntryDecoder(wiring.Component):
    """Walks the entries of sparse-matrix words: row accumulation and zero-run skipping.

    The word generator issues reads while :attr:`can_issue` is high and says so on
    ``issue``; each read's word arrives on ``w_*`` some fixed cycles later (``w_mask``:
    the lanes of the word that belong to the column; ``w_first``: the column's first word,
    whose rows start at 0). Every issued word has a slot in a :attr:`DEPTH`-word buffer,
    so neither stalls the other and no ready signal runs back to the generator.

    Stages, all registered:

    1. per lane: real (masked, codebook index not 0), row step (zero run + 1, masked),
       pair sums of the steps, padding count;
    2. prefix sums of the steps (the row offset of every lane) into the word buffer,
       whose head the iterator sees one cycle later;
    3. iterator: each cycle the lowest remaining real entry of the head word, whose row is
       ``base + offset - 1``; a word without real entries costs one cycle, padding
       entries around real ones none; the next column's word follows with no bubble.
       Whether the entry it holds is the word's last is a register (set from a flag
       the word carries in the buffer, then from the remaining entries' count), so the
       buffer's pop does not wait on a scan of the entries;
    4. row addition.

    Members
    -------
    issue : In(1)
    can_issue : Out(1)
        Registered: a read issued this cycle has a slot.
    w_valid, w_word, w_mask, w_first, w_a : In
        The word of an issued read.
    o_valid, o_row, o_index, o_a : Out
        One real entry: its row in the PE, codebook index and the column's activation.
    busy : Out(1)
        A word is being decoded this cycle (a MAC cycle).
    padding : Out
        Padding entries of the word the iterator takes this cycle.
    idle : Out(1)
    """

    #: Word slots: reads in flight and buffered words (covers the round trip of
    #: ``can_issue`` at one word per cycle).
    DEPTH = 5

    def __init__(self, config: EieConfig):
        self._cfg = c = config
        epw = c.entries_per_word
        super().__init__({
            "issue": In(1),
            "can_issue": Out(1, init=1),
            "w_valid": In(1),
            "w_word": In(c.word_bits),
            "w_mask": In(epw),
            "w_first": In(1),
            "w_a": In(signed(c.act_width)),
            "o_valid": Out(1),
            "o_row": Out(row_bits(c)),
            "o_index": Out(c.index_bits),
            "o_a": Out(signed(c.act_width)),
            "busy": Out(1),
            "padding": Out(range(epw + 1)),
            "idle": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a word on ``w_*`` to its first entry on ``o_*``."""
        return 5

    def elaborate(self, platform):
        c = self._cfg
        m = Module()
        epw, ib = c.entries_per_word, c.index_bits
        off_bits = _bits(epw << c.zrun_bits)
        pair_bits = _bits(2 << c.zrun_bits)
        rb = row_bits(c)

        # Stage 1: per-lane facts and pair sums.
        lanes = [self.w_word.word_select(lane, c.entry_bits) for lane in range(epw)]
        p_valid = Signal()
        p_first = Signal()
        p_a = Signal(signed(c.act_width))
        p_real = Signal(epw)
        p_index = Signal(data.ArrayLayout(unsigned(ib), epw))
        p_step = Signal(data.ArrayLayout(unsigned(off_bits), epw))
        p_pair = Signal(data.ArrayLayout(unsigned(pair_bits), max(1, epw // 2)))
        p_pad = Signal(range(epw + 1))
        steps = [Mux(self.w_mask[lane], lanes[lane][ib:] + 1, 0) for lane in range(epw)]
        real = [self.w_mask[lane] & (lanes[lane][:ib] != 0) for lane in range(epw)]
        m.d.sync += [p_valid.eq(self.w_valid), p_first.eq(self.w_first), p_a.eq(self.w_a),
                     p_real.eq(Cat(*real)),
                     p_pad.eq(_tree_sum([self.w_mask[lane] & ~real[lane]
                                         for lane in range(epw)]))]
        for lane in range(epw):
            m.d.sync += [p_index[lane].eq(lanes[lane][:ib]), p_step[lane].eq(steps[lane])]
        for k in range(epw // 2):
            m.d.sync += p_pair[k].eq(steps[2 * k] + steps[2 * k + 1])

        # Stage 2: row offset of every lane into the word buffer.
        word = data.StructLayout({
            "real": unsigned(epw), "lowest": unsigned(epw), "single": unsigned(1),
            "first": unsigned(1),
            "a": signed(c.act_width),
            "pad": unsigned(_bits(epw)),
            "index": data.ArrayLayout(unsigned(ib), epw),
            "offset": data.ArrayLayout(unsigned(off_bits), epw)})
        m.submodules.words = words = SyncFIFO(width=word.size, depth=self.DEPTH)
        w_in = Signal(word)
        for lane in range(epw):
            terms = [p_pair[k] for k in range((lane + 1) // 2)]
            if lane % 2 == 0:
                terms.append(p_step[lane])
            m.d.comb += w_in.offset[lane].eq(_tree_sum(terms))
        m.d.comb += [w_in.real.eq(p_real), w_in.lowest.eq(_lowest(p_real)),
                     w_in.single.eq((p_real & (p_real - 1)) == 0),
                     w_in.first.eq(p_first), w_in.a.eq(p_a),
                     w_in.pad.eq(p_pad), w_in.index.eq(p_index),
                     words.w_en.eq(p_valid), words.w_data.eq(w_in)]

        # Slots: issued words not yet taken by the iterator.
        pop = Signal()
        slots = Signal(range(self.DEPTH + 1))
        slots_next = Signal(range(self.DEPTH + 2))
        m.d.comb += slots_next.eq(slots + self.issue - pop)
        m.d.sync += [slots.eq(slots_next), self.can_issue.eq(slots_next < self.DEPTH)]

        # Stage 3: the iterator.
        head = Signal(word)
        m.d.comb += head.eq(words.r_data)
        c_valid = Signal()
        c_real = Signal(epw)
        c_single = Signal()         # c_real holds at most one entry
        c_index = Signal(data.ArrayLayout(unsigned(ib), epw))
        c_offset = Signal(data.ArrayLayout(unsigned(off_bits), epw))
        c_a = Signal(signed(c.act_width))
        c_base = Signal(rb)
        lowest = Signal(epw)        # the lowest entry of c_real (one-hot), a register
        rest = Signal(epw)
        m.d.comb += rest.eq(c_real & ~lowest)
        done = ~c_valid | c_single
        m.d.comb += [pop.eq(done & words.r_rdy), words.r_en.eq(pop), self.busy.eq(c_valid),
                     self.padding.eq(Mux(pop, head.pad, 0))]
        with m.If(pop):
            m.d.sync += [c_valid.eq(1), c_real.eq(head.real), lowest.eq(head.lowest),
                         c_single.eq(head.single),
                         c_index.eq(head.index),
                         c_offset.eq(head.offset), c_a.eq(head.a),
                         c_base.eq(Mux(head.first, 0, c_base + c_offset[epw - 1]))]
        with m.Elif(done):
            m.d.sync += c_valid.eq(0)
        with m.Else():
            m.d.sync += [c_real.eq(rest), lowest.eq(_lowest(rest)),
                         c_single.eq(_at_most_two(c_real))]
        i_valid = Signal()
        i_offset = Signal(off_bits)
        i_base = Signal(rb)
        i_index = Signal(ib)
        i_a = Signal(signed(c.act_width))
        pick_offset = 0
        pick_index = 0
        for lane in range(epw):
            pick_offset |= Mux(lowest[lane], c_offset[lane], 0)
            pick_index |= Mux(lowest[lane], c_index[lane], 0)
        m.d.sync += [i_valid.eq(c_valid & (c_real != 0)), i_offset.eq(pick_offset),
                     i_index.eq(pick_index), i_base.eq(c_base), i_a.eq(c_a)]

        # Stage 4: the row.
        m.d.sync += [self.o_valid.eq(i_valid), self.o_row.eq(i_base + i_offset - 1),
                     self.o_index.eq(i_index), self.o_a.eq(i_a)]
        m.d.comb += self.idle.eq(~p_valid & ~words.r_rdy & ~c_valid & ~i_valid &
                                 ~self.o_valid)
        return m
