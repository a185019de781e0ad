"""The simulation-only beat source (``sim/tb/beat_source.v``) as harnesses instantiate it.

A harness gives each stream it feeds from a file a prefix; :func:`beat_source_ports` are
the ports the testbench drives (:class:`sim.tb.streams.BeatSource`) and
:func:`beat_source` the ``Instance`` playing the file onto the stream.
"""

from amaranth.hdl import ClockSignal, Instance, ResetSignal
from amaranth.lib.wiring import In, Out

__all__ = ["VERILOG", "beat_source_ports", "beat_source"]

#: The Verilog model, relative to the repository (for :func:`sim.rtl.build`).
VERILOG = "sim/tb/beat_source.v"


def beat_source_ports(prefix: str) -> dict:
    """Signature members of one beat source's control: ``<prefix>_start`` (pulse),
    ``_count`` (beats to play), ``_stall`` (idle probability in 256ths), ``_seed``
    and ``_done`` (every beat taken)."""
    return {f"{prefix}_start": In(1), f"{prefix}_count": In(32), f"{prefix}_stall": In(8),
            f"{prefix}_seed": In(16), f"{prefix}_done": Out(1)}


def beat_source(harness, prefix: str, *, valid, payload, ready, depth: int,
                file: str) -> Instance:
    """The source of ``harness``'s ports ``<prefix>_*`` playing up to ``depth`` beats of
    ``file`` (in the simulation's working directory) onto ``valid``/``payload``/``ready``.
    """
    if depth < 1:
        raise ValueError(f"beat source {prefix}: depth={depth}, must be at least 1")
    port = {name: getattr(harness, f"{prefix}_{name}")
            for name in ("start", "count", "stall", "seed", "done")}
    return Instance(
        "nnaccel_beat_source",
        p_WIDTH=len(payload), p_DEPTH=max(2, depth), p_FILE=file,
        i_clk=ClockSignal(), i_rst=ResetSignal(), i_start=port["start"],
        i_count=port["count"], i_stall=port["stall"], i_seed=port["seed"],
        o_valid=valid, o_payload=payload, i_ready=ready, o_done=port["done"])
