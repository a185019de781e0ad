"""The accuracy budget: validation split, sensitivity scans, per-layer bits, distillation."""

import numpy as np
import pytest

from nnaccel.cli import main
from quantize.commands import compress_to_image
from quantize.compress import CompressSpec, compress, parse_bits
from quantize.digits import load_digits_split
from quantize.image import load_image
from quantize.run import run_image
from quantize.sensitivity import (
    Metric,
    bits_scan,
    build,
    folds,
    pick_bits,
    prune_scan,
    search,
    search_methods,
    validation_split,
)
from quantize.ternary import QuantSpec, quantize_mlp
from quantize.train import gradients, init_mlp, loss_and_logit_grad, train

#: Short schedules: the tests check the contracts, not the accuracy reached.
FAST = {"retrain_epochs": 3, "prune_steps": 2, "finetune_epochs": 3}


@pytest.fixture(scope="module")
def digits():
    xtr, ytr, xte, yte = load_digits_split()
    model = train(init_mlp([64, 32, 16, 10], seed=0), xtr, ytr, epochs=15)
    return model, xtr, ytr, xte, yte


def test_split_is_seeded_disjoint_and_stratified():
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    fit, val = validation_split(len(y), 0.2, 3, y)
    again_fit, again_val = validation_split(len(y), 0.2, 3, y)
    assert np.array_equal(val, again_val) and np.array_equal(fit, again_fit)
    assert not np.array_equal(val, validation_split(len(y), 0.2, 4, y)[1])
    assert np.intersect1d(fit, val).size == 0
    assert np.array_equal(np.union1d(fit, val), np.arange(len(y)))
    assert [int(np.sum(y[val] == c)) for c in range(5)] == [2, 4, 6, 8, 10]
    _, val = validation_split(7, 0.5, 0)            # unlabelled: a seeded permutation
    assert val.size == 4 and val.max() < 7


@pytest.mark.parametrize("fraction, n, match", [(0.0, 10, "between 0 and 1"),
                                                (1.0, 10, "between 0 and 1"),
                                                (0.01, 10, "empty split"),
                                                (0.5, 1, "at least 2")])
def test_split_refusals(fraction, n, match):
    with pytest.raises(ValueError, match=match):
        validation_split(n, fraction, 0)


def test_search_keeps_the_budget_on_the_split(digits):
    model, xtr, ytr, *_ = digits
    spec = CompressSpec(bits=4, reserve_zero=True, **FAST)
    found = search(model, spec, 1.0, xtr, ytr, max_bits=4)
    fit, val = validation_split(len(xtr), 0.2, spec.seed, ytr)
    assert (found.fit_size, found.val_size) == (len(fit), len(val))
    # Recomputed here from the definition, not taken from the search's own figures.
    float_acc = 100 * model.accuracy(xtr[val], ytr[val])
    final_acc = 100 * found.compressed.final.accuracy(xtr[val], ytr[val])
    assert found.within_budget
    assert final_acc >= float_acc - 1.0
    assert found.final_val == pytest.approx(final_acc)
    # The choice prunes something and every layer's width is what the final model holds.
    assert max(found.sparsity.values()) > 0
    for layer, s in zip(found.compressed.final.layers, found.compressed.shared, strict=True):
        assert s.bits == found.bits[layer.name] <= 4
        assert np.unique(layer.weight).size <= 2 ** s.bits
        kept = 1 - s.mask.mean()
        assert kept == pytest.approx(found.sparsity[layer.name], abs=0.01)


def test_search_without_labels_uses_agreement(digits):
    model, xtr, *_ = digits
    spec = CompressSpec(bits=4, **FAST)
    found = search(model, spec, 2.0, calibration=xtr[:600], max_bits=6)
    assert found.metric == "agreement with the float model" and found.float_val == 100.0
    _, val = validation_split(600, 0.2, spec.seed)
    agree = np.mean(found.compressed.final.forward(xtr[val]).argmax(1)
                    == model.forward(xtr[val]).argmax(1))
    assert 100 * agree >= 100.0 - 2.0
    assert found.within_budget


def test_scans_measure_one_layer_at_a_time(digits):
    model, xtr, ytr, *_ = digits
    metric = Metric(xtr[:300], ytr[:300])
    curves = prune_scan(model, metric, sparsities=(0.5, 0.99))
    # Pruning 99 % of the first layer alone costs more than pruning half of it.
    assert curves["fc1"][0.99] > curves["fc1"][0.5]
    drops = bits_scan(model, metric, reserve_zero=False, bits=(2, 8))
    assert set(drops) == {"fc1", "fc2", "fc3"} and set(drops["fc1"]) == {2, 8}
    assert abs(drops["fc2"][8]) <= 1.0
    picks = pick_bits({"a": {2: 3.0, 3: 0.2, 4: 0.0}, "b": {2: 9.0, 3: 9.0, 4: 9.0}}, 0.5, 4)
    assert picks == {"a": 3, "b": 4}


def test_per_layer_bits_distinct_values_and_accounting(digits):
    model, xtr, ytr, *_ = digits
    bits = {"fc1": 2, "fc2": 3, "fc3": 5}
    c = compress(model, CompressSpec(bits="fc1=2,fc2=3,fc3=5", sparsity=0.6), calibration=xtr)
    for layer, s, row in zip(c.final.layers, c.shared, c.storage, strict=True):
        b = bits[layer.name]
        assert s.bits == row.bits == b
        assert np.unique(layer.weight).size <= 2 ** b
        entries = row.kept + row.fillers
        assert row.pq_bits == entries * (b + row.index_bits) + 2 ** b * 32


def test_eie_image_with_narrower_layers(digits, tmp_path):
    model, xtr, ytr, xte, yte = digits
    spec = CompressSpec(bits={"fc1": 2, "fc2": 3, "fc3": 4}, sparsity=0.6, reserve_zero=True)
    c, manifest = compress_to_image(model, "eie", spec, tmp_path / "img", calibration=xtr,
                                    pes=4)
    assert [r["bits"] for r in manifest["compression"]["layers"]] == [2, 3, 4]
    image = load_image(tmp_path / "img")
    for layer, b in zip(image.layers, (2, 3, 4), strict=True):
        codebook = layer["codebook"]
        assert codebook.size == 16 and not codebook[2 ** b:].any() and codebook[0] == 0
    out = run_image(image, xte).outputs
    assert np.mean(out.argmax(1) == c.final.forward(xte).argmax(1)) >= 0.95


def test_parse_bits():
    names = ["fc1", "fc2", "fc3"]
    assert parse_bits(4, names) == {"fc1": 4, "fc2": 4, "fc3": 4}
    assert parse_bits("3,fc2=5", names) == {"fc1": 3, "fc2": 5, "fc3": 3}
    assert parse_bits("fc1=4,fc2=3,fc3=5", names) == {"fc1": 4, "fc2": 3, "fc3": 5}
    for text, match in (("fc9=3", "unknown layers fc9"), ("fc1=3", "no width for fc2, fc3"),
                        ("fc1=x", "layer=bits"), ("9", "use 2 to 8"), ("fc1=1,4", "fc1 is 1")):
        with pytest.raises(ValueError, match=match):
            parse_bits(text, names)


def test_distillation_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    teacher = 3 * rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    for t, a in ((1.0, 0.0), (2.0, 0.3), (4.0, 1.0)):
        _, g = loss_and_logit_grad(z, y, teacher, t, a)
        num = np.zeros_like(z)
        eps = 1e-6
        for idx in np.ndindex(z.shape):
            dz = np.zeros_like(z)
            dz[idx] = eps
            num[idx] = (loss_and_logit_grad(z + dz, y, teacher, t, a)[0]
                        - loss_and_logit_grad(z - dz, y, teacher, t, a)[0]) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)
    # The definition: weight 1 leaves the soft term alone, T² · KL with its T · (p_T − q).
    loss, g = loss_and_logit_grad(z, y, teacher, 2.0, 1.0)
    q = np.exp(teacher / 2) / np.exp(teacher / 2).sum(1, keepdims=True)
    p = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)
    assert loss == pytest.approx(4 * np.mean(np.sum(q * np.log(q / p), axis=1)))
    np.testing.assert_allclose(g, 2 * (p - q) / 5, rtol=1e-12)


def test_distillation_reaches_the_weights():
    """The layers' gradients follow the distilled logit gradient through backprop."""
    rng = np.random.default_rng(1)
    model = init_mlp([6, 5, 3], seed=2)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    teacher = rng.standard_normal((4, 3))
    _, grads = gradients(model, x, y, teacher, 3.0, 0.7)
    layer = model.layers[1]
    eps = 1e-3
    for i, j in ((0, 0), (2, 4)):
        w0 = layer.weight[i, j]
        vals = []
        for d in (eps, -eps):
            layer.weight[i, j] = w0 + d
            vals.append(loss_and_logit_grad(model.forward(x).astype(np.float64), y, teacher,
                                            3.0, 0.7)[0])
        layer.weight[i, j] = w0
        assert grads[1][0][i, j] == pytest.approx((vals[0] - vals[1]) / (2 * eps), rel=2e-2,
                                                  abs=1e-5)


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    model, xtr, ytr, xte, yte = digits
    d = tmp_path_factory.mktemp("budget")
    np.savez(d / "m.npz", **{f"{layer.name}.{k}": getattr(layer, k)
                             for layer in model.layers for k in ("weight", "bias")})
    for name, a in (("xtr", xtr), ("ytr", ytr), ("xte", xte), ("yte", yte)):
        np.save(d / f"{name}.npy", a)
    return d


def test_cli_split_never_sees_the_test_data(files, capsys):
    d = files
    base = ["compress", str(d / "m.npz"), "--engine", "eie", "--pes", "4", "--train",
            str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--max-loss", "2",
            "--epochs", "2"]
    assert main([*base, "-o", str(d / "a")]) == 0
    plain = capsys.readouterr().out
    assert main([*base, "--test", str(d / "xte.npy"), "--test-labels", str(d / "yte.npy"),
                 "-o", str(d / "b")]) == 0
    tested = capsys.readouterr().out
    assert "5-fold estimate (1437 training inputs, seed 0" in plain
    chosen = [line for line in plain.splitlines() if line.startswith("chosen:")]
    assert chosen and chosen == [line for line in tested.splitlines()
                                 if line.startswith("chosen:")]
    assert "test (360 inputs)" in tested and "test (" not in plain
    a, b = load_image(d / "a"), load_image(d / "b")
    assert [x["codebook"].tolist() for x in a.layers] == \
        [x["codebook"].tolist() for x in b.layers]


def test_cli_sensitivity_report(files, capsys):
    d = files
    assert main(["compress", str(d / "m.npz"), "--engine", "systolic", "--calibration",
                 str(d / "xtr.npy"), "--sensitivity"]) == 0
    out = capsys.readouterr().out
    assert "one layer pruned at a time" in out and "one layer shared at a time" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows if "." not in r[0]] == [str(b) for b in range(2, 9)]
    assert "smallest bits within 0.5 points: fc1=" in out


@pytest.mark.parametrize("flags, match", [
    (["--folds", "3", "--train", "xtr.npy", "--labels", "ytr.npy"], "give both"),
    (["--max-loss", "1", "--folds", "1", "--train", "xtr.npy", "--labels", "ytr.npy"],
     "use 2 or more"),
    (["--max-loss", "1", "--val-fraction", "0.3", "--train", "xtr.npy", "--labels", "ytr.npy"],
     "drop --val-fraction"),
    (["--max-loss", "1", "--binary", "--train", "xtr.npy", "--labels", "ytr.npy"],
     "leaves nothing to choose"),
    (["--max-loss", "1", "--low-rank-energy", "0.9", "--train", "xtr.npy", "--labels",
      "ytr.npy"], "leaves nothing to choose"),
    (["--max-loss", "1", "--ternary", "--calibration", "xtr.npy"], "give --train and"),
    (["--max-loss", "0.5", "--sparsity", "0.9", "--train", "xtr.npy", "--labels", "ytr.npy"],
     "drop --sparsity"),
    (["--max-loss", "0.5"], "give --train/--labels or --calibration"),
    (["--max-loss", "-1", "--calibration", "xtr.npy"], "non-negative"),
    (["--distill", "--calibration", "xtr.npy"], "give --train and --labels"),
    (["--temperature", "2", "--calibration", "xtr.npy"], "add --distill"),
    (["--distill", "--distill-weight", "2", "--train", "xtr.npy", "--labels", "ytr.npy"],
     "in \\[0, 1\\]"),
    (["--bits", "fc1=3,fc9=4", "--calibration", "xtr.npy"], "unknown layers fc9"),
    (["--bits", "fc1=5,fc2=4,fc3=4", "--calibration", "xtr.npy"], "use 2 to 4 bits"),
    (["--val-fraction", "0.3", "--calibration", "xtr.npy"], "give one of them"),
    (["--test", "xte.npy", "--calibration", "xtr.npy"], "go together"),
    (["--max-loss", "1", "--bits", "fc1=3,4", "--calibration", "xtr.npy"], "one --bits"),
])
def test_bad_budget_flags_one_line(files, capsys, flags, match):
    import re
    d = files
    flags = [str(d / f) if f.endswith(".npy") else f for f in flags]
    assert main(["compress", str(d / "m.npz"), "--engine", "eie", *flags, "-o",
                 str(d / "bad")]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("[compress")]        # progress lines, not the error
    assert len(err) == 1 and re.search(match, err[0]), err


def test_refinement_only_prunes_further(digits):
    model, xtr, ytr, *_ = digits
    spec = CompressSpec(bits=4, reserve_zero=True, **FAST)
    plain = search(model, spec, 1.0, xtr, ytr, max_bits=4)
    refined = search(model, spec, 1.0, xtr, ytr, max_bits=4, refine=True)
    assert refined.within_budget
    assert all(refined.sparsity[n] >= plain.sparsity[n] for n in plain.sparsity)
    assert len(refined.tried) >= len(plain.tried)


def test_folds_cover_every_row_once_and_spread_each_class():
    y = np.repeat(np.arange(4), [10, 21, 30, 9])
    split = folds(len(y), 5, 3, y)
    assert len(split) == 5
    vals = np.concatenate([val for _, val in split])
    assert np.array_equal(np.sort(vals), np.arange(len(y)))       # each row held out once
    for fit, val in split:
        assert np.intersect1d(fit, val).size == 0 and fit.size + val.size == len(y)
        for c, n in enumerate((10, 21, 30, 9)):
            assert abs(int(np.sum(y[val] == c)) - n / 5) < 1     # every class in every fold
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(split, folds(len(y), 5, 3, y),
                                                          strict=True))
    with pytest.raises(ValueError, match="--folds 1"):
        folds(10, 1, 0)


def test_method_search_estimates_by_cross_validation(digits):
    """The estimate of the chosen candidate, recomputed from its definition: every
    training input predicted by the candidate trained without its fold; the returned model
    is the candidate trained on all the training data; every more compressive candidate of
    its method that was tried missed the budget."""
    model, xtr, ytr, *_ = digits
    spec = CompressSpec(bits=4, reserve_zero=True, **FAST)
    found = search_methods(model, spec, 3.0, xtr, ytr, ("ternary",), k=3, max_bits=4,
                           epochs=3)
    assert found.chosen.method == "ternary" and isinstance(found.method, QuantSpec)
    right = 0
    for fit, val in folds(len(xtr), 3, spec.seed, ytr):
        c = build(model, found.chosen, spec, xtr[fit], ytr[fit], epochs=3)
        right += int(np.sum(c.final.forward(xtr[val]).argmax(1) == ytr[val]))
    assert found.final_val == pytest.approx(100 * right / len(xtr))
    assert found.float_val == pytest.approx(100 * model.accuracy(xtr, ytr))
    assert found.within_budget == (found.float_val - found.final_val <= 3.0)
    again = build(model, found.chosen, spec, xtr, ytr, epochs=3)
    for a, b in zip(found.compressed.final.layers, again.final.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
    mine = next(r for r in found.tried if r["candidate"] == found.chosen.label)
    assert all(not r["holds"] for r in found.tried
               if r["predicted_ratio"] > mine["predicted_ratio"])
    for layer, s in zip(found.compressed.final.layers, found.compressed.shared, strict=True):
        assert s.bits == 2 and np.unique(layer.weight).size <= 3
        assert 1 - s.mask.mean() == pytest.approx(found.sparsity[layer.name], abs=0.01)


def test_cli_max_loss_ternary_writes_a_2_bit_eie_image(files, capsys):
    d = files
    assert main(["compress", str(d / "m.npz"), "--engine", "eie", "--pes", "4", "--train",
                 str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--max-loss", "3",
                 "--ternary", "--folds", "3", "--epochs", "2", "-o", str(d / "t")]) == 0
    out = capsys.readouterr().out
    assert "chosen: ternary: sparsity fc1=" in out and "3-fold estimate (1437 training" in out
    image = load_image(d / "t")
    assert image.manifest["config"]["index_bits"] == 2
    assert image.manifest["log"]["method"] == "ternary"


def test_distilled_ternary_follows_the_teacher_not_the_labels(digits):
    """At distillation weight 1 the ternary training sees only the float model's softened
    outputs: shuffled labels train the same weights; at weight 0.5 they do not."""
    model, xtr, ytr, *_ = digits
    x, y = xtr[:400], ytr[:400]
    wrong = np.random.default_rng(0).permutation(y)
    runs = {}
    for weight in (1.0, 0.5):
        spec = QuantSpec("ternary", sparsity=0.7, epochs=2, cosine=True, distill=weight)
        runs[weight] = [quantize_mlp(model, spec, x, labels) for labels in (y, wrong)]
        assert runs[weight][0].log["distill"] == {"weight": weight, "temperature": 4.0}
    for a, b in zip(runs[1.0][0].final.layers, runs[1.0][1].final.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight)
    assert any(not np.array_equal(a.weight, b.weight) for a, b in
               zip(runs[0.5][0].final.layers, runs[0.5][1].final.layers, strict=True))
    with pytest.raises(ValueError, match="--distill-weight 2"):
        QuantSpec("ternary", distill=2.0)
