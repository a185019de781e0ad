"""The rows × cols grid of processing elements, with skew and deskew at its edges."""

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..synthesis import keep_copy
from .pe import ProcessingElement

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """Weight-stationary systolic mesh with a skewed input and a deskewed output.

    A row vector of activations enters at once; row ``r`` is delayed ``r`` cycles so the
    wavefront moves diagonally, partial sums flow down, and column ``c`` of the bottom row
    is delayed ``cols - 1 - c`` cycles so a whole output row leaves at once, :attr:`latency`
    cycles after it entered. Timing is
    fixed, so the mesh has no valid/ready: the controller tracks what is in flight.

    Parameters
    ----------
    rows, cols, acc_width : int

    Members
    -------
    a : In(ArrayLayout(signed(9), rows))
        Activations (int8 minus zero point) of one GEMM row, one K-tile's worth.
    bank : In(1)
        The weight bank those activations use.
    psum : Out(ArrayLayout(signed(acc_width), cols))
        The tile's partial sums for that row, :attr:`latency` cycles later.
    w_in, shift : In(ArrayLayout(signed(8), cols)), In(1)
        Weight shift chain input and enable: shift in the tile's last row first, ``rows``
        shifts in all; the chain holds still while ``shift`` is low.
    latch, latch_bank : In
        Copy the shift chain into a bank of every PE.

    ``w_in``, ``shift``, ``latch`` and ``latch_bank`` pass one register per column (a copy
    of each control per column and :attr:`GROUP` rows, named ``*_copy_*`` so synthesis
    keeps them apart) before they reach the PEs, so each acts :attr:`CONTROL_LATENCY`
    cycles after it is presented.
    """

    #: Cycles from ``w_in``/``shift``/``latch``/``latch_bank`` to the PEs.
    CONTROL_LATENCY = 1

    #: Rows of PEs that share a copy of the weight controls.
    GROUP = 4

    def __init__(self, rows: int, cols: int, acc_width: int):
        self._rows, self._cols, self._acc_width = rows, cols, acc_width
        super().__init__({
            "a": In(data.ArrayLayout(signed(9), rows)),
            "bank": In(1),
            "psum": Out(data.ArrayLayout(signed(acc_width), cols)),
            "w_in": In(data.ArrayLayout(signed(8), cols)),
            "shift": In(1),
            "latch": In(1),
            "latch_bank": In(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``a`` to ``psum`` of the same row."""
        return self.latency_of(self._rows, self._cols)

    @staticmethod
    def latency_of(rows: int, cols: int) -> int:
        # skew (row r waits r cycles), the last PE's multiply and sum, 1 per PE across,
        # deskew (column c waits cols - 1 - c)
        return (rows - 1) + ProcessingElement.LATENCY + (cols - 1)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        pes = [[ProcessingElement(self._acc_width) for _ in range(cols)] for _ in range(rows)]
        # The weight controls fan out to every PE of the array: one registered copy per
        # column and group of GROUP rows (a copy per column would reach the weight
        # registers of a whole column of PEs, spread over the DSP rows).
        groups = range((rows + self.GROUP - 1) // self.GROUP)
        keep = keep_copy(platform)
        shift = [[Signal(name=f"shift_copy_{c}_{g}", attrs=keep) for g in groups]
                 for c in range(cols)]
        latch = [[Signal(name=f"latch_copy_{c}_{g}", attrs=keep) for g in groups]
                 for c in range(cols)]
        latch_bank = [[Signal(name=f"latch_bank_copy_{c}_{g}", attrs=keep) for g in groups]
                      for c in range(cols)]
        w_in = [Signal(signed(8), name=f"w_in_{c}", reset_less=True) for c in range(cols)]
        for c in range(cols):
            m.d.sync += w_in[c].eq(self.w_in[c])
            for g in groups:
                m.d.sync += [shift[c][g].eq(self.shift), latch[c][g].eq(self.latch),
                             latch_bank[c][g].eq(self.latch_bank)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pe = pes[r][c]
                g = r // self.GROUP
                m.d.comb += [pe.latch.eq(latch[c][g]), pe.latch_bank.eq(latch_bank[c][g]),
                             pe.shift.eq(shift[c][g])]
                if c == 0:
                    a, bank = self.a[r], self.bank
                    for i in range(r):  # skew: row r enters r cycles late
                        a_d = Signal(signed(9), name=f"skew_a_{r}_{i}", reset_less=True)
                        bank_d = Signal(name=f"skew_bank_{r}_{i}", attrs=keep)
                        m.d.sync += [a_d.eq(a), bank_d.eq(bank)]
                        a, bank = a_d, bank_d
                    m.d.comb += [pe.a_in.eq(a), pe.bank_in.eq(bank)]
                else:
                    left = pes[r][c - 1]
                    m.d.comb += [pe.a_in.eq(left.a_out), pe.bank_in.eq(left.bank_out)]
                if r == 0:
                    m.d.comb += [pe.psum_in.eq(0), pe.w_in.eq(w_in[c])]
                else:
                    above = pes[r - 1][c]
                    m.d.comb += [pe.psum_in.eq(above.psum_out), pe.w_in.eq(above.w_out)]
        for c in range(cols):
            out = pes[rows - 1][c].psum_out
            for i in range(cols - 1 - c):  # deskew
                out_d = Signal(signed(self._acc_width), name=f"deskew_{c}_{i}",
                               reset_less=True)
                m.d.sync += out_d.eq(out)
                out = out_d
            m.d.comb += self.psum[c].eq(out)
        return m
