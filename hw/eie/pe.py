"""One EIE processing element: its slice of the matrix, activations and accumulators."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..runtime_memory import runtime_memory
from .config import EieConfig, _bits
from .layouts import Mem, bcast_layout

__all__ = ["ProcessingElement"]


def _at_least(lane: int, value) -> Value:
    """``lane >= value``, folded where it always holds (keeps the Verilog lint-clean)."""
    return Const(1) if lane >= (1 << len(value)) - 1 else lane >= value


def _below(lane: int, value) -> Value:
    """``lane < value``, folded where it never holds."""
    return Const(0) if lane >= (1 << len(value)) - 1 else lane < value


def _above(lane: int, value) -> Value:
    """``lane > value``, folded where it never holds."""
    return Const(0) if lane == 0 else lane > value


class ProcessingElement(wiring.Component):
    """PE ``index`` of an EIE engine (rows ``i`` with ``i mod pes == index``).

    Pipeline, one entry per cycle with no bubble between columns:

    1. pointer read as the activation is broadcast: ``p[j]`` and ``p[j+1]`` from the even
       and odd banks in one cycle; a column without entries for this PE is dropped here,
       so it costs no MAC cycle and takes no queue slot. Columns with entries wait in the
       activation queue (``queue_depth`` entries; a broadcast reserves a slot until its
       pointers are read), then in a 2-deep column buffer (which takes a column in the
       cycle it passes one on, even when full); with neither holding older work, a column
       skips them;
    2. entry address generator: walks ``p[j] .. p[j+1]-1`` and reads the sparse-matrix word;
    3. entry decode: codebook index and zero run, row address accumulation, codebook lookup;
    4. multiply and shift (``>> weight_frac``, arithmetic);
    5. accumulate into the row's accumulator (memory read issued in 4), with a bypass of the
       previous cycle's write for back-to-back updates of one row.

    The PE also scans its own input activations (row ``r`` holds input ``r*pes + index``)
    and offers the non-zeros to the :class:`NonZeroTree`; after a layer the top level steps
    it through write-back: ``y = relu(sat(acc + bias))`` into the activation memory (the
    next layer's input) while the accumulator is cleared.
    """

    def __init__(self, config: EieConfig, index: int):
        if not 0 <= index < config.pes:
            raise ValueError(f"ProcessingElement index={index}: use 0 to {config.pes - 1}")
        self._cfg = config
        self._index = index
        c = config
        self._bcast = bcast_layout(c)
        act_addr = _bits(c.act_depth - 1)
        super().__init__({
            "load_en": In(1),
            "load_mem": In(3),
            "load_addr": In(c.load_addr_bits),
            "load_data": In(c.lane_bits),
            "q_push": In(1),
            "q_data": In(self._bcast),
            "q_ready": Out(1),
            "nz_valid": Out(1),
            "nz_ready": In(1),
            "nz_data": Out(self._bcast),
            "codebook": In(data.ArrayLayout(signed(c.weight_width), c.codebook_size)),
            "in_features": In(c.feature_bits),
            "out_features": In(c.feature_bits),
            "ptr_base": In(_bits(c.ptr_depth - 1)),
            "bias_base": In(_bits(c.bias_depth - 1)),
            "use_bias": In(1),
            "relu": In(1),
            "queue_limit": In(_bits(c.queue_depth)),
            "scan_start": In(1),
            "compute": In(1),
            "scan_done": Out(1),
            "idle": Out(1),
            "wb_en": In(1),
            "wb_addr": In(act_addr),
            "wb_row": In(c.feature_bits + 1),
            "clear_en": In(1),
            "clear_addr": In(act_addr),
            "emit_en": In(1),
            "emit_addr": In(act_addr),
            "emit_data": Out(signed(c.act_width)),
            "busy_count": Out(32),
            "bubble_count": Out(32),
            "padding_count": Out(32),
        })

    def elaborate(self, platform):
        c, n, idx = self._cfg, self._cfg.pes, self._index
        m = Module()
        pb = c.ptr_bits
        epw_bits = (c.entries_per_word - 1).bit_length()

        memory = runtime_memory     # loaded (or cleared) at run time: no netlist init
        m.submodules.spmat = spmat = memory(unsigned(c.word_bits), c.spmat_depth)
        m.submodules.ptr_even = ptr_even = memory(unsigned(pb), c.ptr_depth // 2)
        m.submodules.ptr_odd = ptr_odd = memory(unsigned(pb), c.ptr_depth // 2)
        m.submodules.act = act = memory(signed(c.act_width), c.act_depth)
        m.submodules.acc = acc = memory(signed(c.acc_width), c.act_depth)
        m.submodules.bias = bias = memory(signed(c.act_width), c.bias_depth)
        spmat_w, spmat_r = spmat.write_port(), spmat.read_port()
        even_w, even_r = ptr_even.write_port(), ptr_even.read_port()
        odd_w, odd_r = ptr_odd.write_port(), ptr_odd.read_port()
        act_w, act_r = act.write_port(), act.read_port()
        acc_w, acc_r = acc.write_port(), acc.read_port()
        bias_w, bias_r = bias.write_port(), bias.read_port()

        # Loading: this PE's lane of a load beat.
        load = self.load_en
        m.d.comb += [
            spmat_w.addr.eq(self.load_addr), spmat_w.data.eq(self.load_data),
            spmat_w.en.eq(load & (self.load_mem == Mem.SPMAT)),
            even_w.addr.eq(self.load_addr), even_w.data.eq(self.load_data[:pb]),
            odd_w.addr.eq(self.load_addr), odd_w.data.eq(self.load_data[pb:2 * pb]),
            even_w.en.eq(load & (self.load_mem == Mem.PTR)),
            odd_w.en.eq(load & (self.load_mem == Mem.PTR)),
            bias_w.addr.eq(self.load_addr), bias_w.data.eq(self.load_data),
            bias_w.en.eq(load & (self.load_mem == Mem.BIAS)),
        ]

        # Activation scan: offer this PE's non-zero inputs to the tree.
        scan_active = Signal()
        scan_addr = Signal(range(c.act_depth + 1))
        scan_j = Signal(c.feature_bits + _bits(n))
        s_valid = Signal()
        s_j = Signal(c.feature_bits)
        s_advance = Signal()
        m.d.comb += [
            self.nz_data.j.eq(s_j),
            self.nz_data.a.eq(act_r.data),
            self.nz_valid.eq(s_valid & (act_r.data != 0)),
            s_advance.eq(~s_valid | (act_r.data == 0) | self.nz_ready),
            self.scan_done.eq(~scan_active & ~s_valid),
            self.emit_data.eq(act_r.data),
        ]
        with m.If(self.emit_en):
            m.d.comb += [act_r.addr.eq(self.emit_addr), act_r.en.eq(1)]
        with m.Else():
            m.d.comb += [act_r.addr.eq(scan_addr), act_r.en.eq(s_advance & scan_active)]
        with m.If(self.scan_start):
            m.d.sync += [scan_active.eq(1), scan_addr.eq(0), scan_j.eq(idx), s_valid.eq(0)]
        with m.Elif(s_advance & ~self.emit_en):
            with m.If(scan_active & (scan_j < self.in_features)):
                m.d.sync += [s_valid.eq(1), s_j.eq(scan_j), scan_addr.eq(scan_addr + 1),
                             scan_j.eq(scan_j + n)]
            with m.Else():
                m.d.sync += [s_valid.eq(0), scan_active.eq(0)]

        # Stage 1: pointer read at the broadcast (both banks in one cycle), then the queue.
        # A column without entries for this PE is dropped before it takes a queue slot, so
        # the queue holds only work; a broadcast reserves a slot until its pointers are
        # read. With older work neither queued nor buffered, a column goes straight to the
        # column buffer, or to the word generator when that is waiting for one.
        col_layout = data.StructLayout({"start": unsigned(pb), "end": unsigned(pb),
                                        "a": signed(c.act_width)})
        m.submodules.queue = queue = SyncFIFO(width=col_layout.size, depth=c.queue_depth)
        # The column buffer holds 2 columns; a third storage slot lets it take a column in
        # the cycle it hands one to the word generator while full (it never holds 3).
        m.submodules.columns = columns = SyncFIFO(width=col_layout.size, depth=3)
        col_room = Signal()
        g = Signal(_bits(c.ptr_depth))
        m.d.comb += g.eq(self.ptr_base + self.q_data.j)
        l_valid = Signal()
        l_odd = Signal()
        l_a = Signal(signed(c.act_width))
        looked_up = Signal(col_layout)
        l_work = Signal()
        m.d.comb += [
            even_r.addr.eq((g + 1) >> 1), odd_r.addr.eq(g >> 1),
            even_r.en.eq(self.q_push), odd_r.en.eq(self.q_push),
            looked_up.start.eq(Mux(l_odd, odd_r.data, even_r.data)),
            looked_up.end.eq(Mux(l_odd, even_r.data, odd_r.data)),
            looked_up.a.eq(l_a),
            l_work.eq(l_valid & (looked_up.start != looked_up.end)),
        ]
        m.d.sync += [l_valid.eq(self.q_push), l_odd.eq(g[0]), l_a.eq(self.q_data.a)]
        limit = Mux(self.queue_limit == 0, c.queue_depth, self.queue_limit)
        m.d.comb += self.q_ready.eq(queue.level + l_valid < limit)

        # Where a looked-up column goes, oldest work first.
        want_col = Signal()         # the word generator takes a column this cycle
        bypass = Signal()
        m.d.comb += [
            col_room.eq((columns.level < 2) | (columns.r_rdy & want_col)),
            bypass.eq(l_work & want_col & ~queue.r_rdy & ~columns.r_rdy),
            queue.r_en.eq(col_room),
            queue.w_en.eq(l_work & ~bypass & (queue.r_rdy | ~col_room)),
            queue.w_data.eq(looked_up),
        ]
        with m.If(queue.r_rdy):
            m.d.comb += [columns.w_en.eq(col_room), columns.w_data.eq(queue.r_data)]
        with m.Else():
            m.d.comb += [columns.w_en.eq(l_work & ~bypass & col_room),
                         columns.w_data.eq(looked_up)]

        # Stage 2: word generator: the column's sparse-matrix words and their lane ranges.
        epw = c.entries_per_word
        col = Signal(col_layout)
        m.d.comb += col.eq(Mux(columns.r_rdy, columns.r_data, looked_up))
        word_bits = max(1, pb - epw_bits)
        g_active = Signal()
        g_addr = Signal(word_bits)
        g_last_addr = Signal(word_bits)
        g_lo = Signal(range(epw))
        g_hi = Signal(range(epw + 1))
        g_first = Signal()
        g_a = Signal(signed(c.act_width))
        g_at_last = Signal()
        take = Signal()
        g_mask = Signal(epw)
        lo = Mux(g_first, g_lo, 0)
        hi = Mux(g_at_last, g_hi, epw)
        m.d.comb += [
            g_at_last.eq(g_addr == g_last_addr),
            g_mask.eq(Cat(*[_at_least(lane, lo) & _below(lane, hi) for lane in range(epw)])),
            want_col.eq(take & (~g_active | g_at_last)),
            columns.r_en.eq(want_col),
            spmat_r.addr.eq(g_addr), spmat_r.en.eq(take),
        ]
        last_entry = col.end - 1
        with m.If(take):
            with m.If(g_active & ~g_at_last):
                m.d.sync += [g_addr.eq(g_addr + 1), g_first.eq(0)]
            with m.Elif(columns.r_rdy | bypass):
                m.d.sync += [g_active.eq(1), g_first.eq(1), g_a.eq(col.a),
                             g_addr.eq(col.start >> epw_bits),
                             g_last_addr.eq(last_entry >> epw_bits),
                             g_lo.eq(col.start[:epw_bits] if epw_bits else 0),
                             g_hi.eq((last_entry[:epw_bits] if epw_bits else 0) + 1)]
            with m.Else():
                m.d.sync += g_active.eq(0)

        # Stage 3: word decoder. Each cycle it issues the next real entry of the word;
        # padding entries before it (and after the word's last real entry) only advance the
        # row, so they cost no cycle; a word of padding alone costs one.
        row_bits = _bits(c.act_depth + (epw + 1) * (1 << c.zrun_bits))
        d_valid = Signal()
        d_fresh = Signal()
        d_mask = Signal(epw)
        d_a = Signal(signed(c.act_width))
        next_row = Signal(row_bits)
        word = spmat_r.data
        vs = [word.word_select(lane, c.entry_bits)[:c.index_bits] for lane in range(epw)]
        steps = [word.word_select(lane, c.entry_bits)[c.index_bits:] + 1
                 for lane in range(epw)]
        real = Signal(epw)
        pad = Signal(epw)
        m.d.comb += [real.eq(Cat(*[d_mask[lane] & (vs[lane] != 0) for lane in range(epw)])),
                     pad.eq(d_mask & ~real)]
        k = Signal(range(epw))
        for lane in reversed(range(epw)):
            with m.If(real[lane]):
                m.d.comb += k.eq(lane)
        found = real.any()
        before = sum(Mux(pad[lane] & _below(lane, k), steps[lane], 0) for lane in range(epw))
        after = sum(Mux(pad[lane] & _above(lane, k), steps[lane], 0) for lane in range(epw))
        every = sum(Mux(pad[lane], steps[lane], 0) for lane in range(epw))
        row = Signal(row_bits)
        entry = spmat_r.data.word_select(k, c.entry_bits)
        m.d.comb += row.eq(next_row + before + entry[c.index_bits:])
        upto_k = Signal(epw)
        m.d.comb += upto_k.eq(Cat(*[~_above(lane, k) for lane in range(epw)]))
        last_real = (real & ~upto_k) == 0
        emit = Signal()
        m.d.comb += [emit.eq(d_valid & found),
                     take.eq(~d_valid | ~found | last_real)]
        row_after = Signal(row_bits)
        m.d.comb += row_after.eq(Mux(found, row + 1 + Mux(last_real, after, 0),
                                     next_row + every))
        m.d.sync += d_fresh.eq(take)
        with m.If(take):
            m.d.sync += [d_valid.eq(g_active), d_mask.eq(g_mask), d_a.eq(g_a),
                         next_row.eq(Mux(g_active & g_first, 0, row_after))]
        with m.Elif(d_valid):
            m.d.sync += [d_mask.eq(d_mask & ~upto_k), next_row.eq(row_after)]
        e_valid = Signal()
        e_v = Signal(c.index_bits)
        e_row = Signal(row_bits)
        e_a = Signal(signed(c.act_width))
        m.d.sync += [e_valid.eq(emit), e_v.eq(entry[:c.index_bits]), e_row.eq(row),
                     e_a.eq(d_a)]

        # Stage 4: multiply and shift; accumulator read.
        x_valid, x_addr, x_keep = Signal(), Signal.like(self.wb_addr), Signal()
        mul_valid = Signal()
        mul_row = Signal(row_bits)
        mul_w = Signal(signed(c.weight_width))
        mul_a = Signal(signed(c.act_width))
        m.d.sync += [mul_valid.eq(e_valid), mul_row.eq(e_row),
                     mul_w.eq(self.codebook[e_v]), mul_a.eq(e_a)]
        product = Signal(signed(c.act_width + c.weight_width))
        m.d.comb += product.eq((mul_w * mul_a) >> c.weight_frac)
        with m.If(self.wb_en):
            m.d.comb += [acc_r.addr.eq(self.wb_addr), bias_r.addr.eq(self.bias_base +
                                                                      self.wb_addr)]
        with m.Else():
            m.d.comb += acc_r.addr.eq(mul_row)

        # Stage 5: accumulate with a bypass of the previous cycle's write.
        a_valid = Signal()
        a_row = Signal(row_bits)
        a_prod = Signal.like(product)
        m.d.sync += [a_valid.eq(mul_valid), a_row.eq(mul_row), a_prod.eq(product)]
        last_valid = Signal()
        last_row = Signal(row_bits)
        last_sum = Signal(signed(c.acc_width))
        old = Signal(signed(c.acc_width))
        new = Signal(signed(c.acc_width))
        m.d.comb += [
            old.eq(Mux(last_valid & (last_row == a_row), last_sum, acc_r.data)),
            new.eq(old + a_prod),
        ]
        m.d.sync += [last_valid.eq(a_valid), last_row.eq(a_row), last_sum.eq(new)]

        # Write-back: y = relu(sat(acc + bias)) into the activation memory; clear acc.
        m.d.sync += [x_valid.eq(self.wb_en), x_addr.eq(self.wb_addr),
                     x_keep.eq(self.wb_row + idx < self.out_features)]
        total = Signal(signed(c.acc_width + 1))
        m.d.comb += total.eq(acc_r.data + Mux(self.use_bias, bias_r.data, 0))
        hi, lo = (1 << (c.act_width - 1)) - 1, -(1 << (c.act_width - 1))
        y = Signal(signed(c.act_width))
        with m.If(~x_keep | (self.relu & (total < 0))):
            m.d.comb += y.eq(0)
        with m.Elif(total > hi):
            m.d.comb += y.eq(hi)
        with m.Elif(total < lo):
            m.d.comb += y.eq(lo)
        with m.Else():
            m.d.comb += y.eq(total)
        with m.If(x_valid):
            m.d.comb += [act_w.addr.eq(x_addr), act_w.data.eq(y), act_w.en.eq(1)]
        with m.Else():
            m.d.comb += [act_w.addr.eq(self.load_addr), act_w.data.eq(self.load_data),
                         act_w.en.eq(load & (self.load_mem == Mem.ACT))]
        with m.If(self.clear_en):
            m.d.comb += [acc_w.addr.eq(self.clear_addr), acc_w.data.eq(0), acc_w.en.eq(1)]
        with m.Elif(x_valid):
            m.d.comb += [acc_w.addr.eq(x_addr), acc_w.data.eq(0), acc_w.en.eq(1)]
        with m.Else():
            m.d.comb += [acc_w.addr.eq(a_row), acc_w.data.eq(new), acc_w.en.eq(a_valid)]

        m.d.comb += self.idle.eq(~l_valid & ~queue.r_rdy & ~columns.r_rdy & ~g_active &
                                 ~d_valid & ~e_valid & ~mul_valid & ~a_valid)
        with m.If(self.compute):
            with m.If(d_valid):
                m.d.sync += self.busy_count.eq(self.busy_count + 1)
            with m.Else():
                m.d.sync += self.bubble_count.eq(self.bubble_count + 1)
        with m.If(d_valid & d_fresh):
            m.d.sync += self.padding_count.eq(self.padding_count +
                                              sum(pad[lane] for lane in range(epw)))
        return m
