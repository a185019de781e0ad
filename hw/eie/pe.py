"""One EIE processing element: its slice of the matrix, activations and accumulators."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..multiplier import Multiplier
from ..runtime_memory import runtime_memory
from .config import EieConfig
from .entry_decoder import EntryDecoder, row_bits
from .layouts import Mem, bcast_layout

__all__ = ["ProcessingElement"]


def _at_least(lane: int, value) -> Value:
    """``lane >= value``, folded where it always holds (keeps the Verilog lint-clean)."""
    return Const(1) if lane >= (1 << len(value)) - 1 else lane >= value


def _below(lane: int, value) -> Value:
    """``lane < value``, folded where it never holds."""
    return Const(0) if lane >= (1 << len(value)) - 1 else lane < value


class ProcessingElement(wiring.Component):
    """PE ``index`` of an EIE engine (rows ``i`` with ``i mod pes == index``).

    Pipeline, one entry per cycle with no bubble between columns, every memory read
    registered (the stages are cut for FPGA timing):

    1. pointer read as the activation is broadcast: ``p[j]`` and ``p[j+1]`` from the even
       and odd banks in one cycle; a column without entries for this PE is dropped here,
       so it costs no MAC cycle and takes no queue slot. Columns with entries wait in the
       activation queue (``queue_depth`` entries; a broadcast reserves a slot until its
       pointers are read and its word range worked out, a registered stage), then in a
       2-deep column buffer (which takes a column in the cycle it passes one on, even
       when full); with neither holding older work, a column skips them;
    2. entry address generator: walks ``p[j] .. p[j+1]-1`` and reads the sparse-matrix
       word, while the decoder has a slot for it;
    3. :class:`EntryDecoder`: zero runs, row accumulation, one real entry per cycle;
    4. codebook lookup (registered), multiply and shift (``>> weight_frac``, arithmetic)
       in a :class:`~hw.multiplier.Multiplier`; the accumulator read;
    5. accumulate into the row's accumulator (the write registered), with the sums of
       the three entries ahead forwarded for back-to-back updates of one row.

    The PE also scans its own input activations (row ``r`` holds input ``r*pes + index``)
    and offers the non-zeros to the :class:`NonZeroTree` from a :attr:`SCAN_SLOTS`-entry
    buffer; after a layer the top level steps it through write-back:
    ``y = relu(sat(acc + bias))`` into the activation memory (the next layer's input,
    :attr:`writeback_latency` cycles after ``wb_en``) while the accumulator is cleared.
    """

    #: Activation reads in flight plus non-zeros waiting for the tree.
    SCAN_SLOTS = 4

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
            "emit_data": Out(signed(c.act_width)),
            "busy_count": Out(32),
            "bubble_count": Out(32),
            "padding_count": Out(32),
        })

    @property
    def writeback_latency(self) -> int:
        """Cycles from ``wb_en`` to the activation write of that row."""
        return 5

    def elaborate(self, platform):
        c, n, idx = self._cfg, self._cfg.pes, self._index
        m = Module()
        pb = c.ptr_bits
        epw = c.entries_per_word
        epw_bits = (epw - 1).bit_length()
        word_bits = max(1, pb - epw_bits)

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

        # Loading: this PE's lane of a load beat, registered here (the beat drives every
        # PE's memories) and written a cycle later.
        # (Registers every PE holds alike are named ``*_copy_*``: the board flow keeps
        # them apart, where Yosys would merge them into one driving every PE.)
        ld_addr = Signal.like(self.load_addr, name="ld_addr")
        ld_data = Signal.like(self.load_data, name="ld_data")
        ld_en = Signal(name="ld_copy_en")
        ld_mem = Signal.like(self.load_mem, name="ld_copy_mem")
        ld_addr2 = Signal.like(self.load_addr, name="ld_copy_addr")
        ld_data2 = Signal.like(self.load_data)
        ld = {mem: Signal(name=f"ld_{mem.name.lower()}")
              for mem in (Mem.SPMAT, Mem.PTR, Mem.ACT, Mem.BIAS)}
        # The beat as it arrives, then decoded into write enables (written 2 cycles on).
        m.d.sync += [ld_en.eq(self.load_en), ld_mem.eq(self.load_mem),
                     ld_addr2.eq(self.load_addr), ld_data2.eq(self.load_data),
                     ld_addr.eq(ld_addr2), ld_data.eq(ld_data2)]
        m.d.sync += [sig.eq(ld_en & (ld_mem == mem)) for mem, sig in ld.items()]
        m.d.comb += [
            spmat_w.addr.eq(ld_addr), spmat_w.data.eq(ld_data), spmat_w.en.eq(ld[Mem.SPMAT]),
            even_w.addr.eq(ld_addr), even_w.data.eq(ld_data[:pb]),
            odd_w.addr.eq(ld_addr), odd_w.data.eq(ld_data[pb:2 * pb]),
            even_w.en.eq(ld[Mem.PTR]), odd_w.en.eq(ld[Mem.PTR]),
            bias_w.addr.eq(ld_addr), bias_w.data.eq(ld_data), bias_w.en.eq(ld[Mem.BIAS]),
        ]

        # The scan starts a cycle after scan_start (a copy of it in every PE), and the
        # layer's parameters are copied next to this PE then (the sequencer's registers
        # would otherwise drive every PE across the chip).
        start = Signal(name="start_copy_q")
        m.d.sync += start.eq(self.scan_start)
        layer = {name: Signal.like(getattr(self, name), name=f"layer_copy_{name}")
                 for name in ("in_features", "out_features", "ptr_base", "bias_base",
                              "use_bias", "relu")}
        codebook = Signal.like(self.codebook, name="layer_copy_codebook")
        # The queue's effective limit (0 = the depth) and one less, for the ready.
        limit = Signal(range(c.queue_depth + 1), name="layer_copy_limit")
        limit_less = Signal(range(c.queue_depth + 1), name="layer_copy_limit_less")
        effective = Mux(self.queue_limit == 0, c.queue_depth, self.queue_limit)
        with m.If(start):
            m.d.sync += [sig.eq(getattr(self, name)) for name, sig in layer.items()]
            m.d.sync += [codebook.eq(self.codebook), limit.eq(effective),
                         limit_less.eq(effective - 1)]

        # Activation scan: this PE's non-zero inputs into a small buffer the tree reads.
        # Every read has a slot in it, so the tree's ready never reaches the memory.
        scan_active = Signal()
        scan_addr = Signal(range(c.act_depth + 1))
        scan_j = Signal(c.feature_bits + _bits(n))
        m.submodules.nonzeros = nonzeros = SyncFIFO(width=self._bcast.size,
                                                    depth=self.SCAN_SLOTS)
        s_slots = Signal(range(self.SCAN_SLOTS + 1))
        s_can = Signal(init=1)
        s_issue = Signal()
        s1_valid, s1_j = Signal(), Signal(c.feature_bits)
        s2_valid, s2_a = Signal(), Signal(signed(c.act_width))
        s2_p = Signal(_bits(c.ptr_depth))
        s2_keep = Signal()
        s_more = Signal()
        m.d.comb += [

            # Emitting only follows a finished scan: the two never meet.
            s_issue.eq(scan_active & s_more & s_can),
            s2_keep.eq(s2_valid & (s2_a != 0)),
            nonzeros.w_en.eq(s2_keep),
            nonzeros.w_data.eq(Cat(s2_p, s2_a)),
            self.nz_valid.eq(nonzeros.r_rdy),
            self.nz_data.eq(nonzeros.r_data),
            nonzeros.r_en.eq(self.nz_ready),
            self.scan_done.eq(~scan_active & ~s1_valid & ~s2_valid & ~nonzeros.r_rdy),
            self.emit_data.eq(act_r.data),
        ]
        s_next = Signal(range(self.SCAN_SLOTS + 2))
        m.d.comb += s_next.eq(s_slots + s_issue - (s2_valid & ~s2_keep) -
                              (nonzeros.r_rdy & self.nz_ready))
        m.d.sync += [s_slots.eq(s_next), s_can.eq(s_next < self.SCAN_SLOTS),
                     s1_valid.eq(s_issue), s1_j.eq(scan_j),
                     s2_valid.eq(s1_valid), s2_p.eq(layer["ptr_base"] + s1_j),
                     s2_a.eq(act_r.data)]
        # Emitting reads rows 0, 1, ... of the layer, one per emit_en (the address is
        # counted here: the sequencer's counter would drive every PE's memory).
        emit_addr = Signal(_bits(c.act_depth - 1))
        with m.If(start):
            m.d.sync += emit_addr.eq(0)
        with m.Elif(self.emit_en):
            m.d.sync += emit_addr.eq(emit_addr + 1)
        m.d.comb += [act_r.addr.eq(Mux(scan_active, scan_addr, emit_addr)),
                     act_r.en.eq(s_issue | self.emit_en)]
        # More inputs to scan: registered, both outcomes compared ahead.
        more_now, more_next = Signal(), Signal()
        m.d.comb += [more_now.eq(scan_j < layer["in_features"]),
                     more_next.eq(scan_j + n < layer["in_features"])]
        m.d.sync += s_more.eq(Mux(s_issue, more_next, more_now))
        with m.If(start):
            m.d.sync += [scan_active.eq(1), scan_addr.eq(0), scan_j.eq(idx),
                         s_more.eq(idx < self.in_features)]
        with m.Elif(scan_active & ~s_more):
            m.d.sync += scan_active.eq(0)
        with m.Elif(s_issue):
            m.d.sync += [scan_addr.eq(scan_addr + 1), scan_j.eq(scan_j + n)]

        # Stage 1: pointer read at the broadcast (both banks in one cycle, registered),
        # then the column's word range worked out (registered), then the queue. A column
        # without entries for this PE is dropped before it takes a queue slot, so the
        # queue holds only work; a broadcast reserves a slot until its column is worked
        # out. With older work neither queued nor buffered, a column goes straight to the
        # column buffer, or to the word generator when that is waiting.
        col_layout = data.StructLayout({
            "first_word": unsigned(word_bits), "last_word": unsigned(word_bits),
            "lo": unsigned(max(1, epw_bits)), "hi": unsigned(_bits(epw)),
            "single": unsigned(1), "a": signed(c.act_width)})
        m.submodules.queue = queue = SyncFIFO(width=col_layout.size, depth=c.queue_depth)
        # The column buffer holds 2 columns; a third storage slot lets it take a column in
        # the cycle it hands one to the word generator while full (it never holds 3).
        m.submodules.columns = columns = SyncFIFO(width=col_layout.size, depth=3)
        col_room = Signal()
        g = self.q_data.p
        # (The broadcast's registers are alike in every PE: ``*_copy_*``, kept apart.)
        l_valid, l_odd = Signal(name="l_copy_valid"), Signal(name="l_copy_odd")
        l_a = Signal(signed(c.act_width), name="l_copy_a")
        l2_valid, l2_odd = Signal(name="l2_copy_valid"), Signal(name="l2_copy_odd")
        l2_a = Signal(signed(c.act_width), name="l2_copy_a")
        l2_even, l2_oddp = Signal(pb), Signal(pb)
        l_work = Signal()               # l3 holds a column with entries for this PE
        looked_up = Signal(col_layout)  # its word range
        m.d.comb += [
            even_r.addr.eq((g + 1) >> 1), odd_r.addr.eq(g >> 1),
            even_r.en.eq(self.q_push), odd_r.en.eq(self.q_push),
        ]
        m.d.sync += [l_valid.eq(self.q_push), l_odd.eq(g[0]), l_a.eq(self.q_data.a),
                     l2_valid.eq(l_valid), l2_odd.eq(l_odd), l2_a.eq(l_a),
                     l2_even.eq(even_r.data), l2_oddp.eq(odd_r.data)]
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
        # Registered ready: the queue's fill level plus the lookups in flight, as they
        # will be next cycle.
        # The broadcast arrives late (an AND over every PE): both outcomes are compared
        # ahead and it only selects.
        q_next = Signal(range(c.queue_depth + 4))
        m.d.comb += q_next.eq(queue.level + queue.w_en - (queue.r_en & queue.r_rdy) +
                              l_valid + l2_valid)
        q_ready = Signal(init=1)
        fits_one, fits_two = Signal(), Signal()
        m.d.comb += [fits_one.eq(q_next < limit), fits_two.eq(q_next < limit_less)]
        m.d.sync += q_ready.eq(Mux(self.q_push, fits_two, fits_one))
        m.d.comb += self.q_ready.eq(q_ready)

        # Stage 2: word generator: the column's sparse-matrix words and their lane ranges,
        # one read per cycle while the decoder has a slot for it. Whether the word it
        # reads is the column's last is a register, worked out a cycle ahead.
        m.submodules.decoder = dec = EntryDecoder(c)
        col = Signal(col_layout)
        m.d.comb += col.eq(Mux(columns.r_rdy, columns.r_data, looked_up))
        g_active = Signal()
        g_addr = Signal(word_bits)
        g_last_addr = Signal(word_bits)
        g_lo = Signal(range(epw))
        g_hi = Signal(range(epw + 1))
        g_first = Signal()
        g_a = Signal(signed(c.act_width))
        g_at_last = Signal()
        g_mask = Signal(epw)
        issue = Signal()
        lo = Mux(g_first, g_lo, 0)
        hi = Mux(g_at_last, g_hi, epw)
        m.d.comb += [
            g_mask.eq(Cat(*[_at_least(lane, lo) & _below(lane, hi) for lane in range(epw)])),
            want_col.eq(dec.can_issue & (~g_active | g_at_last)),
            columns.r_en.eq(want_col),
            issue.eq(g_active & dec.can_issue),
            dec.issue.eq(issue),
            spmat_r.addr.eq(g_addr), spmat_r.en.eq(issue),
        ]
        with m.If(dec.can_issue):
            with m.If(g_active & ~g_at_last):
                m.d.sync += [g_addr.eq(g_addr + 1), g_first.eq(0),
                             g_at_last.eq(g_addr + 1 == g_last_addr)]
            with m.Elif(columns.r_rdy | bypass):
                m.d.sync += [g_active.eq(1), g_first.eq(1), g_a.eq(col.a),
                             g_addr.eq(col.first_word), g_last_addr.eq(col.last_word),
                             g_lo.eq(col.lo), g_hi.eq(col.hi), g_at_last.eq(col.single)]
            with m.Else():
                m.d.sync += g_active.eq(0)
        # The word, registered after the memory, goes to the decoder (stage 3).
        r_valid, r_mask, r_first, r_a = Signal(), Signal(epw), Signal(), Signal.like(g_a)
        m.d.sync += [r_valid.eq(issue), r_mask.eq(g_mask), r_first.eq(g_first), r_a.eq(g_a),
                     dec.w_valid.eq(r_valid), dec.w_word.eq(spmat_r.data),
                     dec.w_mask.eq(r_mask), dec.w_first.eq(r_first), dec.w_a.eq(r_a)]

        # Stage 4: codebook lookup (registered), then multiply (a DSP with its
        # registers); the accumulator read one cycle after the entry, registered.
        rb = row_bits(c)
        m.submodules.multiplier = mul = Multiplier(signed(c.weight_width),
                                                   signed(c.act_width))
        k_valid, k_row = Signal(), Signal(rb)
        k_weight, k_a = Signal(signed(c.weight_width)), Signal(signed(c.act_width))
        m.d.sync += [k_valid.eq(dec.o_valid), k_row.eq(dec.o_row),
                     k_weight.eq(codebook[dec.o_index]), k_a.eq(dec.o_a)]
        m.d.comb += [mul.a.eq(k_weight), mul.b.eq(k_a)]
        stages = Multiplier.LATENCY
        valid = [Signal(name=f"mac_valid_{k}") for k in range(stages + 1)]
        rows = [Signal(rb, name=f"mac_row_{k}") for k in range(stages + 1)]
        m.d.comb += [valid[0].eq(k_valid), rows[0].eq(k_row)]
        for k in range(stages):
            m.d.sync += [valid[k + 1].eq(valid[k]), rows[k + 1].eq(rows[k])]
        # Write-back's controls, registered here: the sequencer drives every PE.
        x_valid = [Signal(name=f"wb_copy_valid_{k}") for k in range(4)]
        x_addr = [Signal.like(self.wb_addr, name=f"wb_copy_addr_{k}") for k in range(4)]
        x_keep = [Signal(name=f"wb_copy_keep_{k}") for k in range(4)]
        # The accumulator (LUT RAM: the read is combinational) reads at an address
        # registered a cycle ahead: the write-back's row, else the entry's.
        acc_raddr = Signal.like(acc_r.addr)
        m.d.sync += acc_raddr.eq(Mux(self.wb_en, self.wb_addr, rows[stages - 3]))
        m.d.comb += acc_r.addr.eq(acc_raddr)
        with m.If(x_valid[0]):
            m.d.comb += bias_r.addr.eq(layer["bias_base"] + x_addr[0])
        acc_q = Signal(signed(c.acc_width))
        bias_q = Signal(signed(c.act_width))
        m.d.sync += [acc_q.eq(acc_r.data), bias_q.eq(bias_r.data)]

        # Stage 5: accumulate. The sum is written a cycle later (registered), so the
        # read missed the writes of the three entries ahead; their sums are forwarded
        # (row matches found a cycle early, registered).
        a_valid, a_row = valid[stages], rows[stages]
        b_row = rows[stages - 1]
        last_valid, last2_valid = Signal(), Signal()
        last_row, last2_row = Signal(rb), Signal(rb)
        last_sum = Signal(signed(c.acc_width))
        last2_sum = Signal(signed(c.acc_width))
        last3_sum = Signal(signed(c.acc_width))
        hit1, hit2, hit3 = Signal(), Signal(), Signal()
        m.d.sync += [hit1.eq(a_valid & (a_row == b_row)),
                     hit2.eq(last_valid & (last_row == b_row)),
                     hit3.eq(last2_valid & (last2_row == b_row))]
        product = Signal(signed(c.act_width + c.weight_width - c.weight_frac))
        m.d.comb += product.eq(mul.p >> c.weight_frac)
        old = Signal(signed(c.acc_width))
        new = Signal(signed(c.acc_width))
        m.d.comb += [old.eq(Mux(hit1, last_sum, Mux(hit2, last2_sum,
                                                    Mux(hit3, last3_sum, acc_q)))),
                     new.eq(old + product)]
        m.d.sync += [last_valid.eq(a_valid), last_row.eq(a_row), last_sum.eq(new),
                     last2_valid.eq(last_valid), last2_row.eq(last_row),
                     last2_sum.eq(last_sum), last3_sum.eq(last2_sum)]

        # Write-back: y = relu(sat(acc + bias)) into the activation memory; clear acc.
        wb_row = Signal.like(self.wb_row, name="wb_copy_row")
        m.d.sync += [x_valid[0].eq(self.wb_en), x_addr[0].eq(self.wb_addr),
                     wb_row.eq(self.wb_row)]
        m.d.comb += x_keep[0].eq(wb_row + idx < layer["out_features"])
        for k in range(3):
            m.d.sync += [x_valid[k + 1].eq(x_valid[k]), x_addr[k + 1].eq(x_addr[k]),
                         x_keep[k + 1].eq(x_keep[k])]
        total = Signal(signed(c.acc_width + 1))
        m.d.sync += total.eq(acc_q + Mux(layer["use_bias"], bias_q, 0))
        hi, lo = (1 << (c.act_width - 1)) - 1, -(1 << (c.act_width - 1))
        y = Signal(signed(c.act_width))
        with m.If(~x_keep[3] | (layer["relu"] & (total < 0))):
            m.d.comb += y.eq(0)
        with m.Elif(total > hi):
            m.d.comb += y.eq(hi)
        with m.Elif(total < lo):
            m.d.comb += y.eq(lo)
        with m.Else():
            m.d.comb += y.eq(total)
        # Both memories' writes are registered: the sum, the clear and the write-back
        # are each a cycle old when they land (loads are registered on arrival).
        y_valid, y_addr, y_q = Signal(), Signal.like(self.wb_addr), Signal.like(y)
        m.d.sync += [y_valid.eq(x_valid[3]), y_addr.eq(x_addr[3]), y_q.eq(y)]
        with m.If(y_valid):
            m.d.comb += [act_w.addr.eq(y_addr), act_w.data.eq(y_q), act_w.en.eq(1)]
        with m.Else():
            m.d.comb += [act_w.addr.eq(ld_addr), act_w.data.eq(ld_data),
                         act_w.en.eq(ld[Mem.ACT])]
        acc_wen, acc_waddr = Signal(), Signal.like(acc_w.addr)
        acc_wdata = Signal.like(acc_w.data)
        m.d.comb += [acc_w.addr.eq(acc_waddr), acc_w.data.eq(acc_wdata),
                     acc_w.en.eq(acc_wen)]
        with m.If(self.clear_en):
            m.d.sync += [acc_waddr.eq(self.clear_addr), acc_wdata.eq(0), acc_wen.eq(1)]
        with m.Elif(x_valid[1]):
            m.d.sync += [acc_waddr.eq(x_addr[1]), acc_wdata.eq(0), acc_wen.eq(1)]
        with m.Else():
            m.d.sync += [acc_waddr.eq(a_row), acc_wdata.eq(new), acc_wen.eq(a_valid)]

        m.d.comb += self.idle.eq(~l_valid & ~l2_valid & ~l_work & ~queue.r_rdy &
                                 ~columns.r_rdy &
                                 ~g_active & ~r_valid & ~dec.w_valid & dec.idle & ~k_valid &
                                 ~Cat(*valid).any() & ~acc_wen)
        with m.If(self.compute):
            with m.If(dec.busy):
                m.d.sync += self.busy_count.eq(self.busy_count + 1)
            with m.Else():
                m.d.sync += self.bubble_count.eq(self.bubble_count + 1)
        # The padding of the word the decoder takes, registered (counted a cycle late).
        padding = Signal.like(dec.padding)
        m.d.sync += [padding.eq(dec.padding),
                     self.padding_count.eq(self.padding_count + padding)]
        return m
