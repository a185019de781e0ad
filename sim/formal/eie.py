"""Proof wrappers for the EIE engine: its result stream, the non-zero tree's skid buffers,
the PEs' queues, and a command that runs to its last result beat."""

import re

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Fragment, Module, Mux, Signal
from amaranth.lib import wiring

from hw.eie import EieConfig, EieTop
from hw.eie.layouts import bcast_layout
from hw.eie.lnzd import NonZeroTree
from hw.eie.pe import ProcessingElement

from .contracts import (
    after_reset,
    field,
    fifo_invariants,
    find,
    follower,
    free,
    signal,
    stream_rule,
)

__all__ = ["TINY", "EieResultStream", "EieQueues", "EieCommandCover", "TreeStreams",
           "PeQueueLimit"]

#: A small engine that still has every part: 2 PEs (so one tree node), 2-deep activation
#: queues, 2-entry words, up to 7 inputs a layer (enough columns to fill a queue behind
#: the column buffer). The memories start with any contents, so every pointer pattern
#: (columns of any length) is in play.
TINY = EieConfig(pes=2, index_bits=1, zrun_bits=1, act_width=4, act_frac=0, weight_width=4,
                 weight_frac=0, acc_width=11, queue_depth=2, word_bits=4, spmat_depth=2,
                 ptr_depth=8, act_depth=4, bias_depth=1, max_layers=1)


def _engine(m: Module, config: EieConfig, *, trust_host: bool = True
            ) -> tuple[EieTop, Fragment]:
    """The engine with free inputs that keep the stream rule, as its host would.

    With ``trust_host`` the commands also keep the documented ranges the driver checks
    (``queue_limit`` at most ``queue_depth``, see ``hw/eie/driver.py``).
    """
    top = EieTop(config)
    fragment = Fragment.get(top, None)
    m.submodules.dut = fragment
    free(m, top.i_load.valid, top.i_load.payload, top.i_cmd.valid, top.i_cmd.payload,
         top.o_result.ready)
    stream_rule(m, top.i_load, name="i_load", assume=True)
    stream_rule(m, top.i_cmd, name="i_cmd", assume=True)
    if trust_host:
        # (on every cycle: the engine copies the payload while idle, valid or not)
        m.d.comb += Assume(top.i_cmd.payload.queue_limit <= config.queue_depth)
        m.d.comb += Assert(field(signal(fragment, "cmd"), "queue_limit") <= config.queue_depth,
                           "command register: queue limit past depth")
    return top, fragment


class EieResultStream(Elaboratable):
    """``o_result`` keeps the stream rule (its 2-entry skid buffer holds a stalled beat)."""

    def __init__(self, config: EieConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, _ = _engine(m, self._cfg)
        stream_rule(m, top.o_result, name="o_result")
        return m


class EieQueues(Elaboratable):
    """No PE FIFO is written while full, and a column leaving the activation queue always
    lands in the column buffer (nothing lost, nothing duplicated).

    Per PE: the activation queue (its ready is a registered fill-level forecast), the
    column buffer (which must never hold more than 2), the scan's non-zero buffer and the
    entry decoder's word buffer (both written without a look at their ``w_rdy``).

    With ``cover``: instead of the assertions, covers that PE 0's queue and column buffer
    do fill up (so a bounded check of this depth reaches the full cases).
    """

    def __init__(self, config: EieConfig = TINY, *, trust_host: bool = True,
                 cover: bool = False):
        self._cfg = config
        self._trust_host = trust_host
        self._cover = cover
        # Without the host's range check, only a bounded check of the FIFOs means anything.
        self._invariants = trust_host and not cover

    def elaborate(self, platform):
        m = Module()
        _, fragment = _engine(m, self._cfg, trust_host=self._trust_host)
        for k in range(self._cfg.pes):
            pe = f"pe_{k}"
            queue = fifo_invariants(m, fragment, pe, "activation_queue", "queue")
            columns = fifo_invariants(m, fragment, pe, "activation_queue", "columns")
            nonzeros = fifo_invariants(m, fragment, pe, "scanner", "nonzeros")
            words = fifo_invariants(m, fragment, pe, "decoder", "words")
            if self._invariants:
                self._pe_invariants(m, fragment, pe, queue, nonzeros, words)
            if self._cover:
                if k == 0:
                    m.d.comb += [Cover(queue.level == self._cfg.queue_depth, "queue full"),
                                 Cover(columns.level == 2, "column buffer full")]
                continue
            for name, fifo in (("queue", queue), ("columns", columns),
                               ("nonzeros", nonzeros), ("words", words)):
                m.d.comb += Assert(~(fifo.w_en & ~fifo.w_rdy),
                                   f"{pe}: {name} written while full")
            m.d.comb += Assert(columns.level <= 2, f"{pe}: column buffer holds more than 2")
            popped = queue.r_en & queue.r_rdy
            m.d.comb += [
                Assert(~popped | columns.w_en, f"{pe}: column popped from the queue lost"),
                Assert(~(queue.r_rdy & columns.w_en) | queue.r_en,
                       f"{pe}: column copied into the buffer but left in the queue"),
            ]
        return m

    def _pe_invariants(self, m, fragment, pe, queue, nonzeros, words):
        """What the PE's own counters and forecasts track, stated so that k-induction can
        rule out the states they disagree in (each is proved along the way)."""
        aq, gen, scan = (pe, "activation_queue"), (pe, "word_generator"), (pe, "scanner")
        limit = signal(fragment, "layer_copy_limit", *aq)
        limit_less = signal(fragment, "layer_copy_limit_less", *aq)
        in_lookup = (signal(fragment, "l_copy_valid", *aq) +
                     signal(fragment, "l2_copy_valid", *aq) +
                     signal(fragment, "l_work", *aq))
        decoder = find(fragment, pe, "decoder")
        r_valid = follower(fragment, signal(fragment, "issue", *gen), *gen)
        s1_valid = follower(fragment, signal(fragment, "s_issue", *scan), *scan)
        s2_valid = follower(fragment, s1_valid, *scan)
        slots = signal(fragment, "slots", pe, "decoder")
        s_slots = signal(fragment, "s_slots", *scan)
        m.d.comb += [
            # (0 until the first command copies one in)
            Assert(limit <= self._cfg.queue_depth, f"{pe}: queue limit past depth"),
            Assert(limit_less == Mux(limit == 0, 0, limit - 1), f"{pe}: queue limit less one"),
            Assert(queue.level + in_lookup <= self._cfg.queue_depth,
                   f"{pe}: queued and looked-up columns exceed the queue"),
            Assert(slots == words.level + r_valid + decoder.w_valid +
                   signal(fragment, "p_valid", pe, "decoder"), f"{pe}: decoder slots"),
            Assert(slots <= decoder.DEPTH, f"{pe}: decoder slots past depth"),
            Assert(s_slots == nonzeros.level + s1_valid + s2_valid, f"{pe}: scan slots"),
            Assert(s_slots <= ProcessingElement.SCAN_SLOTS, f"{pe}: scan slots past depth"),
        ]


class EieCommandCover(Elaboratable):
    """Cover: a command with ``emit`` is accepted, its result beat taken, the engine idle."""

    def __init__(self, config: EieConfig = TINY):
        self._cfg = config

    def elaborate(self, platform):
        m = Module()
        top, _ = _engine(m, self._cfg)
        ok = after_reset(m)
        accepted = Signal()
        beat = Signal()
        with m.If(ok & top.i_cmd.valid & top.i_cmd.ready & top.i_cmd.payload.emit):
            m.d.sync += accepted.eq(1)
        with m.If(accepted & top.o_result.valid & top.o_result.ready):
            m.d.sync += beat.eq(1)
        m.d.comb += Cover(ok & beat & ~top.o_busy, "command emitted a result and finished")
        return m


class TreeStreams(Elaboratable):
    """The non-zero tree alone: with leaves that keep the stream rule, its root keeps it
    too, and every leaf beat taken leaves the root (counted: nothing lost or made up).

    ``count`` 5 gives two levels (a 4-input node and a 1-input node under the root).
    """

    def __init__(self, config: EieConfig = TINY, count: int = 5):
        self._cfg = config
        self._count = count

    def elaborate(self, platform):
        m = Module()
        tree = NonZeroTree(bcast_layout(self._cfg), self._count)
        free(m, tree.o.ready)
        for k, leaf in enumerate(tree.i):
            free(m, leaf.valid, leaf.payload)
            stream_rule(m, leaf, name=f"leaf_{k}", assume=True)
        stream_rule(m, tree.o, name="root")
        # Beats inside the tree: taken from leaves, not yet out of the root. Each node
        # holds at most two (its output register and its skid register); the count must
        # equal the registers' valid bits.
        fragment = Fragment.get(tree, None)
        m.submodules.tree = fragment
        held = {}
        for stmts in fragment.statements.values():
            for stmt in stmts:
                held.update((s.name, s) for s in stmt._lhs_signals()
                            if re.fullmatch(r"n\d+_\d+_(_|skid_)valid", s.name))
        if len(held) != 2 * tree.nodes:
            raise LookupError(f"found {len(held)} node registers in the tree, expected "
                              f"{2 * tree.nodes}")
        inside = Signal(range(2 * tree.nodes + 2))
        taken = sum((leaf.valid & leaf.ready for leaf in tree.i), start=0)
        m.d.sync += inside.eq(inside + taken - (tree.o.valid & tree.o.ready))
        m.d.comb += [Assert(inside == sum(held.values(), start=0), "beats lost or made up inside"),
                     Assert((inside == 0) == tree.empty, "empty flag disagrees with count")]
        return m


class PeQueueLimit(Elaboratable):
    """One PE alone, its broadcasts arriving whenever its queue is ready (as the top level
    pushes them): its activation queue is never written while full.

    With ``trust_host`` the ``queue_limit`` it is given stays at most ``queue_depth``;
    without, a bounded check shows what a limit past the depth (the field is wide enough
    for one) does to the queue.
    """

    def __init__(self, config: EieConfig = TINY, *, trust_host: bool = True):
        self._cfg = config
        self._trust_host = trust_host

    def elaborate(self, platform):
        m = Module()
        pe = ProcessingElement(self._cfg, 0)
        fragment = Fragment.get(pe, None)
        m.submodules.pe = fragment
        free(m, *(value for _, member, value in pe.signature.flatten(pe)
                  if member.flow == wiring.In))
        # As the top level drives it: broadcasts only into a ready queue, a layer started
        # only when the PE is idle and done scanning.
        m.d.comb += [Assume(~pe.q_push | pe.q_ready),
                     Assume(~pe.scan_start | (pe.idle & pe.scan_done))]
        if self._trust_host:
            m.d.comb += Assume(pe.queue_limit <= self._cfg.queue_depth)
        queue = fifo_invariants(m, fragment, "activation_queue", "queue")
        m.d.comb += Assert(~(queue.w_en & ~queue.w_rdy), "queue written while full")
        return m
