"""One EIE processing element: its slice of the matrix, activations and accumulators."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..bits import bits_for as _bits
from ..runtime_memory import runtime_memory
from ..synthesis import keep_copy, no_collision
from .accumulator import Accumulator
from .activation_queue import ActivationQueue
from .activation_scanner import ActivationScanner
from .config import EieConfig
from .entry_decoder import EntryDecoder
from .layouts import Mem, bcast_layout
from .word_generator import WordGenerator
from .write_back import WriteBack

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """PE ``index`` of an EIE engine (rows ``i`` with ``i mod pes == index``): its memories
    and the pipeline between them, one entry per cycle with no bubble between columns,
    every memory read registered (the stages are cut for FPGA timing):

    1. :class:`ActivationQueue`: the pointer read as the activation is broadcast, the
       column's word range; a column without entries for this PE is dropped before it takes
       a queue slot; the queue and the column buffer;
    2. :class:`WordGenerator`: walks the column's sparse-matrix words and reads each, while
       the decoder has a slot for it;
    3. :class:`EntryDecoder`: zero runs, row accumulation, one real entry per cycle;
    4. :class:`Accumulator`: codebook lookup, multiply and shift (``>> weight_frac``,
       arithmetic), accumulate into the row's accumulator with the sums ahead forwarded.

    The :class:`ActivationScanner` offers this PE's non-zero inputs (row ``r`` holds input
    ``r*pes + index``) to the :class:`NonZeroTree`; after a layer the top level steps the
    PE through write-back (:class:`WriteBack`): ``y = relu(sat(acc + bias))`` into the
    activation memory (the next layer's input, :attr:`writeback_latency` cycles after
    ``wb_en``) while the accumulator is cleared.

    Loads arrive on ``load_*`` (this PE's lane of a beat), registered on arrival, written
    2 cycles later.
    """

    #: Activation reads in flight plus non-zeros waiting for the tree.
    SCAN_SLOTS = ActivationScanner.SLOTS

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
        return WriteBack.LATENCY

    def elaborate(self, platform):
        c, idx = self._cfg, self._index
        m = Module()
        pb = c.ptr_bits
        keep = keep_copy(platform)

        # Loaded (or cleared) at run time: no netlist init. The loaded ones are read only
        # while no load runs: their writes never meet a read.
        memory = runtime_memory
        loaded = {"attrs": no_collision()}
        m.submodules.spmat = spmat = memory(unsigned(c.word_bits), c.spmat_depth, **loaded)
        m.submodules.ptr_even = ptr_even = memory(unsigned(pb), c.ptr_depth // 2, **loaded)
        m.submodules.ptr_odd = ptr_odd = memory(unsigned(pb), c.ptr_depth // 2, **loaded)
        m.submodules.act = act = memory(signed(c.act_width), c.act_depth)
        m.submodules.acc = acc = memory(signed(c.acc_width), c.act_depth)
        m.submodules.bias = bias = memory(signed(c.act_width), c.bias_depth, **loaded)
        spmat_w, spmat_r = spmat.write_port(), spmat.read_port()
        even_w, even_r = ptr_even.write_port(), ptr_even.read_port()
        odd_w, odd_r = ptr_odd.write_port(), ptr_odd.read_port()
        act_w, act_r = act.write_port(), act.read_port()
        acc_w, acc_r = acc.write_port(), acc.read_port()
        bias_w, bias_r = bias.write_port(), bias.read_port()

        # Loading: this PE's lane of a load beat, registered here (the beat drives every
        # PE's memories) and written a cycle later. Registers every PE holds alike are
        # named ``*_copy_*`` and kept apart in synthesis (merged, one would drive every PE).
        ld_addr = Signal.like(self.load_addr, name="ld_addr")
        ld_data = Signal.like(self.load_data, name="ld_data")
        ld_en = Signal(name="ld_copy_en", attrs=keep)
        ld_mem = Signal.like(self.load_mem, name="ld_copy_mem", attrs=keep)
        ld_addr2 = Signal.like(self.load_addr, name="ld_copy_addr", attrs=keep)
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

        # The layer starts a cycle after scan_start (a copy of it in every PE); the parts
        # copy the layer's parameters then, next to this PE (the sequencer's registers
        # would otherwise drive every PE across the chip).
        start = Signal(name="start_copy_q", attrs=keep)
        m.d.sync += start.eq(self.scan_start)

        # The activation scan and the emitting share the activation memory's read port
        # (emitting only follows a finished scan). Emitting reads rows 0, 1, ... of the
        # layer, one per emit_en (counted here: the sequencer's counter would drive every
        # PE's memory).
        m.submodules.scanner = scan = ActivationScanner(c, idx)
        emit_addr = Signal(_bits(c.act_depth - 1))
        with m.If(start):
            m.d.sync += emit_addr.eq(0)
        with m.Elif(self.emit_en):
            m.d.sync += emit_addr.eq(emit_addr + 1)
        m.d.comb += [
            scan.start.eq(start), scan.in_features.eq(self.in_features),
            scan.ptr_base.eq(self.ptr_base), scan.rd_data.eq(act_r.data),
            act_r.addr.eq(Mux(scan.active, scan.rd_addr, emit_addr)),
            act_r.en.eq(scan.rd_en | self.emit_en),
            self.nz_valid.eq(scan.o.valid), self.nz_data.eq(scan.o.payload),
            scan.o.ready.eq(self.nz_ready), self.scan_done.eq(scan.done),
            self.emit_data.eq(act_r.data),
        ]

        # Broadcasts -> columns -> sparse-matrix words -> entries -> accumulators.
        m.submodules.activation_queue = queue = ActivationQueue(c)
        m.submodules.word_generator = gen = WordGenerator(c)
        m.submodules.decoder = dec = EntryDecoder(c)
        m.submodules.accumulator = mac = Accumulator(c)
        m.submodules.write_back = wb = WriteBack(c, idx)
        wiring.connect(m, queue.o, gen.i)
        m.d.comb += [
            queue.i.valid.eq(self.q_push), queue.i.payload.eq(self.q_data),
            self.q_ready.eq(queue.ready),
            queue.start.eq(start), queue.queue_limit.eq(self.queue_limit),
            even_r.addr.eq(queue.even_addr), odd_r.addr.eq(queue.odd_addr),
            even_r.en.eq(queue.ptr_en), odd_r.en.eq(queue.ptr_en),
            queue.even_data.eq(even_r.data), queue.odd_data.eq(odd_r.data),

            gen.can_issue.eq(dec.can_issue), dec.issue.eq(gen.issue),
            spmat_r.addr.eq(gen.rd_addr), spmat_r.en.eq(gen.issue),
            gen.rd_data.eq(spmat_r.data),
            dec.w_valid.eq(gen.w_valid), dec.w_word.eq(gen.w_word), dec.w_mask.eq(gen.w_mask),
            dec.w_first.eq(gen.w_first), dec.w_a.eq(gen.w_a),

            mac.start.eq(start), mac.codebook.eq(self.codebook),
            mac.e_valid.eq(dec.o_valid), mac.e_row.eq(dec.o_row),
            mac.e_index.eq(dec.o_index), mac.e_a.eq(dec.o_a),
            acc_r.addr.eq(mac.rd_addr), mac.rd_data.eq(acc_r.data),
            acc_w.addr.eq(mac.wr_addr), acc_w.data.eq(mac.wr_data), acc_w.en.eq(mac.wr_en),
            mac.wb_en.eq(self.wb_en), mac.wb_addr.eq(self.wb_addr),
            mac.zero_en.eq(wb.zero_en), mac.zero_addr.eq(wb.zero_addr),
            mac.clear_en.eq(self.clear_en), mac.clear_addr.eq(self.clear_addr),

            wb.start.eq(start), wb.out_features.eq(self.out_features),
            wb.bias_base.eq(self.bias_base), wb.use_bias.eq(self.use_bias),
            wb.relu.eq(self.relu),
            wb.wb_en.eq(self.wb_en), wb.wb_addr.eq(self.wb_addr), wb.wb_row.eq(self.wb_row),
            wb.acc_data.eq(mac.acc_data),
            bias_r.addr.eq(wb.bias_addr), wb.bias_data.eq(bias_r.data),
        ]
        # The write-back's and the loads' activation writes never meet (loads run idle).
        with m.If(wb.act_en):
            m.d.comb += [act_w.addr.eq(wb.act_addr), act_w.data.eq(wb.act_data),
                         act_w.en.eq(1)]
        with m.Else():
            m.d.comb += [act_w.addr.eq(ld_addr), act_w.data.eq(ld_data),
                         act_w.en.eq(ld[Mem.ACT])]

        m.d.comb += self.idle.eq(queue.idle & gen.idle & dec.idle & mac.idle)
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
