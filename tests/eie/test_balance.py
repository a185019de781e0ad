"""Row assignment by load (beyond EIE): same results, busiest PE no worse."""

import numpy as np

from hw.eie import EieConfig
from hw.eie.csc import balanced_row_order
from hw.eie.driver import balance_layers, build_image, work_cycles
from sim.eie import run_layers
from sim.golden import eie as golden


def test_order_is_a_placement():
    rng = np.random.default_rng(0)
    idx = (rng.random((37, 20)) < rng.random((37, 1))).astype(np.uint8)
    order = balanced_row_order(idx, 4)
    assert len(order) == 40 and sorted(order[order >= 0].tolist()) == list(range(37))
    loads = np.zeros(4)
    for k, row in enumerate(order.tolist()):
        if row >= 0:
            loads[k % 4] += np.count_nonzero(idx[row])
    per_pe_interleaved = [np.count_nonzero(idx[p::4]) for p in range(4)]
    assert loads.max() <= max(per_pe_interleaved)


def test_balanced_chain_matches_golden():
    config = EieConfig(pes=4)
    rng = np.random.default_rng(1)
    sizes = [30, 23, 9]
    layers = []
    for k in range(2):
        density = rng.random((sizes[k + 1], 1)) * 0.6     # uneven rows
        idx = ((rng.random((sizes[k + 1], sizes[k])) < density)
               * rng.integers(1, 16, (sizes[k + 1], sizes[k]))).astype(np.uint8)
        layers.append({"indices": idx, "codebook": np.r_[0, np.arange(1, 16) * 300 - 2000],
                       "bias": rng.integers(-100, 100, sizes[k + 1]), "relu": k == 0})
    acts = rng.integers(-3000, 3000, sizes[0])
    want = golden.run([{"weights": lay["indices"], "codebook": lay["codebook"],
                        "bias": lay["bias"], "relu": lay["relu"]} for lay in layers],
                      acts, config)
    got = run_layers(config, layers, acts, balance=True)
    assert got["outputs"] == want[-1].tolist()
    assert got["layer_outputs"][0] == want[0].tolist()
    engine_layers, orders = balance_layers(config, layers)
    # The engine's inputs of each layer: the previous layer's outputs in engine row order.
    plain = work_cycles(build_image(config, layers), [acts] + want[:-1])
    moved = [acts] + [np.where(order >= 0, w[np.maximum(order, 0)], 0)
                      for w, order in zip(want[:-1], orders[:-1], strict=True)]
    balanced = work_cycles(build_image(config, engine_layers), moved)
    # The busiest PE has less work than with rows assigned i mod pes.
    assert 0 < balanced.max() < plain.max()
    # Every layer holds each of its rows once, and computes the original layer's outputs
    # in its row order from inputs in the previous order: W_e x_e = (W x)[order], with any
    # value at all in the unused inputs (they must meet only zero weights).
    cols = [np.arange(sizes[0])] + orders[:-1]
    check = np.random.default_rng(2)
    for spec, engine, order, col in zip(layers, engine_layers, orders, cols, strict=True):
        keep, kept = order >= 0, col >= 0
        assert sorted(order[keep].tolist()) == list(range(spec["indices"].shape[0]))
        assert not engine["indices"][~keep].any()
        weights = spec["codebook"][spec["indices"]]
        engine_weights = spec["codebook"][engine["indices"]]
        x = check.integers(1, 1000, spec["indices"].shape[1])
        x_engine = np.where(kept, x[np.maximum(col, 0)], check.integers(1, 1000, len(col)))
        y_engine = engine_weights @ x_engine
        assert np.array_equal(y_engine[keep], (weights @ x)[order[keep]])
        assert not y_engine[~keep].any() and not np.count_nonzero(engine["bias"][~keep])
