"""Stream payload layouts of the EIE engine, shared by the generator and the host."""

import enum

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from ..bits import bits_for as _bits
from .config import EieConfig

__all__ = ["Mem", "load_layout", "cmd_layout", "bcast_layout", "result_layout",
           "counter_layout"]


class Mem(enum.IntEnum):
    """Target memory of a load beat; every PE writes its own lane at ``addr``."""

    SPMAT = 0       #: sparse-matrix word
    PTR = 1         #: pointer pair: even bank ``p[2 addr]`` low, odd bank ``p[2 addr + 1]`` high
    ACT = 2         #: input activation (local row ``addr``)
    BIAS = 3        #: bias word
    CODEBOOK = 4    #: codebook value ``addr = slot * 2**index_bits + index`` (lane 0 only)


def load_layout(config: EieConfig) -> data.StructLayout:
    return data.StructLayout({
        "mem": unsigned(3),
        "addr": unsigned(config.load_addr_bits),
        "data": data.ArrayLayout(unsigned(config.lane_bits), config.pes),
    })


def cmd_layout(config: EieConfig) -> data.StructLayout:
    """One layer to run. ``ptr_base`` is the index of the layer's ``p[0]`` in every PE's
    pointer memory; ``emit`` streams the outputs on ``o_result`` after the layer;
    ``queue_limit`` (1 .. queue_depth, 0 = queue_depth) caps the activation queues' fill
    level, so one build measures every smaller queue depth exactly."""
    return data.StructLayout({
        "slot": unsigned(_bits(config.max_layers - 1)),
        "in_features": unsigned(config.feature_bits),
        "out_features": unsigned(config.feature_bits),
        "ptr_base": unsigned(_bits(config.ptr_depth - 1)),
        "bias_base": unsigned(_bits(config.bias_depth - 1)),
        "use_bias": unsigned(1),
        "relu": unsigned(1),
        "emit": unsigned(1),
        "queue_limit": unsigned(_bits(config.queue_depth)),
    })


def bcast_layout(config: EieConfig) -> data.StructLayout:
    """A broadcast non-zero activation: ``p``, where its column's pointers start in the
    pointer memory (``ptr_base + j`` for input ``j``, added by the PE that scans it), and
    its value ``a``."""
    return data.StructLayout({
        "p": unsigned(_bits(config.ptr_depth)),
        "a": signed(config.act_width),
    })


def result_layout(config: EieConfig) -> data.ArrayLayout:
    """One beat of outputs: local row ``r`` of every PE, i.e. rows ``r*pes .. r*pes+pes-1``."""
    return data.ArrayLayout(signed(config.act_width), config.pes)


def counter_layout(config: EieConfig) -> data.StructLayout:
    """Performance counters (32-bit, cumulative since reset, wrapping)."""
    per_pe = data.ArrayLayout(unsigned(32), config.pes)
    return data.StructLayout({
        "cycles": unsigned(32),        # cycles running layers (command to write-back done)
        "broadcasts": unsigned(32),    # non-zero activations broadcast
        "stall_cycles": unsigned(32),  # cycles a broadcast waited for a full queue
        "busy": per_pe,                # cycles a PE's MAC issued an entry
        "bubble": per_pe,              # compute-phase cycles a PE's MAC issued nothing
        "padding": per_pe,             # padding entries processed
    })
