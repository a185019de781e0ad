"""Property builders shared by the proof wrappers: the stream rule, free inputs, lookups.

Amaranth 0.5 has no ``Past``: the rule compares against registers of last cycle's values,
kept by the checker itself (reset-less, so a reset of the design does not clear them).
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Fragment, Module, Mux, ResetSignal, Signal, Value
from amaranth.hdl._ast import Assign

__all__ = ["stream_rule", "free", "find", "signal", "field", "fifo_invariants", "follower",
           "after_reset"]


def after_reset(m: Module) -> Value:
    """A signal that is 1 from the second cycle on while ``rst`` has not been high since.

    The proofs start from the registers' initial values, which are their reset values;
    ``rst`` itself is a free input, so a reset may come at any cycle.
    """
    prev_rst = Signal(name="fv_prev_rst", reset_less=True)
    started = Signal(name="fv_started", reset_less=True)
    m.d.sync += [prev_rst.eq(ResetSignal()), started.eq(1)]
    return started & ~prev_rst


def stream_rule(m: Module, port, *, name: str, assume: bool = False):
    """The valid/ready rule on ``port``: once ``valid`` is high and ``ready`` low, ``valid``
    stays high next cycle and the payload does not change.

    Asserted for a stream the design drives; assumed (``assume=True``) for one the
    environment drives. A cycle after a reset is exempt: a reset may withdraw a beat.
    """
    check = Assume if assume else Assert
    prev_valid = Signal(name=f"fv_{name}_prev_valid", reset_less=True)
    prev_ready = Signal(name=f"fv_{name}_prev_ready", reset_less=True)
    prev_payload = Signal.like(port.payload, name=f"fv_{name}_prev_payload", reset_less=True)
    m.d.sync += [prev_valid.eq(port.valid), prev_ready.eq(port.ready),
                 prev_payload.eq(port.payload)]
    stalled = Signal(name=f"fv_{name}_stalled")
    m.d.comb += stalled.eq(after_reset(m) & prev_valid & ~prev_ready)
    with m.If(stalled):
        m.d.comb += [check(port.valid, f"{name}: valid dropped before ready"),
                     check(Value.cast(port.payload) == Value.cast(prev_payload),
                           f"{name}: payload changed while stalled")]
    return stalled


def free(m: Module, *signals) -> None:
    """Drives each signal (or view) with a fresh unconstrained value every cycle."""
    for sig in signals:
        value = Value.cast(sig)
        m.d.comb += value.eq(AnySeq(len(value)))


def find(fragment: Fragment, *path: str):
    """The elaboratable (for example a ``SyncFIFO``) at ``path`` below ``fragment``.

    Elaborating the design first and asserting on its parts keeps the RTL untouched:
    the wrapper reads a part's own signals (``level``, ``w_en``...) and the design is
    added to the wrapper as the fragment that was looked into.
    """
    for name in path:
        fragment = fragment.find_subfragment(name)
    return fragment.origins[0]


def signal(fragment: Fragment, name: str, *path: str) -> Signal:
    """The signal called ``name`` that the part at ``path`` below ``fragment`` drives."""
    for part in path:
        fragment = fragment.find_subfragment(part)
    for statements in fragment.statements.values():
        for stmt in statements:
            for sig in stmt._lhs_signals():
                if sig.name == name:
                    return sig
    raise LookupError(f"no signal {name!r} driven in {'.'.join(path) or 'the top'}")


def field(sig: Signal, name: str) -> Value:
    """Field ``name`` of a struct-shaped signal found by :func:`signal` (which yields the
    plain signal under the view), read back from the layout the signal was made with."""
    chunks = sig._format._fields[name]._chunks
    (part, _), = chunks
    return part


def fifo_invariants(m: Module, fragment: Fragment, *path: str):
    """Asserts that the ``SyncFIFO`` or ``SyncFIFOBuffered`` at ``path`` is consistent: its
    level within its depth, its write pointer its read pointer plus its level.

    Reachable states all keep this; stating it lets k-induction rule out the ones that
    do not. Returns the FIFO.
    """
    fifo = find(fragment, *path)
    part = fragment
    for name in path:
        part = part.find_subfragment(name)
    where = ".".join(path)
    buffered = any(sig.name == "inner_level" for stmts in part.statements.values()
                   for stmt in stmts for sig in stmt._lhs_signals())
    if buffered:
        depth = fifo.depth - 1
        level = signal(part, "inner_level")
        m.d.comb += Assert(fifo.level == level + fifo.r_rdy, f"{where}: level")
    else:
        depth = fifo.depth
        level = fifo.level
    produce, consume = signal(part, "produce"), signal(part, "consume")
    total = consume + level
    m.d.comb += [
        Assert(level <= depth, f"{where}: level past depth"),
        Assert(produce < depth, f"{where}: write pointer out of range"),
        Assert(consume < depth, f"{where}: read pointer out of range"),
        Assert(produce == Mux(total >= depth, total - depth, total), f"{where}: pointers"),
    ]
    return fifo


def follower(fragment: Fragment, source: Value, *path: str) -> Signal:
    """The register that copies ``source`` every cycle (``reg.eq(source)`` in ``sync``) in
    the part at ``path``: a way to reach a pipeline stage that has no name of its own."""
    for part in path:
        fragment = fragment.find_subfragment(part)
    for stmt in fragment.statements.get("sync", ()):
        if isinstance(stmt, Assign) and stmt.rhs is source and isinstance(stmt.lhs, Signal):
            return stmt.lhs
    raise LookupError(f"no register copies {source!r} in {'.'.join(path) or 'the top'}")
