"""``nnaccel compress --ternary / --binary / --low-rank / --low-rank-energy`` end to end:
the written image against the module API's, the accounting against its definition, the
refusals; RTL == golden on a CLI-written ternary image (EIE, 4 PEs)."""

import json

import numpy as np
import pytest

from nnaccel.cli import main
from quantize.digits import load_digits_split
from quantize.image import load_image
from quantize.lowrank import compress_factored
from quantize.run import run_image
from quantize.storage import totals
from quantize.ternary import QuantSpec, quantize_mlp, write_method_image
from quantize.train import init_mlp, train


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("methods")
    xtr, ytr, xte, yte = load_digits_split()
    model = train(init_mlp([64, 40, 10], seed=0), xtr, ytr, epochs=10)
    np.savez(d / "m.npz", **{f"{layer.name}.{k}": getattr(layer, k)
                             for layer in model.layers for k in ("weight", "bias")})
    for name, a in (("xtr", xtr), ("ytr", ytr), ("xte", xte)):
        np.save(d / f"{name}.npy", a)
    return d, model, xtr, ytr, xte


def _compress(d, engine, *flags, out):
    size = ["--pes", "4"] if engine == "eie" else ["--rows", "4", "--cols", "4"]
    assert main(["compress", str(d / "m.npz"), "--engine", engine, *size, *flags,
                 "-o", str(out)]) == 0
    return json.loads((out / "manifest.json").read_text())


def _same_images(cli_dir, api_dir, engine, x):
    """The CLI's image and the API's: the same config, the same memory files, the same
    golden output words."""
    cli, api = (json.loads((p / "manifest.json").read_text()) for p in (cli_dir, api_dir))
    assert cli["config"] == api["config"]
    for a, b in zip(cli["layers"], api["layers"], strict=True):
        assert {k: v["sha256"] for k, v in a["files"].items()} == \
            {k: v["sha256"] for k, v in b["files"].items()}
    g_cli = run_image(load_image(cli_dir, engine=engine), x, "golden")
    g_api = run_image(load_image(api_dir, engine=engine), x, "golden")
    np.testing.assert_array_equal(g_cli.raw, g_api.raw)
    return g_cli


@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_ternary_trained(files, tmp_path, engine, capsys):
    d, model, xtr, ytr, xte = files
    m = _compress(d, engine, "--ternary", "--sparsity", "fc1=0.8,fc2=0.5", "--train",
                  str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--epochs", "2",
                  out=tmp_path / "cli")
    assert "method: ternary weights (trained)" in capsys.readouterr().out
    assert m["log"]["method"] == "ternary" and m["log"]["trained"]
    assert m["log"]["sparsity"] == {"fc1": 0.8, "fc2": 0.5}
    c = quantize_mlp(model, QuantSpec("ternary", sparsity="fc1=0.8,fc2=0.5", epochs=2), xtr,
                     ytr)
    write_method_image(c, engine, tmp_path / "api", xtr, pes=4, rows=4, cols=4)
    if engine == "eie":
        assert m["config"]["index_bits"] == 2
    golden = _same_images(tmp_path / "cli", tmp_path / "api", engine, xte)
    assert np.mean(golden.outputs.argmax(1) == c.final.forward(xte).argmax(1)) >= 0.95
    # The --sparsity quantile: 20 % and 50 % of the weights kept.
    density = [r["density"] for r in m["compression"]["layers"]]
    assert density == pytest.approx([0.2, 0.5], abs=1 / 400)
    t = totals(c.storage)
    assert m["compression"]["compression_ratio"] == pytest.approx(t["ratio_huffman"])


def test_ternary_threshold_post_training(files, tmp_path):
    d, model, xtr, _, xte = files
    m = _compress(d, "eie", "--ternary", "--ternary-threshold", "0.2", "--calibration",
                  str(d / "xtr.npy"), out=tmp_path / "cli")
    assert m["log"] == {"method": "ternary", "trained": False, "threshold": 0.2,
                        **{k: m["log"][k] for k in ("fc1_scales", "fc2_scales")}}
    # Zero exactly where |w| <= 0.2 max|w| of the float layer (post-training: no updates).
    for layer, row in zip(model.layers, m["compression"]["layers"], strict=True):
        w = np.abs(layer.weight)
        assert row["kept"] == int(np.count_nonzero(w > 0.2 * w.max()))
    c = quantize_mlp(model, QuantSpec("ternary", threshold=0.2))
    write_method_image(c, "eie", tmp_path / "api", xtr, pes=4)
    _same_images(tmp_path / "cli", tmp_path / "api", "eie", xte)


@pytest.mark.parametrize("engine, per_channel", [("eie", False), ("systolic", False),
                                                 ("systolic", True)])
def test_binary_at_one_bit(files, tmp_path, engine, per_channel):
    d, model, xtr, ytr, xte = files
    flags = ["--binary", *(["--per-channel"] if per_channel else []), "--train",
             str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--epochs", "1"]
    m = _compress(d, engine, *flags, out=tmp_path / "cli")
    assert m["log"]["method"] == "binary" and m["log"]["per_channel"] == per_channel
    c = quantize_mlp(model, QuantSpec("binary", per_channel=per_channel, epochs=1), xtr, ytr)
    write_method_image(c, engine, tmp_path / "api", xtr, pes=4, rows=4, cols=4)
    _same_images(tmp_path / "cli", tmp_path / "api", engine, xte)
    # 1 bit a weight (every weight kept, two 1-bit Huffman codes, no relative index), the
    # scales at 32 bits (two a layer, or one a row), the 2-symbol code-length table.
    huffman = 0
    for layer, row in zip(model.layers, m["compression"]["layers"], strict=True):
        out_f, in_f = layer.shape
        scales = out_f if per_channel else 2
        assert row["index_bits"] == 0 and row["kept"] == row["weights"] == out_f * in_f
        assert row["huffman_bits"] == out_f * in_f + 32 * scales + 2 * 8
        huffman += row["huffman_bits"]
    dense = 32 * sum(layer.weight.size for layer in model.layers)
    assert m["compression"]["compression_ratio"] == pytest.approx(dense / huffman)


def test_low_rank_with_pruning_and_bits(files, tmp_path, capsys):
    d, model, xtr, ytr, xte = files
    m = _compress(d, "eie", "--low-rank", "fc1=8", "--sparsity", "fc1=0.5", "--bits", "3",
                  "--train", str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--epochs",
                  "2", out=tmp_path / "cli")
    assert "method: low rank fc1=8 (fine-tuned)" in capsys.readouterr().out
    rows = m["compression"]["layers"]
    assert [r["name"] for r in rows] == ["fc1.v", "fc1.u", "fc2"]
    assert [r["shape"] for r in rows] == [[8, 64], [40, 8], [10, 40]]
    assert [r["bits"] for r in rows] == [3, 3, 3]
    assert [r["kept"] for r in rows] == [256, 160, 400]          # fc1=0.5 on both factors
    assert [layer["relu"] for layer in m["layers"]] == [False, True, False]
    assert m["log"]["factors"]["fc1"]["rank"] == 8
    c = compress_factored(model, ranks={"fc1": 8}, sparsity={"fc1.v": 0.5, "fc1.u": 0.5},
                          bits=3, x_train=xtr, y_train=ytr, epochs=2)
    write_method_image(c, "eie", tmp_path / "api", xtr, pes=4)
    _same_images(tmp_path / "cli", tmp_path / "api", "eie", xte)
    # Ratios against the unfactored model's 32-bit weights.
    assert m["compression"]["totals"]["dense_bits"] == 32 * (64 * 40 + 40 * 10)
    assert m["compression"]["compression_ratio"] == pytest.approx(
        totals(c.storage)["ratio_huffman"])


def test_low_rank_energy(files, tmp_path):
    d, model, xtr, _, xte = files
    m = _compress(d, "systolic", "--low-rank-energy", "0.8", "--calibration",
                  str(d / "xtr.npy"), out=tmp_path / "cli")
    for layer in model.layers:
        s = np.linalg.svd(layer.weight.astype(np.float64), compute_uv=False)
        kept = np.cumsum(s ** 2) / np.sum(s ** 2)
        rank = int(np.argmax(kept >= 0.8)) + 1
        assert m["log"]["factors"][layer.name]["rank"] == rank
    c = compress_factored(model, energy=0.8, reserve_zero=False)
    write_method_image(c, "systolic", tmp_path / "api", xtr, rows=4, cols=4)
    _same_images(tmp_path / "cli", tmp_path / "api", "systolic", xte)


def test_low_rank_max_loss_chooses_the_factor_sparsity(files, tmp_path, capsys):
    """--low-rank RANKS --max-loss: the ranks as given, the factor sparsity one of the
    search's, the estimate printed; the image holds the factors."""
    d, *_ = files
    m = _compress(d, "eie", "--low-rank", "fc1=8", "--max-loss", "5", "--folds", "2",
                  "--train", str(d / "xtr.npy"), "--labels", str(d / "ytr.npy"), "--epochs",
                  "1", out=tmp_path / "lr")
    out = capsys.readouterr().out
    assert "chosen: low-rank: ranks fc1=8; sparsity fc1=0." in out
    assert "2-fold estimate (1437 training inputs" in out
    assert m["log"]["method"] == "low-rank" and m["log"]["factors"]["fc1"]["rank"] == 8
    assert [layer["name"] for layer in m["layers"]] == ["fc1.v", "fc1.u", "fc2"]
    assert m["log"]["sparsity"]["fc1.v"] in (0.5, 0.6, 0.7)


@pytest.mark.parametrize("flags, message", [
    (["--ternary", "--binary"], "--ternary and --binary are different methods"),
    (["--binary", "--low-rank", "fc1=8"], "different methods"),
    (["--low-rank", "fc1=8", "--low-rank-energy", "0.9"], "different methods"),
    (["--ternary", "--bits", "3"], "drop --bits"),
    (["--binary", "--sparsity", "0.5"], "--binary keeps every weight"),
    (["--ternary", "--ternary-threshold", "0.1", "--sparsity", "0.5"], "give one"),
    (["--ternary-threshold", "0.1"], "add --ternary"),
    (["--per-channel"], "add --binary"),
    (["--binary", "--per-channel"], "use --engine systolic"),
    (["--ternary", "--ternary-threshold", "1.5"], "[0, 1)"),
    (["--low-rank-energy", "1.5"], "(0, 1]"),
    (["--ternary", "--quality", "1.0"], "--quality is for pruning + sharing"),
    (["--low-rank", "fc1=8", "--max-loss", "0.5", "--calibration", "X"],
     "--max-loss with --low-rank trains its candidates: give --train"),
    (["--binary", "--max-loss", "0.5", "--calibration", "X"], "--binary leaves nothing"),
    (["--ternary", "--ternary-threshold", "0.1", "--max-loss", "0.5", "--train", "X",
      "--labels", "Y"], "drop --ternary-threshold"),
    (["--ternary", "--activation", "none"], "drop --activation none"),
    (["--low-rank", "fc9=8"], "unknown layers fc9"),
    (["--low-rank", "fc1=40"], "no layer gets smaller"),
])
def test_refusals_are_one_line(files, tmp_path, flags, message, capsys):
    d, *_ = files
    assert main(["compress", str(d / "m.npz"), "--engine", "eie", *flags, "-o",
                 str(tmp_path / "x")]) == 2
    # Progress lines ("[compress ...]") may come first; the error is one line.
    err = [line for line in capsys.readouterr().err.splitlines()
           if not line.startswith("[compress")]
    assert len(err) == 1 and err[0].startswith("nnaccel: error:")
    assert message in err[0]
    assert not (tmp_path / "x").exists()


@pytest.mark.rtl
def test_cli_ternary_image_rtl_equals_golden(files, tmp_path):
    """A CLI-written trained ternary image (EIE, 4 PEs, 2-bit index): every output word of
    the RTL equals golden, through nnaccel run."""
    d, *_ = files
    m = _compress(d, "eie", "--ternary", "--sparsity", "0.7", "--train", str(d / "xtr.npy"),
                  "--labels", str(d / "ytr.npy"), "--epochs", "2", out=tmp_path / "img")
    assert m["config"]["index_bits"] == 2
    x = np.load(d / "xte.npy")[:12]
    np.save(tmp_path / "x.npy", x)
    for backend in ("golden", "rtl"):
        assert main(["run", str(tmp_path / "img"), "--input", str(tmp_path / "x.npy"), "-o",
                     str(tmp_path / f"{backend}.npy"), "--engine", backend]) == 0
    image = load_image(tmp_path / "img", engine="eie")
    golden, rtl = (run_image(image, x, b) for b in ("golden", "rtl"))
    np.testing.assert_array_equal(rtl.raw, golden.raw)
    np.testing.assert_array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "golden.npy"))
