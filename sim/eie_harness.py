"""The EIE engine as the simulations see it: ``EieTop`` with a file-driven load stream."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.eie import EieConfig, EieTop
from hw.eie.layouts import cmd_layout, counter_layout, result_layout

from .beat_source import beat_source, beat_source_ports

__all__ = ["LOAD_FILE", "EieHarness", "load_capacity"]

#: The file the simulation's beat source reads (in the cocotb run's working directory).
LOAD_FILE = "load_beats.hex"


def load_capacity(config: EieConfig) -> int:
    """Most ``i_load`` beats one load can take: every memory of a PE, once."""
    return (config.spmat_depth + config.ptr_depth // 2 + 1 + config.bias_depth +
            config.act_depth + config.max_layers * config.codebook_size)


class EieHarness(wiring.Component):
    """``EieTop(config)`` with a beat source on ``i_load`` (``sim/tb/beat_source.v``).

    The testbench writes a load's beats to :data:`LOAD_FILE` (one hex word per line) and
    pulses ``ld_start`` with ``ld_count`` beats; the source plays them at up to one per
    cycle, idle with probability ``ld_stall``/256 each cycle, and raises ``ld_done``. So
    loading an image costs the testbench one call, not one Python step per clock cycle.
    Every other port is the engine's own.
    """

    def __init__(self, config: EieConfig):
        self._cfg = config
        super().__init__({
            "i_cmd": In(stream.Signature(cmd_layout(config))),
            "o_result": Out(stream.Signature(result_layout(config))),
            "o_busy": Out(1),
            "o_counters": Out(counter_layout(config)),
            **beat_source_ports("ld"),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = EieTop(self._cfg)
        wiring.connect(m, wiring.flipped(self.i_cmd), engine.i_cmd)
        wiring.connect(m, engine.o_result, wiring.flipped(self.o_result))
        m.d.comb += [self.o_busy.eq(engine.o_busy), self.o_counters.eq(engine.o_counters)]
        m.submodules.source = beat_source(
            self, "ld", valid=engine.i_load.valid, payload=engine.i_load.payload.as_value(),
            ready=engine.i_load.ready, depth=load_capacity(self._cfg), file=LOAD_FILE)
        return m
