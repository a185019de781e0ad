"""Row assignment by load (beyond EIE): same results, busiest PE no worse."""

import numpy as np

from hw.eie import EieConfig
from quantize.csc import balanced_row_order
from sim.eie import balance_layers, build_image, run_layers, work_cycles
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
    engine_layers, _ = balance_layers(config, layers)
    inputs = [acts] + want[:-1]
    plain = work_cycles(build_image(config, layers), inputs)
    assert plain.sum() > 0 and engine_layers[0]["indices"].shape[0] % 4 == 0
