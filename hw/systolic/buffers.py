"""The engine's on-chip buffers: activations, weights and per-channel parameters."""

from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..runtime_memory import runtime_memory
from ..synthesis import no_collision
from .config import SystolicConfig
from .layouts import ChannelParams, act_word, param_word, weight_word

__all__ = ["Buffers"]


class Buffers(wiring.Component):
    """Activation, weight and parameter memories, written by addressed streams and read by
    the engine at addresses of its own.

    The parameter buffer is one memory per column, each read at an address of its own (the
    columns' block RAMs sit next to their columns, across the array's width: a single
    address register reaching all of them is a long route). Every
    memory is marked :func:`~hw.synthesis.no_collision`: the host loads the weights and
    parameters before the command that reads them, and activations may stream in while it
    runs, but the issue controller reads a word only two cycles after its write. Read data
    follows its address by :attr:`latency` cycle.

    Parameters
    ----------
    config : SystolicConfig

    Members
    -------
    i_act, i_weight, i_param : In(stream)
        Addressed writes (``act_word``, ``weight_word``, ``param_word``); always ready.
        Parameter words with ``lut`` set are the activation table's, not written here.
    act_addr, act_data : In, Out(ArrayLayout(signed(8), rows))
    w_addr, w_data : In, Out(ArrayLayout(signed(8), cols))
    p_addr, p_data : In(ArrayLayout(unsigned, cols)), Out(ArrayLayout(ChannelParams, cols))
        Column ``c``'s parameters are read at ``p_addr[c]``.
    """

    #: Cycles from a read address to its data.
    LATENCY = 1

    def __init__(self, config: SystolicConfig):
        if not isinstance(config, SystolicConfig):
            raise TypeError(f"Buffers needs a SystolicConfig, not {config!r}")
        self._cfg = config
        rows, cols = config.rows, config.cols
        super().__init__({
            "i_act": In(stream.Signature(act_word(config))),
            "i_weight": In(stream.Signature(weight_word(config))),
            "i_param": In(stream.Signature(param_word(config))),
            "act_addr": In(range(config.act_depth)),
            "act_data": Out(data.ArrayLayout(signed(8), rows)),
            "w_addr": In(range(config.weight_depth)),
            "w_data": Out(data.ArrayLayout(signed(8), cols)),
            "p_addr": In(data.ArrayLayout(range(config.param_depth), cols)),
            "p_data": Out(data.ArrayLayout(ChannelParams, cols)),
        })

    @property
    def latency(self) -> int:
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        cfg, cols = self._cfg, self._cfg.cols
        m.submodules.act_mem = act_mem = runtime_memory(
            data.ArrayLayout(signed(8), cfg.rows), cfg.act_depth, attrs=no_collision())
        m.submodules.w_mem = w_mem = runtime_memory(
            data.ArrayLayout(signed(8), cols), cfg.weight_depth, attrs=no_collision())
        reads = [(act_mem, self.i_act, self.act_addr, self.act_data),
                 (w_mem, self.i_weight, self.w_addr, self.w_data)]
        m.d.comb += self.i_param.ready.eq(1)
        for c in range(cols):
            m.submodules[f"p_mem_{c}"] = p_mem = runtime_memory(ChannelParams, cfg.param_depth,
                                                                attrs=no_collision())
            wp = p_mem.write_port()
            m.d.comb += [wp.addr.eq(self.i_param.payload.addr),
                         wp.data.eq(self.i_param.payload.data[c]),
                         wp.en.eq(self.i_param.valid & ~self.i_param.payload.lut)]
            reads.append((p_mem, None, self.p_addr[c], self.p_data[c]))
        for mem, port, addr, rdata in reads:
            if port is not None:
                wp = mem.write_port()
                m.d.comb += [port.ready.eq(1), wp.addr.eq(port.payload.addr),
                             wp.data.eq(port.payload.data), wp.en.eq(port.valid)]
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(addr), rdata.eq(rp.data)]
        return m
