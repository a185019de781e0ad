"""hw.words packs and reads engine words exactly as Amaranth's own layouts do."""

import random

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from hw.eie import PRESETS as EIE_PRESETS
from hw.eie.layouts import bcast_layout, cmd_layout, counter_layout, load_layout, result_layout
from hw.systolic import PRESETS as SYSTOLIC_PRESETS
from hw.systolic.layouts import (
    Counters,
    act_word,
    gemm_command,
    param_word,
    result_word,
    weight_word,
)
from hw.words import pack, unpack

LAYOUTS = [
    *(f(cfg) for cfg in (SYSTOLIC_PRESETS["4x4"], SYSTOLIC_PRESETS["8x8"])
      for f in (act_word, weight_word, param_word, gemm_command, result_word)),
    *(f(cfg) for cfg in EIE_PRESETS.values()
      for f in (load_layout, cmd_layout, bcast_layout, result_layout, counter_layout)),
    Counters,
]


def _random(shape, rng):
    """A random value of ``shape``, in range (what Layout.const accepts)."""
    if isinstance(shape, data.ArrayLayout):
        return [_random(shape.elem_shape, rng) for _ in range(shape.length)]
    if isinstance(shape, data.Layout):
        return {name: _random(field.shape, rng) for name, field in shape}
    shape = Shape.cast(shape)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    return rng.randint(lo, lo + (1 << shape.width) - 1)


def _plain(value):
    """An Amaranth ``data.Const`` (or int) as nested dicts and lists of ints."""
    if isinstance(value, data.Const):
        layout = data.Layout.cast(value.shape())
        if isinstance(layout, data.ArrayLayout):
            return [_plain(value[i]) for i in range(layout.length)]
        return {name: _plain(value[name]) for name, _ in layout}
    return int(value)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.size}b")
def test_pack_and_unpack_agree_with_amaranth(layout):
    rng = random.Random(layout.size)
    for _ in range(3):
        value = _random(layout, rng)
        bits = pack(layout, value)
        assert bits == layout.const(value).as_bits()
        assert unpack(layout, bits) == _plain(layout.from_bits(bits)) == value


def test_pack_refuses_unknown_fields():
    with pytest.raises(ValueError, match="no field turbo"):
        pack(Counters, {"turbo": 1})
