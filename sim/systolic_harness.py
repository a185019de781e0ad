"""The systolic engine as the simulations see it: ``SystolicTop`` fed from files."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from hw.systolic.config import SystolicConfig
from hw.systolic.layouts import Counters, lut_words, result_word
from hw.systolic.top import SystolicTop

from .beat_source import beat_source, beat_source_ports

__all__ = ["STREAMS", "SystolicHarness"]

#: The engine's input streams fed by beat sources: prefix -> (engine port, file name).
STREAMS = {"act": ("i_act", "act_beats.hex"), "weight": ("i_weight", "weight_beats.hex"),
           "param": ("i_param", "param_beats.hex"), "cmd": ("i_cmd", "cmd_beats.hex")}


class SystolicHarness(wiring.Component):
    """``SystolicTop(config)`` with a beat source (``sim/tb/beat_source.v``) on each of
    ``i_act``, ``i_weight``, ``i_param`` and ``i_cmd``.

    The testbench links each stream's file (:data:`STREAMS`, one hex word per line) and
    pulses the sources' ``<prefix>_start`` together; the load streams play at up to a beat
    a cycle, and the command is held back until the weight and parameter loads are taken
    (their ``done``), then offered in the next cycle, while the activations may still be
    streaming in (the engine issues a row only once its word is written). Each source is
    idle with probability ``<prefix>_stall``/256 a cycle. So a GEMM costs the testbench a
    few calls, not a Python step per clock cycle. ``o_result``, ``busy``, ``error`` and ``counters``
    are the engine's own.
    """

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"SystolicHarness needs a SystolicConfig, not {config!r}")
        self._cfg = config
        members = {"o_result": Out(stream.Signature(result_word(config))),
                   "busy": Out(1), "error": Out(1), "counters": Out(Counters)}
        for prefix in STREAMS:
            members.update(beat_source_ports(prefix))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.engine = engine = SystolicTop(cfg)
        wiring.connect(m, engine.o_result, wiring.flipped(self.o_result))
        m.d.comb += [self.busy.eq(engine.busy), self.error.eq(engine.error),
                     self.counters.eq(engine.counters)]
        depths = {"act": cfg.act_depth, "weight": cfg.weight_depth,
                  "param": cfg.param_depth + lut_words(cfg), "cmd": 1}
        loaded = self.weight_done & self.param_done
        for prefix, (port, file) in STREAMS.items():
            sink = getattr(engine, port)
            valid, ready = sink.valid, sink.ready
            if prefix == "cmd":
                valid, ready = Signal(name="cmd_offered"), Signal(name="cmd_taken")
                m.d.comb += [sink.valid.eq(valid & loaded), ready.eq(sink.ready & loaded)]
            m.submodules[f"{prefix}_source"] = beat_source(
                self, prefix, valid=valid, payload=sink.payload.as_value(), ready=ready,
                depth=depths[prefix], file=file)
        return m
