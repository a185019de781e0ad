"""Sweep workloads: GEMM lists, and compressed images whose content is part of the key."""

import shutil

import numpy as np
import pytest

from nnaccel.cli import main
from sim.bench.convs import LAYERS
from sim.sweep import workloads as wl
from sim.sweep.measures import run_point
from sim.sweep.spec import parse_spec


def _image(tmp_path, name, seed):
    rng = np.random.default_rng(seed)
    np.savez(tmp_path / f"{name}.npz", **{
        "fc1.weight": rng.normal(0, 0.1, (24, 16)).astype(np.float32),
        "fc1.bias": np.zeros(24, np.float32),
        "fc2.weight": rng.normal(0, 0.1, (8, 24)).astype(np.float32),
        "fc2.bias": np.zeros(8, np.float32)})
    np.save(tmp_path / "x.npy", rng.normal(0, 1, (32, 16)).astype(np.float32))
    out = tmp_path / name
    assert main(["compress", str(tmp_path / f"{name}.npz"), "--engine", "systolic", "--rows",
                 "4", "--cols", "4", "--calibration", str(tmp_path / "x.npy"), "-o",
                 str(out)]) == 0
    return out


def test_conv_workloads_are_the_bench_layers():
    alex = [c for c in LAYERS if c.net == "AlexNet"]
    assert len(wl.gemms("conv:AlexNet")) == len(alex) == 5
    # conv1: 3 channels of 11x11 taps, 96 filters, 55x55 outputs
    assert wl.gemms("conv:AlexNet/conv1") == ((55 * 55, 3 * 11 * 11, 96),)
    assert wl.expand("eie", "eie:all")[0] == "eie:Alex-6"
    assert len(wl.expand("eie", "eie:all")) == 9


def test_image_workload(tmp_path, capsys):
    image = _image(tmp_path, "a", 0)
    assert wl.gemms(f"image:{image}") == ((1, 16, 24), (1, 24, 8))
    assert wl.gemms(f"image:{image}:8") == ((8, 16, 24), (8, 24, 8))
    raw = {"systolic": {"rows": [2], "cols": "rows", "workloads": [f"image:{image}:8"]}}
    (point,) = parse_spec(raw).points
    result = run_point(point.to_dict())
    assert result["macs"] == 8 * (16 * 24 + 24 * 8)
    # Another network in the same folder is another point.
    other = _image(tmp_path, "b", 1)
    shutil.rmtree(image)
    shutil.copytree(other, image)
    (again,) = parse_spec(raw).points
    assert again.workload == point.workload and again.ident() != point.ident()
    with pytest.raises(ValueError, match="image:nowhere"):
        parse_spec({"systolic": {"workloads": ["image:nowhere"]}})
