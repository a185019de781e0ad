"""Stream payload layouts of the systolic engine, shared by RTL, driver and testbenches."""

from amaranth import signed, unsigned
from amaranth.lib import data

from ..bits import bits_for
from .config import SystolicConfig

__all__ = ["ChannelParams", "act_word", "weight_word", "param_word", "gemm_command",
           "result_word", "Counters", "COUNTER_WIDTH", "lut_entries", "lut_words",
           "lut_chunk", "LUT_SIZE"]

#: Entries of the activation table, one per int8 code.
LUT_SIZE = 256

COUNTER_WIDTH = 48

#: Requantization parameters of one output channel.
ChannelParams = data.StructLayout({
    "bias": signed(32),
    "multiplier": unsigned(31),
    "shift": signed(6),
})

#: Performance counters, cleared when a GEMM command is accepted.
Counters = data.StructLayout({
    "cycles": unsigned(COUNTER_WIDTH),        # command accepted .. last result word sent
    "busy": unsigned(COUNTER_WIDTH),          # cycles an activation row entered the array
    "useful_macs": unsigned(COUNTER_WIDTH),   # MACs on real (not padding) K×N elements
    "weight_stall": unsigned(COUNTER_WIDTH),  # rows waiting for their weight tile
    "output_stall": unsigned(COUNTER_WIDTH),  # rows waiting for output space
})


def _bits(depth: int) -> int:
    """Address bits of a memory of ``depth`` words."""
    return bits_for(depth - 1)


def act_word(cfg: SystolicConfig) -> data.StructLayout:
    """One activation buffer word: ``rows`` int8 of one GEMM row, one K tile."""
    return data.StructLayout({"addr": unsigned(_bits(cfg.act_depth)),
                              "data": data.ArrayLayout(signed(8), cfg.rows)})


def weight_word(cfg: SystolicConfig) -> data.StructLayout:
    """One weight buffer word: ``cols`` int8 of one row of a weight tile."""
    return data.StructLayout({"addr": unsigned(_bits(cfg.weight_depth)),
                              "data": data.ArrayLayout(signed(8), cfg.cols)})


def param_word(cfg: SystolicConfig) -> data.StructLayout:
    """One parameter word: the ``cols`` channels of one N tile, or (``lut`` set) one
    chunk of the activation table, its ``data`` bits read as :func:`lut_chunk`.

    ``lut`` is the top bit, so a channel word is the same integer as without it."""
    return data.StructLayout({"addr": unsigned(_bits(cfg.param_depth)),
                              "data": data.ArrayLayout(ChannelParams, cfg.cols),
                              "lut": 1})


def lut_entries(cfg: SystolicConfig) -> int:
    """Activation-table entries per parameter word: the largest power of two up to 16 whose
    chunk fits the word's ``data`` bits."""
    room = (cfg.cols * ChannelParams.size - 8) // 8
    return min(16, 1 << (room.bit_length() - 1))


def lut_words(cfg: SystolicConfig) -> int:
    """Parameter words that carry the whole activation table."""
    return LUT_SIZE // lut_entries(cfg)


def lut_chunk(cfg: SystolicConfig) -> data.StructLayout:
    """The ``data`` bits of a ``lut`` parameter word: table entries ``chunk*E ..
    chunk*E + E - 1`` (``E`` = :func:`lut_entries`), entry ``q + 128`` being the output
    of int8 code ``q``."""
    return data.StructLayout({"chunk": unsigned(8),
                              "entries": data.ArrayLayout(signed(8), lut_entries(cfg))})


def gemm_command(cfg: SystolicConfig) -> data.StructLayout:
    """C = requantize(A·B) for an M×K×N GEMM held in the buffers; with ``lut`` set, each
    clamped output code then goes through the activation table (the top bit, so a command
    without it is the same integer as before the table)."""
    return data.StructLayout({
        "m": unsigned(cfg.max_m.bit_length()),
        "k": unsigned(cfg.max_k.bit_length()),
        "n": unsigned(cfg.max_n.bit_length()),
        "input_zero_point": signed(8),
        "output_zero_point": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
        "lut": 1,
    })


def result_word(cfg: SystolicConfig) -> data.StructLayout:
    """``cols`` int8 outputs of one GEMM row, one N tile; ``last`` ends the GEMM."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), cfg.cols), "last": 1})
