"""The accuracy budget for graphs: per-node scans, the search, its refusals."""

import dataclasses

import numpy as np
import pytest

import quantize.graph_sensitivity as gs
from quantize.compress_graph import compress_graph, weight_nodes
from quantize.digits import load_digits_split
from quantize.graph import Graph
from quantize.graph_quant import quantize_graph
from quantize.graph_run import run_graph
from quantize.graph_sensitivity import (
    SPARSITIES,
    bits_scan_graph,
    format_scans,
    prune_scan_graph,
    scan_graph,
    search_graph,
)
from quantize.sensitivity import TOLERANCES, Metric, validation_split
from quantize.share import share_weights
from quantize.train_cnn import init_cnn, teacher, train

#: Short schedules: the tests check the contracts, not the accuracy reached.
FAST = {"prune_steps": 2, "retrain_epochs": 2, "finetune_epochs": 1}


@pytest.fixture(scope="module")
def digits():
    """A 4/8-channel digits CNN trained briefly on the training images; the test images."""
    xtr, ytr, xte, yte = load_digits_split()
    x = xtr.reshape(-1, 1, 8, 8)
    graph = train(init_cnn((1, 8, 8), (4, 8), 10, seed=0), x, ytr, epochs=8, lr=3e-3, seed=0)
    return graph, x, ytr, xte.reshape(-1, 1, 8, 8), yte


def _acc(graph, x, y) -> float:
    return 100.0 * float(np.mean(graph.forward(x).argmax(1) == y))


def test_pruning_curve_is_each_node_alone_magnitude_pruned(digits):
    graph, x, y, *_ = digits
    metric = Metric(x[:300], y[:300])
    curves = prune_scan_graph(graph, metric)
    base = _acc(graph, x[:300], y[:300])
    assert list(curves) == [n.name for n in weight_nodes(graph)]
    for node in weight_nodes(graph):
        assert curves[node.name][0.0] == 0.0          # nothing pruned: the float graph
        assert list(curves[node.name]) == list(SPARSITIES)
        for s in (0.5, 0.9):
            # The definition by hand: zero the round(s * size) smallest |w|, this node only.
            w = node.weight.reshape(-1).copy()
            w[np.argsort(np.abs(w), kind="stable")[:round(s * w.size)]] = 0
            nodes = [n if n.name != node.name else
                     type(n)(n.name, n.op, n.inputs, n.output, n.attrs,
                             {"weight": w.reshape(n.weight.shape), "bias": n.bias})
                     for n in graph.nodes]
            hand = Graph(graph.input_name, graph.input_shape, nodes)
            assert curves[node.name][s] == pytest.approx(base - _acc(hand, x[:300], y[:300]))
    # Pruning every weight of a node but a few is far from harmless.
    assert max(curves[n][0.98] for n in curves) > 20


def test_bits_scan_shares_one_node_and_keeps_its_mask(digits):
    graph, x, y, *_ = digits
    metric = Metric(x[:300], y[:300])
    masks = {n.name: np.abs(n.weight) > np.median(np.abs(n.weight))
             for n in weight_nodes(graph)}
    pruned = graph
    for n in weight_nodes(graph):
        pruned = gs._with_weight(pruned, n.name, np.where(masks[n.name], n.weight, 0))
    drops = bits_scan_graph(pruned, metric, masks, range(2, 5))
    assert {n: list(d) for n, d in drops.items()} == {n: [2, 3, 4] for n in masks}
    assert all(abs(d) <= 100 for v in drops.values() for d in v.values())
    # By hand: conv1 alone shared at 3 bits (entry 0 the pruned 0.0), the rest untouched.
    conv1 = weight_nodes(pruned)[0]
    w = conv1.weight.reshape(conv1.weight.shape[0], -1)
    keep = masks["conv1"].reshape(w.shape)
    shared = share_weights(w, keep, 3, init="linear", reserve_zero=True, seed=0).weight()
    assert np.unique(shared).size <= 8 and not np.any(shared[~keep])
    hand = gs._with_weight(pruned, "conv1", shared)
    base = _acc(pruned, x[:300], y[:300])
    assert drops["conv1"][3] == pytest.approx(base - _acc(hand, x[:300], y[:300]))


def test_candidates_grow_with_the_tolerance(digits):
    graph, x, y, *_ = digits
    curves = prune_scan_graph(graph, Metric(x[:300], y[:300]))
    cands = gs._candidates(graph, curves, 4, 5)
    ratios = [c["predicted_ratio"] for c in cands if c["predicted_ratio"] is not None]
    assert ratios == sorted(ratios, reverse=True)
    assert cands[-1]["sparsity"] == dict.fromkeys(curves, 0.0)
    by_t = sorted((c for c in cands if c["tolerance"] is not None),
                  key=lambda c: c["tolerance"])
    for a, b in zip(by_t, by_t[1:], strict=False):
        assert all(a["sparsity"][n] <= b["sparsity"][n] for n in curves)
    for c in by_t:
        for n, s in c["sparsity"].items():
            assert curves[n][s] <= c["tolerance"]
    assert max(TOLERANCES) >= max(c["tolerance"] for c in by_t)


def test_chosen_config_holds_the_budget_when_rebuilt_independently(digits, monkeypatch):
    graph, x, y, xte, _ = digits
    seen = []
    real_compress, real_forward = gs.compress_graph, Graph.forward

    def spy_compress(g, sparsity, bits, x_train=None, y_train=None, **kw):
        seen.append(("compress", None if x_train is None else np.array(x_train)))
        return real_compress(g, sparsity, bits, x_train, y_train, **kw)

    def spy_forward(self, inputs):
        seen.append(("forward", np.array(inputs)))
        return real_forward(self, inputs)

    monkeypatch.setattr(gs, "compress_graph", spy_compress)
    monkeypatch.setattr(Graph, "forward", spy_forward)
    found = search_graph(graph, 1.0, x, y, **FAST)
    monkeypatch.undo()
    fit, val = validation_split(len(x), 0.2, 0, y)
    assert np.array_equal(found.fit, fit) and np.array_equal(found.val, val)
    # Retraining sees exactly the fitting rows; every forward pass only training rows.
    train_rows = {r.tobytes() for r in x}
    test_rows = {r.tobytes() for r in xte} - train_rows
    for what, arr in seen:
        if what == "compress":
            assert np.array_equal(arr, x[fit])
        rows = {r.tobytes() for r in arr.reshape(-1, 1, 8, 8)}
        assert rows <= train_rows and not rows & test_rows
    # The choice rebuilt from scratch by compress_graph, scored by hand on the split.
    cg = compress_graph(graph, found.sparsity, found.bits, x[fit], y[fit], seed=0,
                        prune_steps=2, retrain_epochs=2, finetune_epochs=1)
    float_val = _acc(graph, x[val], y[val])
    final_val = _acc(cg.graph, x[val], y[val])
    assert found.float_val == pytest.approx(float_val)
    assert found.final_val == pytest.approx(final_val)
    assert float_val - final_val <= 1.0 and found.within_budget
    assert found.compressed.totals()["ratio_pq"] == pytest.approx(cg.totals()["ratio_pq"])
    for n in weight_nodes(cg.graph):
        kept = np.count_nonzero(cg.masks[n.name])
        assert kept == n.weight.size - round(found.sparsity[n.name] * n.weight.size)
        assert np.unique(n.weight).size <= 2 ** found.bits[n.name]
    assert "MISSED" not in found.summary() and "kept" in found.summary()
    # Each node starts at its smallest width within the budget alone, and only widens.
    for n, drops in found.bits_drops.items():
        ok = [b for b, d in drops.items() if d <= 1.0]
        assert found.picks[n] == (min(ok) if ok else 8) <= found.bits[n]


def test_a_larger_budget_compresses_more(digits):
    graph, x, y, *_ = digits
    tight = search_graph(graph, 0.0, x, y, **FAST)
    loose = search_graph(graph, 100.0, x, y, **FAST)
    assert tight.final_val >= tight.float_val
    # Every drop is at most the float accuracy, so 100 points takes the first candidate and
    # the narrowest codebooks.
    assert set(loose.bits.values()) == {2}
    assert loose.sparsity == gs._candidates(graph, loose.prune_curves, 8, 5)[0]["sparsity"]
    ratio = {k: f.compressed.totals()["ratio_pq"] for k, f in (("t", tight), ("l", loose))}
    assert ratio["t"] < ratio["l"]


def test_without_labels_agreement_with_the_float_graph(digits):
    graph, x, *_ = digits
    found = search_graph(graph, 2.0, calibration=x[:400])
    assert found.metric == "agreement with the float model" and found.float_val == 100.0
    _, val = validation_split(400, 0.2, 0)
    assert np.array_equal(found.val, val)
    # Rebuilt without data (magnitude pruning, plain sharing), agreement counted by hand.
    cg = compress_graph(graph, found.sparsity, found.bits)
    agree = _acc(cg.graph, x[val], graph.forward(x[val]).argmax(1))
    assert found.final_val == pytest.approx(agree) and agree >= 98.0 and found.within_budget


def test_a_budget_out_of_reach_is_reported_missed(digits):
    graph, x, *_ = digits
    found = search_graph(graph, 0.0, calibration=x[:400], max_bits=2)
    # Every candidate failed: the last (nothing pruned, the widest bits) is what is left.
    assert found.sparsity == dict.fromkeys(found.sparsity, 0.0)
    assert found.bits == dict.fromkeys(found.bits, 2)
    assert found.final_val < 100.0 and not found.within_budget
    assert "MISSED" in found.summary(labelled=False)


def _int8_acc(graph, calibration, x, y) -> float:
    """The int8 golden model's accuracy, from its definition: quantize, run, count."""
    out = run_graph(quantize_graph(graph, calibration), x, "golden").float_output
    return 100.0 * float(np.mean(out.argmax(1) == y))


def test_int8_judge_applies_the_budget_to_the_int8_golden_model(digits):
    graph, x, y, *_ = digits
    fit, val = validation_split(len(x), 0.2, 0, y)
    cal = x[fit][:500]
    flt = search_graph(graph, 1.5, x, y, **FAST)
    q = search_graph(graph, 1.5, x, y, **FAST, int8_calibration=cal)
    assert flt.final_val_int8 is None and flt.as_dict()["final_val_int8"] is None
    assert q.float_val == pytest.approx(_acc(graph, x[val], y[val]))   # the float reference
    assert q.float_val_int8 == pytest.approx(_int8_acc(graph, cal, x[val], y[val]))
    assert q.final_val_int8 == pytest.approx(_int8_acc(q.compressed.graph, cal, x[val], y[val]))
    assert q.final_val == pytest.approx(_acc(q.compressed.graph, x[val], y[val]))
    assert q.float_val - q.final_val_int8 <= 1.5 and q.within_budget
    assert q.as_dict()["final_val_int8"] == q.final_val_int8 and "int8" in q.summary()
    # Every candidate carries its int8 figure, and only that figure decides: a sharing is
    # widened exactly when its int8 model misses, whatever its float graph scores.
    shared = [t for t in q.tried if "bits" in t and t["sparsity"] == q.sparsity]
    assert all("pruned_val_int8" in t or "shared_val_int8" in t for t in q.tried)
    assert [q.float_val - t["shared_val_int8"] <= 1.5 for t in shared] == \
        [False] * (len(shared) - 1) + [True]
    # Here the float judge keeps a sharing whose int8 model misses the budget; the int8
    # judge rejects that same sharing and widens it.
    assert flt.within_budget and flt.sparsity == q.sparsity and flt.bits != q.bits
    assert flt.float_val - _int8_acc(flt.compressed.graph, cal, x[val], y[val]) > 1.5
    rejected = next(t for t in shared if t["bits"] == flt.bits)
    assert rejected["shared_val"] == pytest.approx(flt.final_val)
    assert q.float_val - rejected["shared_val_int8"] > 1.5


def test_int8_alone_missing_the_budget_is_one_line(digits):
    graph, x, y, *_ = digits
    # One darkened calibration image: real inputs saturate the int8 ranges it sets.
    with pytest.raises(ValueError, match=r"uncompressed graph in int8 already loses "
                                         r"[0-9.]+ points .* larger --max-loss") as err:
        search_graph(graph, 1.0, x, y, **FAST, int8_calibration=x[:1] * 0.1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="int8 calibration: inputs of shape"):
        search_graph(graph, 1.0, x, y, int8_calibration=x[:4, :, :7])
    with pytest.raises(ValueError, match="give int8_calibration"):
        search_graph(graph, 1.0, x, y, winograd=True)


def test_scans_and_their_table(digits):
    graph, x, y, *_ = digits
    scans = scan_graph(graph, x, y, max_loss=1.0, max_bits=5)
    assert scans.val_size + scans.fit_size == len(x)
    for n, drops in scans.bits_drops.items():
        ok = [b for b, d in drops.items() if d <= 1.0]
        assert scans.bits[n] == (min(ok) if ok else 5)
    text = format_scans(scans.prune_curves, scans.bits_drops, scans.bits, 1.0)
    lines = text.splitlines()
    assert len(lines) == 2 + len(SPARSITIES) + 2 + 4 + 1
    assert all(n in lines[1] for n in ("conv1", "conv2", "fc"))
    assert lines[-1].startswith("smallest bits within 1 points: conv1=")


@pytest.mark.parametrize("kwargs, match", [
    ({"max_loss": -1.0}, "non-negative"),
    ({"max_loss": float("nan")}, "non-negative"),
    ({"max_bits": 9}, "max_bits 9"),
    ({"y_train": "short"}, "one label per input"),
    ({"y_train": "float"}, "integers"),
    ({"y_train": "eleven"}, r"labels must be 0\.\.9"),
    ({"x_train": None, "y_train": None}, "--calibration"),
    ({"x_train": "tiny", "y_train": "tiny"}, "empty split"),
    ({"x_train": "shape"}, "input shape"),
    ({"val_fraction": 1.0}, "between 0 and 1"),
])
def test_bad_input_is_a_one_line_value_error(digits, kwargs, match):
    graph, x, y, *_ = digits
    args = {"max_loss": 0.5, "x_train": x[:50], "y_train": y[:50]}
    special = {"short": y[:49], "float": y[:50].astype(float), "eleven": np.full(50, 10),
               "tiny": None, "shape": x[:50, :, :7, :]}
    for k, v in kwargs.items():
        args[k] = special.get(v, v) if isinstance(v, str) else v
    if kwargs.get("x_train") == "tiny":
        args["x_train"], args["y_train"] = x[:3], y[:3]
        args["val_fraction"] = 0.1
    max_loss = args.pop("max_loss")
    with pytest.raises(ValueError, match=match) as err:
        search_graph(graph, max_loss, **args)
    assert "\n" not in str(err.value)


def test_distillation_targets_are_the_float_graph_on_the_fitting_rows(digits, monkeypatch):
    graph, x, y, *_ = digits
    calls = []
    real = gs.compress_graph

    def spy(*args, **kw):
        calls.append(kw["distill"])
        return real(*args, **kw)

    monkeypatch.setattr(gs, "compress_graph", spy)
    found = search_graph(graph, 100.0, x, y, distill=(4.0, 0.5), **FAST)
    want = teacher(graph, x[found.fit], 4.0, 0.5)
    assert calls and all(d is not None and np.array_equal(d.logits, want.logits)
                         and (d.temperature, d.weight) == (4.0, 0.5) for d in calls)
    with pytest.raises(ValueError, match="distillation retrains"):
        search_graph(graph, 1.0, calibration=x[:100], distill=(4.0, 0.5))


def test_sharing_reuses_the_pruned_graph_unless_its_masks_differ(digits):
    graph, *_ = digits
    sparsity, bits = {"conv1": 0.3, "conv2": 0.5, "fc": 0.5}, {"conv1": 5, "conv2": 4, "fc": 4}
    opts = {"index_bits": 5, "prune_steps": 1, "retrain_epochs": 0, "init": "linear",
            "seed": 0, "distill": None}
    pruned = compress_graph(graph, sparsity, 8)
    shared = gs._share(graph, pruned, sparsity, bits, None, None, 0, opts)
    assert shared.original is graph and shared.pruned is pruned.pruned
    direct = compress_graph(graph, sparsity, bits)
    for n, m in direct.masks.items():
        assert np.array_equal(shared.masks[n], m)
        assert np.array_equal(shared.shared[n].weight(), direct.shared[n].weight())
    # A kept weight that became exactly 0 would be taken for a pruned one: prune afresh.
    w = pruned.pruned.nodes[0].weight.copy()
    w.reshape(-1)[np.flatnonzero(pruned.masks["conv1"])[0]] = 0
    odd = dataclasses.replace(pruned, pruned=gs._with_weight(pruned.pruned, "conv1", w))
    again = gs._share(graph, odd, sparsity, bits, None, None, 0, opts)
    assert again.pruned is not odd.pruned
    assert all(np.array_equal(again.masks[n], m) for n, m in direct.masks.items())
