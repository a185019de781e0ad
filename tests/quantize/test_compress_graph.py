"""Deep Compression of graph weight layers: pruned weights exactly 0 at the stated sparsity
(conv kernels as O x (C·kh·kw), depthwise included), at most 2**bits values per shared layer,
storage figures equal to a hand count, retraining and centroid fine-tuning keep the zeros,
and one-line errors for bad arguments."""

import numpy as np
import pytest

from quantize.compress_graph import compress_graph
from quantize.digits import load_digits_split
from quantize.graph import Graph, Node
from quantize.train_cnn import init_cnn


def weights(graph) -> dict:
    return {n.name: n.weight for n in graph.nodes if n.weight is not None}


def depthwise_graph() -> Graph:
    rng = np.random.default_rng(3)
    return Graph("x", (4, 6, 6), [
        Node("dw", "Conv2d", "x", "dw", {"pads": (1, 1, 1, 1), "groups": 4},
             {"weight": rng.standard_normal((8, 1, 3, 3)), "bias": np.zeros(8)}),
        Node("pw", "Conv2d", "dw", "pw", {},
             {"weight": rng.standard_normal((6, 8, 1, 1)), "bias": np.zeros(6)}),
        Node("gap", "GlobalAveragePool", "pw", "gap"),
        Node("flat", "Flatten", "gap", "flat"),
        Node("fc", "Linear", "flat", "fc", {},
             {"weight": rng.standard_normal((3, 6)), "bias": np.zeros(3)}),
    ])


@pytest.mark.parametrize("graph, sparsity", [
    (init_cnn((1, 8, 8), (4, 8)), {"conv1": 0.5, "conv2": 0.7, "fc": 0.9}),
    (depthwise_graph(), {"dw": 0.6, "pw": 0.5, "fc": 0.25}),
    (init_cnn((1, 8, 8), (4, 8)), 0.65),
])
def test_pruned_weights_are_exactly_zero_at_the_stated_sparsity(graph, sparsity):
    c = compress_graph(graph, sparsity, bits=4)
    before = weights(graph)
    for name, w in weights(c.graph).items():
        s = sparsity[name] if isinstance(sparsity, dict) else sparsity
        assert np.count_nonzero(w == 0) == round(s * w.size), name
        assert np.count_nonzero(weights(c.pruned)[name] == 0) == round(s * w.size), name
        assert np.array_equal(w != 0, c.masks[name]), name
        # the largest magnitudes survive: every kept |w| >= every pruned |w|
        mags = np.abs(before[name])
        assert mags[c.masks[name]].min() >= mags[~c.masks[name]].max(), name
    assert c.ops.get("dw", "Conv2d (depthwise)") == "Conv2d (depthwise)"


def test_shared_layers_take_at_most_2_to_the_bits_values():
    graph = init_cnn((1, 8, 8), (8, 16))
    bits = {"conv1": 2, "conv2": 3, "fc": 4}
    c = compress_graph(graph, {"conv1": 0.3, "conv2": 0.6, "fc": 0.5}, bits)
    for name, w in weights(c.graph).items():
        values = np.unique(w)
        assert values.size <= 2 ** bits[name], name
        # more values than a coarser codebook would allow: sharing used its entries
        assert values.size > 2 ** (bits[name] - 1), name
        assert set(values.tolist()) <= set(c.shared[name].codebook.tolist()), name
        assert c.shared[name].codebook[0] == 0.0
    rows = {r.name: r for r in c.storage}
    assert [rows[k].bits for k in bits] == list(bits.values())
    assert "conv2" in c.table() and "total" in c.table()


#: A 2x4 weight whose 4 smallest magnitudes go at 50 % sparsity.
TINY = np.array([[1.0, 0.01, 0.02, 2.0], [0.03, 0.04, 3.0, 0.05]], np.float32)


def tiny_graphs() -> list:
    linear = Graph("x", (4,), [Node("layer", "Linear", "x", "layer", {},
                                    {"weight": TINY, "bias": np.zeros(2)})])
    conv = Graph("x", (1, 2, 2), [Node("layer", "Conv2d", "x", "layer", {},
                                       {"weight": TINY.reshape(2, 1, 2, 2),
                                        "bias": np.zeros(2)})])
    return [linear, conv]


@pytest.mark.parametrize("index", [0, 1], ids=["linear", "conv"])
def test_storage_equals_a_hand_count_on_a_tiny_layer(index):
    c = compress_graph(tiny_graphs()[index], 0.5, bits=2, index_bits=2)
    # Kept: 1.0, 2.0, 3.0, 0.05. Reserving entry 0 for 0.0 leaves 3 clusters; k-means from
    # [0.05, 1.525, 3.0] settles at {0.05}, {1.0, 2.0} -> 1.5, {3.0}.
    np.testing.assert_array_equal(c.graph.nodes[0].weight.reshape(2, 4),
                                  np.float32([[1.5, 0, 0, 1.5], [0, 0, 3.0, 0.05]]))
    (r,) = c.storage
    # Column-major mask 1,0 | 0,0 | 0,1 | 1,1: the gap of 4 before (1,2) exceeds
    # 2**2 - 1, so one filler entry: 5 entries.
    assert (r.weights, r.kept, r.fillers) == (8, 4, 1)
    assert r.dense_bits == 8 * 32
    assert r.pruned_bits == 5 * (32 + 2)
    assert r.pq_bits == 5 * (2 + 2) + 4 * 32
    # Huffman: codebook indices 2, 0 (filler), 3, 2, 1 -> four symbols, 2 bits each;
    # runs 0, 3 (filler), 0, 0, 0 -> two symbols, 1 bit each; plus the codebook and
    # 8-bit code-length tables for 4 + 4 symbols.
    assert r.huffman_bits == 5 * 2 + 5 * 1 + 4 * 32 + (4 + 4) * 8
    assert r.ratios()["pq"] == 256 / 148
    assert c.totals()["huffman_bits"] == 207


def test_retraining_and_centroid_finetuning_keep_the_zeros():
    x, y, _, _ = load_digits_split()
    x, y = x[:240].reshape(-1, 1, 8, 8), y[:240]
    graph = init_cnn((1, 8, 8), (4,))
    sparsity = {"conv1": 0.5, "fc": 0.8}
    c = compress_graph(graph, sparsity, 3, x, y, prune_steps=2, retrain_epochs=2,
                       finetune_epochs=1)
    plain = compress_graph(graph, sparsity, 3)
    for name, w in weights(c.graph).items():
        n_zero = round(sparsity[name] * w.size)
        assert np.count_nonzero(weights(c.pruned)[name] == 0) == n_zero, name
        assert np.count_nonzero(w == 0) == n_zero, name
        assert np.array_equal(w != 0, c.masks[name]), name
        assert np.unique(w).size <= 2 ** 3, name
        # retraining moved the kept weights (pruning alone leaves them as they were)
        kept = c.masks[name]
        assert not np.allclose(weights(c.pruned)[name][kept], weights(plain.pruned)[name][kept])
    assert set(c.log) == {"float_train_accuracy", "pruned_train_accuracy",
                          "shared_train_accuracy", "final_train_accuracy"}
    # fine-tuning moved the codebook away from the k-means centroids of the retrained weights
    assert not np.array_equal(weights(c.graph)["fc"][c.masks["fc"]],
                              compress_graph(c.pruned, sparsity, 3).graph.nodes[-1]
                              .weight[c.masks["fc"]])


def no_weights() -> Graph:
    return Graph("x", (4,), [Node("r", "Relu", "x", "r")])


@pytest.mark.parametrize("graph, kwargs, match", [
    (None, {"sparsity": 1.0}, r"sparsity for node 'conv1' is 1\.0; use a number in \[0, 1\)"),
    (None, {"sparsity": -0.1}, r"sparsity for node 'conv1' is -0\.1"),
    (None, {"sparsity": {"fc": 1.5}}, r"sparsity for node 'fc' is 1\.5"),
    (None, {"sparsity": {"conv9": 0.5}}, r"names node 'conv9', which is not in the graph; "
                                         r"weight nodes: conv1, fc"),
    (None, {"sparsity": {"pool1": 0.5}}, r"names node 'pool1' \(MaxPool2d\), which has no "
                                         r"weights; give it for conv1, fc"),
    (None, {"bits": {"conv1": 4}}, r"bits gives no codebook width for node 'fc'"),
    (None, {"bits": 9}, r"bits for node 'conv1' is 9; use an integer in 2\.\.8"),
    (None, {"bits": {"relu1": 4}}, r"names node 'relu1' \(Relu\), which has no weights"),
    (no_weights(), {"sparsity": 0.5}, r"the graph has no Conv2d or Linear node"),
    (depthwise_graph(), {"sparsity": 0.5, "x_train": np.zeros((2, 4, 6, 6)),
                         "y_train": np.zeros(2)}, r"node 'dw' \(Conv2d\): groups=4; the "
                                                  r"trainer takes groups=1"),
    (None, {"x_train": np.zeros((2, 64))}, r"give both x_train and y_train"),
    (None, {"x_train": np.zeros((2, 60)), "y_train": np.zeros(2)},
     r"training inputs of shape \(2, 60\) do not split into samples of the graph's input "
     r"shape \(1, 8, 8\)"),
])
def test_bad_input_is_a_one_line_value_error(graph, kwargs, match):
    graph = graph or init_cnn((1, 8, 8), (4,))
    with pytest.raises(ValueError, match=match) as e:
        compress_graph(graph, **kwargs)
    assert "\n" not in str(e.value)
