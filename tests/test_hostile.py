"""Hostile and careless invocations of ``nnaccel``: each ends in one correct error line (exit
2) or a correct result, never a traceback, a silent wrong answer or lost data."""

import os
import shlex
import warnings

import numpy as np
import pytest

from nnaccel.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)

    def mlp(name, sizes, dead=False):
        t = {}
        for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
            w = rng.normal(size=(b, a)).astype(np.float32) / np.sqrt(a)
            if dead and i == 0:
                w[3] = 0
            t[f"fc{i + 1}.weight"], t[f"fc{i + 1}.bias"] = w, np.zeros(b, np.float32)
        np.savez(d / name, **t)

    mlp("m.npz", [64, 30, 10])
    mlp("dead.npz", [64, 30, 10], dead=True)
    mlp("big.npz", [784, 300, 100, 10])
    arrays = {
        "x": rng.random((40, 64)).astype(np.float32), "xb": rng.random((8, 784)),
        "yb": rng.integers(0, 10, 8),
        "y": rng.integers(0, 10, 40), "ybad": rng.integers(0, 20, 40),
        "yshort": rng.integers(0, 10, 5), "yfloat": rng.random(40),
        "x32": rng.random((40, 32)), "xnan": np.full((4, 64), np.nan),
        "xempty": np.zeros((0, 64)), "x3d": np.zeros((2, 2, 64)),
        "xbool": np.ones((4, 64), bool), "xcplx": np.ones((4, 64), complex),
    }
    for name, a in arrays.items():
        np.save(d / f"{name}.npy", a)
    np.save(d / "xobj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "txt.npy").write_text("hello")
    (d / "empty.npz").write_bytes(b"")
    np.savez(d / "noweights.npz", a=np.ones(3))
    np.savez(d / "w3d.npz", **{"conv1.weight": np.ones((4, 3, 3, 3), np.float32)})
    np.savez(d / "wnan.npz", **{"fc1.weight": np.full((3, 4), np.nan, np.float32)})
    np.savez(d / "wzero.npz", **{"fc1.weight": np.zeros((0, 4), np.float32)})
    np.savez(d / "wchain.npz", **{"fc1.weight": np.ones((3, 4)), "fc2.weight": np.ones((2, 5))})
    np.savez(d / "wstr.npz", **{"fc1.weight": np.array(["a", "b"])})
    np.savez(d / "wbias.npz", **{"fc1.weight": np.ones((3, 4)), "fc1.bias": np.ones(7),
                                 "fc2.weight": np.ones((2, 3))})
    (d / "garbage.onnx").write_bytes(os.urandom(100))
    (d / "garbage.safetensors").write_bytes(os.urandom(100))
    (d / "huge.safetensors").write_bytes((2**60).to_bytes(8, "little") + b"{}")
    (d / "dir.npz").mkdir()
    (d / "model.pkl").write_bytes(b"x")
    (d / "model.h5").write_bytes(b"x")
    (d / "notes").mkdir()
    (d / "notes" / "keep.txt").write_text("mine")
    from quantize.onnx_export import save_onnx
    from quantize.train_cnn import init_cnn
    save_onnx(init_cnn((1, 8, 8), (4,), 10, seed=0), d / "cnn.onnx")
    np.save(d / "xc.npy", rng.standard_normal((16, 1, 8, 8)))
    cwd = os.getcwd()
    os.chdir(d)
    assert main(["compress", "m.npz", "--engine", "eie", "--pes", "4", "--sparsity", "0.8",
                 "-o", "img"]) == 0
    assert main(["compress", "cnn.onnx", "--engine", "systolic", "--calibration", "xc.npy",
                 "-o", "gimg"]) == 0
    yield d
    os.chdir(cwd)


E = "ok"  # the command must succeed
CASES = [
    # compress: shapes the EIE and systolic writers once crashed on
    ("compress m.npz --engine eie --pes 16 --sparsity 0.92 -o c1", E),
    ("compress dead.npz --engine eie --pes 8 --sparsity 0.5 -o c2", E),
    ("compress big.npz --engine eie --pes 16 --sparsity 0.9999 -o c3", E),
    ("compress big.npz --engine systolic --sparsity 0.9999 --calibration xb.npy -o c4", E),
    ("compress dead.npz --engine systolic --sparsity 0.5 --calibration x.npy -o c5", E),
    ("compress m.npz --engine eie --pes 64 --sparsity 0.5 --train x.npy --labels y.npy "
     "--epochs 1 -o c6", E),
    ("compress m.npz --engine eie --pes 8 --sparsity 0.9999 -o c7", "removed every weight"),
    ("compress m.npz --engine eie --quality 1e9 -o c7", "removed every weight"),
    # compress: flags
    ("compress m.npz --engine eie --bits 5 -o c", "use 2 to 4 bits per layer with --engine eie"),
    ("compress m.npz --engine systolic --bits 9 --calibration x.npy -o c", "use 2 to 8"),
    ("compress m.npz --engine systolic --rows 0 --calibration x.npy -o c", "rows=0"),
    ("compress m.npz --engine systolic --cols -3 --calibration x.npy -o c", "cols=-3"),
    ("compress m.npz --engine eie --index-bits 0 -o c", "--index-bits 0: use 1 to 16"),
    ("compress m.npz --engine eie --index-bits -5 -o c", "--index-bits -5: use 1 to 16"),
    ("compress m.npz --engine eie --epochs -3 --train x.npy --labels y.npy -o c",
     "--epochs -3"),
    ("compress m.npz --engine eie --epochs 3 -o c", "--epochs sets retraining"),
    ("compress m.npz --engine eie --rows 4 -o c", "--rows is not used by the eie engine"),
    ("compress m.npz --engine systolic --pes 4 --calibration x.npy -o c", "--pes is not used"),
    ("compress m.npz --engine eie --pes 0 -o c", "pes=0"),
    ("compress m.npz --engine eie --pes 2000 -o c", "pes=2000"),
    ("compress m.npz --engine eie --pes 300 -o c", "use 1 to 256"),
    ("compress m.npz --engine eie --sparsity 1.0 -o c", "use a value in \\[0, 1\\)"),
    ("compress m.npz --engine eie --sparsity -0.1 -o c", "use a value in \\[0, 1\\)"),
    ("compress m.npz --engine eie --sparsity nan -o c", "use a value in \\[0, 1\\)"),
    ("compress m.npz --engine eie --sparsity abc -o c", "layer=value pairs"),
    ("compress m.npz --engine eie --sparsity fc9=0.5 -o c", "unknown layers fc9"),
    ("compress m.npz --engine eie --quality -1 -o c", "--quality -1.0"),
    ("compress m.npz --engine eie --quality nan -o c", "--quality nan"),
    ("compress m.npz --engine eie --global -o c", "give --sparsity"),
    ("compress m.npz --engine eie --layers fc1,,fc2 -o c", "distinct layer names"),
    ("compress m.npz --engine eie --layers fc3 -o c", "no layer named fc3"),
    ("compress m.npz --engine eie --seed -1 -o c", "--seed -1"),
    ("compress m.npz --engine eie --bogus -o c", "unrecognized arguments: --bogus"),
    ("compress m.npz --engine tpu -o c", "invalid choice: 'tpu'"),
    ("compress m.npz --engine systolic -o c", "need inputs: give --calibration"),
    # compress: activations and graphs
    ("compress m.npz --engine systolic --activation silu --calibration x.npy -o c8", E),
    ("compress m.npz --engine eie --activation none -o c9", E),
    ("compress m.npz --engine eie --activation gelu -o c", "EIE engine runs relu or none"),
    ("compress m.npz --engine eie --activation none --calibration x.npy -o c",
     "--activation none on EIE"),
    ("compress m.npz --engine systolic --activation swish -o c", "invalid choice: 'swish'"),
    ("compress cnn.onnx --engine eie -o c", "use --engine systolic"),
    ("compress cnn.onnx --engine systolic -o c", "give --calibration"),
    ("compress cnn.onnx --engine systolic --calibration x32.npy -o c",
     "shape \\(N, 1, 8, 8\\) \\(or \\(N, 64\\)\\)"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --sparsity conv9=0.5 -o c",
     "unknown layers conv9"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --global --sparsity 0.5 -o c",
     "--global is for MLP images"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --activation relu -o c",
     "drop --activation"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --train x.npy --labels "
     "ybad.npy --sparsity 0.5 -o c", "classes must be 0..9 for a graph with 10 outputs"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --train xc.npy --labels "
     "yshort.npy -o c", "one label per --train row \\(16\\)"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --train x.npy --labels "
     "yfloat.npy -o c", "labels must be integers"),
    ("compress cnn.onnx --engine systolic --calibration xc.npy --train xc.npy -o c",
     "--train and --labels go together"),
    # compress: data files
    ("compress m.npz --engine eie --train x.npy -o c", "--train and --labels go together"),
    ("compress m.npz --engine eie --train x.npy --labels ybad.npy -o c", "classes must be 0..9"),
    ("compress m.npz --engine eie --train x.npy --labels yshort.npy -o c", "one label per"),
    ("compress m.npz --engine eie --train x.npy --labels yfloat.npy -o c",
     "labels must be integers"),
    ("compress m.npz --engine eie --train x32.npy --labels y.npy -o c", "shape \\(N, 64\\)"),
    ("compress m.npz --engine eie --calibration x32.npy -o c", "shape \\(N, 64\\)"),
    ("compress m.npz --engine eie --calibration xnan.npy -o c", "NaN or Inf"),
    ("compress m.npz --engine eie --calibration xempty.npy -o c", "N >= 1"),
    ("compress m.npz --engine eie --calibration x3d.npy -o c", "shape \\(N, 64\\)"),
    ("compress m.npz --engine eie --calibration xobj.npy -o c", "pickled Python objects"),
    ("compress m.npz --engine eie --calibration xbool.npy -o c", "real numbers"),
    ("compress m.npz --engine eie --calibration xcplx.npy -o c", "real numbers"),
    ("compress m.npz --engine eie --calibration txt.npy -o c", "not a NumPy file"),
    ("compress m.npz --engine eie --calibration nothere.npy -o c", "no such file"),
    ("compress m.npz --engine eie --calibration m.npz -o c", "expected one array"),
    # compress: weight files
    ("compress empty.npz --engine eie -o c", "not a readable .npz"),
    ("compress noweights.npz --engine eie -o c", "no '<layer>.weight' tensors"),
    ("compress w3d.npz --engine eie -o c", "must be 2-D"),
    ("compress wnan.npz --engine eie -o c", "NaN or Inf"),
    ("compress wzero.npz --engine eie -o c", "at least one input and one output"),
    ("compress wchain.npz --engine eie -o c", "do not chain"),
    ("compress wstr.npz --engine eie -o c", "must be 2-D|real numbers"),
    ("compress wbias.npz --engine eie -o c", "bias has shape"),
    ("compress garbage.onnx --engine eie -o c", "not a readable ONNX model"),
    ("compress garbage.safetensors --engine eie -o c", "not a readable .safetensors"),
    ("compress huge.safetensors --engine eie -o c", "not a readable .safetensors"),
    ("compress dir.npz --engine eie -o c", "is a directory"),
    ("compress model.pkl --engine eie -o c", "never loaded"),
    ("compress model.h5 --engine eie -o c", "unknown weight format .h5"),
    ("compress nothere.npz --engine eie -o c", "no such file"),
    # compress: outputs
    ("compress m.npz --engine eie -o m.npz", "would overwrite model"),
    ("compress m.npz --engine eie -o .", "would overwrite model"),
    ("compress m.npz --engine eie -o notes", "not empty and not an nnaccel image"),
    ("compress m.npz --engine eie -o x.npy", "exists and is not a folder"),
    # run
    ("run nothere --input x.npy -o y.npy", "no such image folder"),
    ("run m.npz --input x.npy -o y.npy", "no such image folder"),
    ("run notes --input x.npy -o y.npy", "no manifest.json"),
    ("run img --input x.npy -o y.dat", "name it \\*.npy"),
    ("run img --input x.npy -o x.npy", "would overwrite --input"),
    ("run img --input x.npy -o img/y.npy", "lies inside the image img"),
    ("run img --input x32.npy -o y.npy", "shape \\(N, 64\\)"),
    ("run img --input xnan.npy -o y.npy", "NaN or Inf"),
    ("run img --input xempty.npy -o y.npy", "N >= 1"),
    ("run img --input txt.npy -o y.npy", "not a NumPy file"),
    ("run img --input xobj.npy -o y.npy", "pickled Python objects"),
    ("run img --input x.npy -o y.npy --max-memory 1K", "over the 1.0 KiB memory budget"),
    ("run img --input x.npy -o y.npy --max-memory lots", "use a size such as 8G"),
    ("run img --input x.npy -o y.npy --engine board", "invalid choice: 'board'"),
    ("run img --input x.npy -o notes", "name it \\*.npy"),
    ("report nothere", "no such image folder"),
    ("report img --batch 0", "--batch 0"),
    ("report gimg --batch 3", E),
    ("run gimg --input xc.npy -o yc.npy", E),
    ("run gimg --input x.npy -o yc2.npy", E),
    ("run gimg --input x32.npy -o y.npy", "inputs must have shape \\(N, 1, 8, 8\\)"),
    ("run gimg --input xnan.npy -o y.npy", "NaN or Inf"),
    ("run gimg --input xc.npy -o y.npy --max-memory 1K", "over the 1.0 KiB memory budget"),
    ("board run gimg --board ulx3s --port /dev/nonexistent --input xc.npy -o y.npy",
     "cannot open serial port"),
    ("report m.npz", "no such image folder"),
    # spmv / gemm / verilog / synth / board
    ("spmv --in-features 1000000000 --engine golden", "memory budget"),
    ("spmv --pes 0", "pes=0"),
    ("spmv --pes 4 --in-features 0", "must be at least 1"),
    ("spmv --pes 4 --queue-depth 0", "queue_depth=0"),
    ("spmv --pes 4 --density nan", "--density nan"),
    ("spmv --pes 4 --act-density 2", "--act-density 2.0"),
    ("spmv --pes 4 --seed -1", "--seed -1"),
    ("spmv --pes 4 --in-features 30 --out-features 30 --density 0", E),
    ("spmv --pes 4 --in-features 30 --out-features 30 --act-density 0", E),
    ("spmv --pes 64 --in-features 3 --out-features 2", E),
    ("gemm --m 100000 --k 100000 --n 100000", "memory budget"),
    ("gemm --m 4 --k 4 --n 4 --rows 0", "rows=0"),
    ("gemm --m 4 --k 4 --n 4 --rows 1000", "rows=1000"),
    ("gemm --m -1 --k 4 --n 4", "--m -1"),
    ("gemm --m 4 --k 4 --n 4 --act-depth 0", "act_depth=0"),
    ("gemm --m 4 --k 4 --n 4 --act-depth 2", "act_depth=2"),
    ("gemm --m 4 --k 4 --n 4 --stall 2 --engine rtl", "--stall 2.0"),
    ("gemm --m 4 --k 4 --n 4 --stall 0.3", "only applies to --engine rtl"),
    ("gemm --m 4 --k 4 --n 4 --seed -3", "--seed -3"),
    ("gemm --m 4 --k 4 --n 4 --rounding triple", "invalid choice: 'triple'"),
    ("verilog --engine eie --pes 0 -o v.v", "pes=0"),
    ("verilog --engine eie --pes 4 --rows 3 -o v.v", "systolic options"),
    ("verilog --engine systolic --pes 4 -o v.v", "--pes is an EIE option"),
    ("verilog --engine systolic --rows 2 --cols 2 -o notes", "is a folder"),
    ("verilog --engine systolic --rows 256 --cols 256 -o v.v", "memory budget"),
    ("verilog --engine eie --pes 256 -o v.v --max-memory 1G", "memory budget"),
    ("synth --board ulx3s --engine eie --pes 256 --max-memory 1G", "memory budget"),
    ("verilog --engine eie --pes 1024 -o v.v", "use 1 to 256 processing elements"),
    ("synth --board nope --engine systolic", "unknown board 'nope'"),
    ("synth --board ulx3s --engine systolic --seed 0-0", "seeds are 1 to"),
    ("synth --board ulx3s --engine systolic --seed 5-1", "seed '5-1'"),
    ("synth --board ulx3s --engine systolic --seed 1-1000", "at most 64"),
    ("synth --board ulx3s --engine systolic --jobs 0", "--jobs 0"),
    ("synth --board ulx3s --engine systolic --clock-mhz -5", "--clock-mhz -5"),
    ("board run img --board ulx3s --port /dev/nonexistent --input x.npy -o y.npy",
     "cannot open serial port"),
    ("board run img --board ulx3s --port /dev/null --input x.npy -o x.npy",
     "would overwrite --input"),
    ("board run img --board nope --port /dev/null --input x.npy -o y.npy", "unknown board"),
]


@pytest.mark.parametrize("line,expect", CASES, ids=[c[0] for c in CASES])
def test_hostile_invocation(files, capsys, line, expect):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # numpy's pickle warning, if any
        try:
            status = main(shlex.split(line))
        except SystemExit as e:                         # argparse's own exit
            status = e.code
    captured = capsys.readouterr()
    errors = [ln for ln in captured.err.splitlines() if not ln.startswith("[")]
    if expect == E:
        assert status == 0, captured.err
        assert errors == [], captured.err
        return
    assert status == 2, captured.out + captured.err
    assert len(errors) == 1, captured.err
    assert "error: " in errors[0]
    import re
    assert re.search(expect, errors[0]), errors[0]


def test_no_partial_folders_left(files):
    assert not [p for p in files.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    assert (files / "notes" / "keep.txt").read_text() == "mine"


def test_scikit_learn_digits_mlp_on_more_pes_than_rows(tmp_path):
    """A scikit-learn-trained digits MLP whose classifier layer has fewer rows (10) than
    PEs (16) compresses for EIE and runs, agreeing with the compressed float model."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from quantize.digits import load_digits_split
    xtr, ytr, xte, yte = load_digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((300, 100), max_iter=40, random_state=0).fit(xtr, ytr)
    np.savez(tmp_path / "sk.npz", **{
        f"fc{i + 1}.{k}": v for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_,
                                                            strict=True))
        for k, v in (("weight", w.T), ("bias", b))})
    np.save(tmp_path / "xte.npy", xte)
    np.save(tmp_path / "xtr.npy", xtr[:300])
    assert main(["compress", str(tmp_path / "sk.npz"), "--engine", "eie", "--pes", "16",
                 "--sparsity", "0.92", "--calibration", str(tmp_path / "xtr.npy"),
                 "-o", str(tmp_path / "img")]) == 0
    assert main(["run", str(tmp_path / "img"), "--input", str(tmp_path / "xte.npy"),
                 "-o", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (len(xte), 10)
    # The engine's fixed-point answer is the compressed float model's (the accuracy that
    # post-training pruning at 92 % costs is the compressor's business, not this test's).
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.image import load_image
    from quantize.loaders import load_model
    from quantize.run import run_image
    compressed, _ = compress_to_image(
        load_model(tmp_path / "sk.npz"), "eie", CompressSpec(bits=4, sparsity=0.92), tmp_path
        / "img2", pes=16, calibration=xtr[:300])
    golden = run_image(load_image(tmp_path / "img2"), xte).outputs
    np.testing.assert_array_equal(golden, y)
    assert np.mean(golden.argmax(1) == compressed.final.forward(xte).argmax(1)) >= 0.97


def test_ctrl_c_during_compress_keeps_the_old_image(files):
    """A real SIGINT in the middle of a compress over an existing image: exit 130, the old
    image byte for byte as it was, no temporary folder left behind."""
    import signal
    import subprocess
    import sys
    import time
    before = {f.name: f.read_bytes() for f in (files / "img").iterdir()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "compress", "big.npz", "--engine", "eie",
         "--sparsity", "0.9", "--train", "xb.npy", "--labels", "yb.npy", "--epochs", "100000",
         "-o", "img"], cwd=files, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 60
    for line in proc.stderr:                      # wait until it is retraining
        if "retrain" in line or "prun" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "nnaccel: interrupted"
    assert {f.name: f.read_bytes() for f in (files / "img").iterdir()} == before
    assert not [p for p in files.iterdir() if ".partial-" in p.name or ".old-" in p.name]
