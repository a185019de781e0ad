"""One multiply-accumulate cell of the weight-stationary mesh."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..multiplier import Multiplier
from ..synthesis import keep_copy

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """int8 weight-stationary MAC with two weight banks.

    Each cycle the PE multiplies the activation arriving from the left by the weight of the
    bank that travels with it (two registers, then a :class:`Multiplier`), adds the
    product to the partial sum arriving from above and registers the sum (down); the
    activation moves right each cycle. The
    next tile's weight shifts down a separate chain and is copied into one bank by
    ``latch``, so loading never stops the MACs.

    Parameters
    ----------
    acc_width : int
        Partial-sum width.

    Members
    -------
    a_in, bank_in : In
        Activation (signed 9 bits: int8 minus its zero point) and the weight bank it uses.
    psum_in : In
        Partial sum from the PE above (0 for the top row).
    w_in, shift : In
        Weight shift chain input (from the PE above) and its shift enable.
    latch, latch_bank : In
        Copy the shift chain register into bank ``latch_bank``.
    a_out, bank_out, w_out : Out
        Registered copies for the neighbours; latency one cycle each.
    psum_out : Out
        ``psum_in`` plus the product of the activation and weight that arrived
        :attr:`LATENCY` cycles earlier (``psum_in`` is sampled one cycle before).
    """

    def __init__(self, acc_width: int):
        self._acc_width = acc_width
        super().__init__({
            "a_in": In(signed(9)), "bank_in": In(1), "psum_in": In(signed(acc_width)),
            "w_in": In(signed(8)), "shift": In(1), "latch": In(1), "latch_bank": In(1),
            "a_out": Out(signed(9)), "bank_out": Out(1), "psum_out": Out(signed(acc_width)),
            "w_out": Out(signed(8)),
        })

    #: Cycles from an activation's arrival to the partial sum that includes it.
    LATENCY = 2 + Multiplier.LATENCY + 2

    def elaborate(self, platform):
        m = Module()
        keep = keep_copy(platform)
        # bank_out is each PE's copy of the row's bank, next to the weight select it drives.
        self.bank_out.attrs.update(keep)
        # Data registers have no reset (garbage flushes out before a tile is issued: the
        # controller zeroes the activations of rows it does not issue); that keeps the
        # reset net small. The bank bit keeps its reset.
        weight = [Signal(signed(8), name=f"weight_{b}", reset_less=True) for b in range(2)]
        w_chain = Signal(signed(8), reset_less=True)
        a = Signal(signed(9), reset_less=True)
        psum = Signal(signed(self._acc_width), reset_less=True)
        m.d.comb += [self.w_out.eq(w_chain), self.a_out.eq(a), self.psum_out.eq(psum)]
        with m.If(self.shift):
            m.d.sync += w_chain.eq(self.w_in)
        m.d.sync += [a.eq(self.a_in), self.bank_out.eq(self.bank_in)]
        with m.If(self.latch):
            with m.If(self.latch_bank):
                m.d.sync += weight[1].eq(w_chain)
            with m.Else():
                m.d.sync += weight[0].eq(w_chain)
        # The weight of the activation's bank is registered next to the multiplier (with
        # the activation: a_out), then the product takes Multiplier.LATENCY cycles (a DSP
        # with its registers on an FPGA) and one register more; the partial sum from above
        # arrives as many cycles later too, so columns stay aligned.
        w = Signal(signed(8), reset_less=True)
        m.d.sync += w.eq(Mux(self.bank_in, weight[1], weight[0]))
        # Both operands pass one more register on their way to the DSP: in a DSP-dense
        # array the DSP sites are rows apart from the logic that feeds them, and a single
        # hop from `a`/`w` is most of a cycle's routing on the ECP5.
        a_mul = Signal(signed(9), name="a_mul_copy_0", reset_less=True, attrs=keep)
        w_mul = Signal(signed(8), name="w_mul_copy_0", reset_less=True, attrs=keep)
        m.d.sync += [a_mul.eq(a), w_mul.eq(w)]
        m.submodules.multiplier = mul = Multiplier(signed(9), signed(8))
        m.d.comb += [mul.a.eq(a_mul), mul.b.eq(w_mul)]
        # One more register after the multiplier's: in a DSP-dense array the placer puts
        # the multiplier's fabric register far from its DSP, a hop of its own.
        product = Signal.like(mul.p, reset_less=True)
        m.d.sync += [product.eq(mul.p), psum.eq(self.psum_in + product)]
        return m
