"""``nnaccel compress CNN.onnx --max-loss`` / ``--sensitivity``: the graph accuracy budget
from the command line, against :func:`quantize.graph_sensitivity.search_graph` called
directly; and ``nnaccel report --plots`` on a graph image."""

import json
import os
import stat

import numpy as np
import pytest

from nnaccel.cli import main
from quantize.digits import load_digits_split
from quantize.graph_image import graph_config, write_graph_image
from quantize.graph_quant import quantize_graph
from quantize.graph_run import add_winograd
from quantize.graph_sensitivity import format_scans, scan_graph, search_graph
from quantize.image import load_image
from quantize.onnx_export import save_onnx
from quantize.onnx_import import load_onnx_graph
from quantize.run import run_graph_image
from quantize.sensitivity import validation_split
from quantize.train_cnn import init_cnn, train

#: A 4/8-channel CNN on 600 digits, briefly trained: the tests check the wiring, not the
#: accuracy reached. One retraining epoch per pruning step keeps the search near a second.
N_TRAIN, N_CAL, EPOCHS = 600, 64, "1"
SIZE = ["--engine", "systolic", "--rows", "4", "--cols", "4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("graph_budget")
    xtr, ytr, *_ = load_digits_split()
    x = xtr.reshape(-1, 1, 8, 8)[:N_TRAIN].astype(np.float32)
    y = ytr[:N_TRAIN]
    graph = train(init_cnn((1, 8, 8), (4, 8), 10, seed=0), x, y, epochs=8, lr=3e-3, seed=0)
    save_onnx(graph, d / "cnn.onnx")
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    np.save(d / "cal.npy", x[:N_CAL])
    return d, load_onnx_graph(d / "cnn.onnx"), x, y


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _direct(graph, found, calibration, model, out, winograd=False):
    """What the CLI is meant to do after the search: int8 from ``calibration``, the image."""
    qg = quantize_graph(found.compressed.graph, np.asarray(calibration, np.float64))
    if winograd:
        qg = add_winograd(qg, np.asarray(calibration, np.float64))
    return write_graph_image(found.compressed, qg, graph_config(qg, 4, 4), out,
                             source=str(model))


def _golden(image, x) -> np.ndarray:
    return run_graph_image(image, x, "golden").float_output.argmax(1)


def _check_int8_line(printed: str, found, int8: float) -> None:
    drop = found.float_val - int8
    verdict = "within" if drop <= found.max_loss + 1e-9 else "OUTSIDE"
    assert (f"int8 image (golden model) on the validation split: {int8:.2f} % {found.metric}, "
            f"{drop:.2f} points below the float graph ({verdict} the {found.max_loss:g}-point "
            f"budget, which the search applied to this int8 model)") in printed


def test_max_loss_with_labels_keeps_the_budget_on_the_int8_image(files, capsys):
    d, graph, x, y = files
    out = d / "labelled"
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--max-loss", "2", "--train",
                 str(d / "x.npy"), "--labels", str(d / "y.npy"), "--calibration",
                 str(d / "cal.npy"), "--val-fraction", "0.25", "--bits", "6", "--epochs",
                 EPOCHS, "--seed", "3", "-o", str(out)]) == 0
    cap = capsys.readouterr()
    printed = cap.out
    # The --calibration rows that are held-out --train rows calibrate nothing.
    _, val = validation_split(N_TRAIN, 0.25, 3, y)
    cal = np.array([i for i in range(N_CAL) if i not in set(val)])
    assert 0 < cal.size < N_CAL
    assert (f"int8 scales from {cal.size} of {N_CAL} --calibration inputs "
            f"({N_CAL - cal.size} held-out --train rows left out)") in cap.err
    found = search_graph(graph, 2, x, y, val_fraction=0.25, seed=3, max_bits=6,
                         retrain_epochs=int(EPOCHS), int8_calibration=x[cal])
    assert found.summary(True) in printed and found.final_val_int8 is not None
    assert max(found.bits.values()) <= 6 and found.val_size == N_TRAIN // 4
    _direct(graph, found, x[cal], d / "cnn.onnx", d / "labelled_direct")
    assert _files(out) == _files(d / "labelled_direct")
    # The image read back and run on the held-out split, its labels counted here: within
    # the 2-point budget of the float graph's accuracy, scored by hand. Judging the float
    # compressed graph instead chose a graph whose int8 image lost 2.67 points.
    x_val, y_val = x[val], y[val]
    float_val = 100 * float(np.mean(graph.forward(x_val).argmax(1) == y_val))
    int8 = 100 * float(np.mean(_golden(load_image(out), x_val) == y_val))
    assert float_val - int8 <= 2.0
    assert int8 == pytest.approx(found.final_val_int8) and found.within_budget
    _check_int8_line(printed, found, int8)
    assert "(within the 2-point budget" in printed


def test_max_loss_with_winograd_judges_the_winograd_model(files, capsys):
    d, graph, x, y = files
    out = d / "wino"
    np.save(d / "cal_fit.npy", x[-64:])
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--max-loss", "3", "--train",
                 str(d / "x.npy"), "--labels", str(d / "y.npy"), "--calibration",
                 str(d / "cal_fit.npy"), "--epochs", EPOCHS, "--winograd",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    _, val = validation_split(N_TRAIN, 0.2, 0, y)
    cal = x[-64:][~np.isin(np.arange(N_TRAIN - 64, N_TRAIN), val)]
    found = search_graph(graph, 3, x, y, retrain_epochs=int(EPOCHS), int8_calibration=cal,
                         winograd=True)
    assert "Winograd conv1,conv2" in found.int8 and found.summary(True) in printed
    _direct(graph, found, cal, d / "cnn.onnx", d / "wino_direct", winograd=True)
    assert _files(out) == _files(d / "wino_direct")
    int8 = 100 * float(np.mean(_golden(load_image(out), x[val]) == y[val]))
    assert int8 == pytest.approx(found.final_val_int8)
    _check_int8_line(printed, found, int8)


def test_max_loss_with_calibration_only_is_agreement(files, capsys):
    d, graph, x, _ = files
    out = d / "agree"
    np.save(d / "cal300.npy", x[:300])
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--max-loss", "3",
                 "--calibration", str(d / "cal300.npy"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    fit, _ = validation_split(300, 0.2, 0)
    found = search_graph(graph, 3, calibration=x[:300], int8_calibration=x[:300][fit])
    assert found.metric.startswith("agreement") and found.float_val == 100.0
    assert found.summary(False) in printed and "calibration inputs" in printed
    # The int8 scales come from the calibration rows the search did not hold out.
    assert np.array_equal(found.fit, fit)
    _direct(graph, found, x[:300][found.fit], d / "cnn.onnx", d / "agree_direct")
    assert _files(out) == _files(d / "agree_direct")
    val = x[:300][found.val]
    int8 = _golden(load_image(out), val)
    _check_int8_line(printed, found, 100 * float(np.mean(int8 == graph.forward(val).argmax(1))))
    assert found.within_budget
    assert np.mean(int8 == found.compressed.graph.forward(val).argmax(1)) >= 0.95


def test_sensitivity_prints_per_node_scans_and_writes_nothing(files, capsys):
    d, graph, x, y = files
    before = sorted(p.name for p in d.iterdir())
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--sensitivity", "--train",
                 str(d / "x.npy"), "--labels", str(d / "y.npy")]) == 0
    printed = capsys.readouterr().out
    scans = scan_graph(graph, x, y)
    assert format_scans(scans.prune_curves, scans.bits_drops, scans.bits, 0.5) in printed
    assert f"validation split: {scans.val_size} of {N_TRAIN} training inputs" in printed
    header = next(line for line in printed.splitlines() if line.startswith("  sparsity"))
    assert header.split()[1:] == ["conv1", "conv2", "fc"]
    assert sorted(p.name for p in d.iterdir()) == before


def test_sensitivity_with_output_uses_the_picked_bits(files, capsys):
    d, graph, x, y = files
    out = d / "picked"
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--sensitivity", "--sparsity", "0.3",
                 "--calibration", str(d / "cal.npy"), "-o", str(out)]) == 0
    scans = scan_graph(graph, calibration=x[:N_CAL])
    assert f"smallest bits within 0.5 points: " \
           f"{','.join(f'{k}={v}' for k, v in scans.bits.items())}" in capsys.readouterr().out
    nodes = {n["name"]: n for n in json.loads((out / "manifest.json").read_text())
             ["compression"]["layers"]}
    assert {k: nodes[k]["bits"] for k in scans.bits} == scans.bits


def test_max_loss_sensitivity_without_output_prints_both(files, capsys):
    d, *_ = files
    before = sorted(p.name for p in d.iterdir())
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--max-loss", "2", "--sensitivity",
                 "--calibration", str(d / "cal.npy")]) == 0
    printed = capsys.readouterr().out
    assert "of the chosen pruned graph, one node shared at a time" in printed
    assert "validation split (13 of 64 calibration inputs, held out)" in printed
    assert sorted(p.name for p in d.iterdir()) == before


@pytest.mark.parametrize("flags, message", [
    (["--max-loss", "1", "--sparsity", "0.5"], "--max-loss chooses each layer's sparsity; "
                                               "drop --sparsity"),
    (["--max-loss", "1", "--bits", "conv1=3,4"], "give one --bits (the widest allowed)"),
    (["--max-loss", "1", "--bits", "9"], "--bits 9: use 2 to 8"),
    (["--max-loss", "-1"], "--max-loss -1.0: use a non-negative number"),
    (["--max-loss", "1", "--folds", "3", "--train", "x.npy", "--labels", "y.npy"],
     "--folds is for MLP images; a graph's --max-loss holds out --val-fraction"),
    (["--max-loss", "1", "--ternary", "--train", "x.npy", "--labels", "y.npy"],
     "--ternary is for MLP images"),
    (["--max-loss", "1", "--test", "x.npy", "--test-labels", "y.npy"],
     "--test is for MLP images"),
    (["--distill", "--train", "x.npy", "--labels", "y.npy", "--sparsity", "0.5"],
     "--distill on a graph retrains the candidates of --max-loss; add --max-loss"),
    (["--max-loss", "1", "--distill"], "--distill retrains towards the float model's"),
    (["--max-loss", "1", "--quality", "1"], "--max-loss chooses each layer's sparsity"),
])
def test_refusals_are_one_line(files, capsys, flags, message):
    d, *_ = files
    argv = ["compress", str(d / "cnn.onnx"), *SIZE, "--calibration", str(d / "cal.npy"),
            "-o", str(d / "refused")]
    argv += [str(d / f) if f.endswith(".npy") else f for f in flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("[compress")]
    assert errors == [errors[0]] and errors[0].startswith("nnaccel: error: "), err
    assert message in errors[0]
    assert not (d / "refused").exists()


def test_max_loss_without_calibration_needs_it_to_write(files, capsys):
    d, *_ = files
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--max-loss", "1", "--train",
                 str(d / "x.npy"), "--labels", str(d / "y.npy"), "-o", str(d / "nocal")]) == 2
    assert "int8 scales need inputs: give --calibration" in capsys.readouterr().err


def test_report_writes_plots_only_where_asked(files, capsys, tmp_path):
    d, *_ = files
    img = tmp_path / "img"
    assert main(["compress", str(d / "cnn.onnx"), *SIZE, "--sparsity", "0.5", "--calibration",
                 str(d / "cal.npy"), "-o", str(img)]) == 0
    before = _files(img)
    modes = {p: os.stat(p).st_mode for p in (img, *img.iterdir())}
    for p in modes:
        os.chmod(p, stat.S_IMODE(modes[p]) & ~0o222)        # a read-only image
    try:
        capsys.readouterr()
        assert main(["report", str(img)]) == 0
        assert "wrote" not in capsys.readouterr().out
        assert main(["report", str(img), "--json", "--plots", str(tmp_path / "p")]) == 0
        cap = capsys.readouterr()
        assert json.loads(cap.out)["compression_ratio"] > 1       # stdout is only the JSON
        assert f"wrote {tmp_path / 'p' / 'sizes.png'}" in cap.err
        assert (tmp_path / "p" / "sizes.png").stat().st_size > 0
    finally:
        for p, mode in modes.items():
            os.chmod(p, stat.S_IMODE(mode))
    assert _files(img) == before
    # A folder that holds the image is fine: the plot files land beside it.
    assert main(["report", str(img), "--plots", str(tmp_path)]) == 0
    assert (tmp_path / "sizes.png").exists() and _files(img) == before
    (tmp_path / "file").write_text("x")
    assert main(["report", str(img), "--plots", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
