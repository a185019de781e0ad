"""The nnaccel compress / report / run commands end to end, on files."""

import json

import numpy as np
import pytest

from nnaccel.cli import main
from quantize.digits import load_digits_split
from quantize.train import init_mlp, train


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    xtr, ytr, xte, yte = load_digits_split()
    model = train(init_mlp([64, 32, 10], seed=0), xtr, ytr, epochs=15)
    np.savez(d / "m.npz", **{f"{layer.name}.{k}": getattr(layer, k)
                             for layer in model.layers for k in ("weight", "bias")})
    np.save(d / "xtr.npy", xtr)
    np.save(d / "ytr.npy", ytr)
    np.save(d / "xte.npy", xte)
    return d, model, xte, yte


@pytest.mark.parametrize("engine", ["eie", "systolic"])
def test_compress_report_run(files, engine, capsys):
    d, model, xte, yte = files
    out = d / f"out_{engine}"
    size = ["--pes", "4"] if engine == "eie" else ["--rows", "4", "--cols", "4"]
    assert main(["compress", str(d / "m.npz"), "--engine", engine, "--sparsity", "0.7",
                 "--calibration", str(d / "xtr.npy"), *size, "-o", str(out)]) == 0
    assert "compression" in capsys.readouterr().out
    assert main(["report", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compression_ratio"] > 5
    assert report["image_compression_ratio"] > 1
    assert [r["name"] for r in report["layers"]] == ["fc1", "fc2"]
    before = sorted(p.name for p in out.iterdir())
    assert main(["report", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == before      # the image is left alone
    assert not (out / "weights.png").exists() and not (out / "sizes.png").exists()
    plots = d / f"plots_{engine}" / "new"
    assert main(["report", str(out), "--plots", str(plots)]) == 0
    assert (plots / "weights.png").exists() and (plots / "sizes.png").exists()
    assert f"wrote {plots / 'sizes.png'}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == before
    assert main(["report", str(out), "--plots", str(out / "p")]) == 2
    assert "lies inside the image" in capsys.readouterr().err
    assert main(["report", str(out), "--plots", str(out)]) == 2
    assert not (out / "p").exists() and sorted(p.name for p in out.iterdir()) == before
    assert main(["run", str(out), "--input", str(d / "xte.npy"), "-o",
                 str(d / f"y_{engine}.npy")]) == 0
    y = np.load(d / f"y_{engine}.npy")
    assert y.shape == (len(xte), 10)
    assert np.mean(y.argmax(axis=1) == yte) > model.accuracy(xte, yte) - 0.1


def test_errors_are_one_line(files, capsys):
    d, *_ = files
    assert main(["compress", str(d / "nope.npz"), "--engine", "eie", "-o", str(d / "x")]) == 2
    assert "nnaccel: error:" in capsys.readouterr().err
    assert main(["compress", str(d / "m.npz"), "--engine", "systolic", "-o",
                 str(d / "x")]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert main(["run", str(d), "--input", str(d / "xte.npy"), "-o", str(d.parent / "y.npy")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
