"""Synthesis intent, stated where the hardware is described.

A generator passes the platform its ``elaborate`` receives (``None`` in simulation and for
plain Verilog) and puts the result on the declaration::

    mem = Memory(shape=16, depth=256, init=[], attrs=no_collision())
    copy = Signal(8, name="sel_copy_0", attrs=keep_copy(platform))
    with m.FSM() as fsm:
        ...
    one_hot(fsm)

The board flow (``boards/synth.py``) reads these attributes back from the netlist; it never
names a signal or a submodule of an engine.
"""

__all__ = ["NO_COLLISION", "family", "keep_copy", "no_collision", "one_hot"]

#: Memory attribute: the memory is never read at the address written in the same cycle, or
#: its reader ignores such a read. Yosys's own name for the intent; the board flow turns it
#: into "don't care on collision" on Amaranth's synchronous read ports, so no bypass logic
#: follows the block RAM's output.
NO_COLLISION = "no_rw_check"


def family(platform) -> str | None:
    """The FPGA family of ``platform`` in lower case (``"ecp5"``, ``"ice40"``,
    ``"series7"``), or ``None`` for simulation and plain Verilog."""
    name = getattr(platform, "family", None)
    return name.lower() if isinstance(name, str) else None


def no_collision() -> dict:
    """``attrs=`` for a :class:`~amaranth.lib.memory.Memory` whose reads never need the
    data written in the same cycle (see :data:`NO_COLLISION`). Family-independent."""
    return {NO_COLLISION: 1}


def keep_copy(platform) -> dict:
    """``attrs=`` for a register that deliberately duplicates another one (a per-column or
    per-PE copy of a control signal, a delay line's tap) so each copy sits next to its
    load. On the ECP5 the copy is kept; elsewhere (the iCE40 is bound by logic cells, not
    by wire delay) synthesis may merge it back."""
    return {"keep": 1} if family(platform) == "ecp5" else {}


def one_hot(fsm) -> None:
    """Ask synthesis to encode the state of ``fsm`` (the object ``with m.FSM() as fsm``
    gives, after its block) one-hot: each state test is then one flip-flop."""
    fsm.state.attrs["fsm_encoding"] = "one-hot"
