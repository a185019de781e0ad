"""Tucker-2 ranks chosen on validation data (quantize.tucker.choose_ranks) on a small CNN:
the choice is the fewest-weight candidate within the budget, every cheaper candidate misses
it, an impossible budget keeps the layer whole, and the scan's figures reproduce."""

import numpy as np
import pytest

from quantize.digits import load_digits_split
from quantize.train_cnn import accuracy, init_cnn, train
from quantize.tucker import choose_ranks, rank_grid, tucker2, tucker_graph, tucker_params


@pytest.fixture(scope="module")
def small():
    xtr, ytr, _, _ = load_digits_split()
    x = xtr.reshape(-1, 1, 8, 8).astype(np.float32)
    fit, val = slice(0, 400), slice(400, 560)
    g = train(init_cnn((1, 8, 8), (4, 8), 10, seed=0), x[fit], ytr[fit], epochs=15, seed=0)
    return g, x[fit], ytr[fit], x[val], ytr[val]


def test_rank_grid_is_smaller_than_the_layer_and_sorted():
    grid = rank_grid((32, 16, 3, 3))
    params = [tucker_params((32, 16, 3, 3), *r) for r in grid]
    assert params == sorted(params) and max(params) < 32 * 16 * 9
    assert (4, 2) in grid and (16, 8) in grid and (24, 12) in grid
    # (24, 2): a 24 x 2 x 3 x 3 core has output-mode rank at most 18.
    assert (24, 2) not in grid and (4, 12) in grid and (4, 2) in grid
    with pytest.raises(ValueError, match=r"r_out <= 9\*r_in"):
        tucker2(np.ones((32, 16, 3, 3)), 24, 2)


def test_choice_honours_the_budget(small):
    g, xf, yf, xv, yv = small
    res = choose_ranks(g, "conv2", xf, yf, xv, yv, budget=0.05, epochs=2)
    assert res["reference_accuracy"] == accuracy(g, xv, yv)
    assert res["validation_images"] == 160
    scan = res["scan"]
    assert [r["ranks"] for r in scan] == [list(r) for r in rank_grid((8, 4, 3, 3))]
    floor = res["reference_accuracy"] - 0.05
    assert res["ranks"] is not None
    chosen = next(r for r in scan if tuple(r["ranks"]) == res["ranks"])
    assert chosen["validation_accuracy"] >= floor
    # Every candidate with fewer weights than the chosen one misses the budget.
    cheaper = [r for r in scan if r["params"] < chosen["params"]]
    assert all(r["validation_accuracy"] < floor for r in cheaper)
    # The figure reproduces: factor, fine-tune with the same seed, score.
    tg, _ = tucker_graph(g, {"conv2": res["ranks"]})
    tg = train(tg, xf, yf, epochs=2, lr=1e-3, seed=0)
    assert accuracy(tg, xv, yv) == chosen["validation_accuracy"]


def test_extreme_budgets(small):
    g, xf, yf, xv, yv = small
    cands = [(6, 3), (1, 1)]
    # A budget that takes anything takes the fewest weights.
    assert choose_ranks(g, "conv2", xf, yf, xv, yv, cands, budget=1.0, epochs=1)["ranks"] \
        == (1, 1)
    # Demanding a point more than the unfactored graph: nothing qualifies, keep it whole.
    res = choose_ranks(g, "conv2", xf, yf, xv, yv, cands, budget=-0.01 - 1.0, epochs=1)
    assert res["ranks"] is None and len(res["scan"]) == 2
    with pytest.raises(ValueError, match="not a groups=1 Conv2d"):
        choose_ranks(g, "fc", xf, yf, xv, yv)
