"""EieConfig validation, image building and its errors."""

import numpy as np
import pytest

from hw.eie import PRESETS, EieConfig, EieTop
from hw.eie.layouts import counter_layout
from sim.eie import build_image, load_beats, run_layers


def test_defaults_and_eie_preset():
    c = EieConfig(pes=64)
    assert c.entries_per_word == 8 and c.codebook_size == 16 and c.queue_depth == 8
    assert EieConfig(pes=7).pes == 7


@pytest.mark.parametrize("kwargs,match", [
    ({"pes": 0}, "pes=0"),
    ({"word_bits": 48}, "power-of-two"),
    ({"ptr_depth": 7}, "even"),
    ({"acc_width": 20}, "use at least"),
    ({"act_frac": 16}, "act_frac"),
    ({"queue_depth": 0}, "queue_depth"),
])
def test_invalid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EieConfig(**kwargs)


def _layer(rows, cols, density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    idx = ((rng.random((rows, cols)) < density) * rng.integers(1, 16, (rows, cols)))
    return {"indices": idx.astype(np.uint8), "codebook": np.arange(16) * 10}


def test_memory_too_small_says_which():
    config = EieConfig(pes=2, spmat_depth=4, ptr_depth=64, act_depth=64, bias_depth=64)
    with pytest.raises(ValueError, match="sparse-matrix memory: PE . needs .* words"):
        build_image(config, [_layer(40, 20, 1.0)])
    with pytest.raises(ValueError, match="act_depth >= 100"):
        build_image(EieConfig(pes=2, act_depth=64), [_layer(200, 10)])
    with pytest.raises(ValueError, match="pointer memory"):
        build_image(EieConfig(pes=2, ptr_depth=16, act_depth=64),
                    [_layer(10, 10), _layer(10, 10)])


def test_image_for_another_config():
    image = build_image(PRESETS["test4"], [_layer(8, 8)])
    with pytest.raises(ValueError, match="built for"):
        run_layers(PRESETS["test16"], [_layer(8, 8)], np.ones(8, dtype=np.int64), image=image)


def test_chained_sizes_checked():
    with pytest.raises(ValueError, match="layer 1 has 9 inputs"):
        build_image(PRESETS["test4"], [_layer(8, 8), _layer(8, 9)])


def test_load_beats_cover_memories():
    config = PRESETS["test4"]
    image = build_image(config, [_layer(13, 11)])
    beats = load_beats(image, np.arange(11))
    pairs = -(-image.pointers.shape[1] // 2)
    assert len(beats) == image.spmat.shape[1] + pairs + image.bias.shape[1] + 3 + 16


def test_top_elaborates():
    from sim.rtl import to_verilog
    text = to_verilog(EieTop(EieConfig(pes=2, spmat_depth=16, ptr_depth=16, act_depth=8,
                                       bias_depth=8)), "eie_top")
    assert "module eie_top" in text and "i_load__payload" in text


@pytest.mark.parametrize("pes", [1, 3])
def test_counters_parse_per_pe_at_any_pe_count(pes):
    from sim.eie import parse_counters
    config = EieConfig(pes=pes)
    layout = counter_layout(config)
    value = 0
    for k in range(pes):            # busy of PE k = 10 + k, bubble = 20 + k
        value |= (10 + k) << (layout["busy"].offset + 32 * k)
        value |= (20 + k) << (layout["bubble"].offset + 32 * k)
    value |= 7 << layout["cycles"].offset
    got = parse_counters(config, value)
    assert got["cycles"] == 7
    assert got["busy"] == [10 + k for k in range(pes)]
    assert got["bubble"] == [20 + k for k in range(pes)]
