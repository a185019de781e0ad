"""Loaders: every format, natural layer order, and one-line errors for bad files."""

import numpy as np
import pytest

from quantize.loaders import load_array, load_model


def _tensors(rng, sizes=(6, 5, 4), names=("fc1", "fc2")):
    t = {}
    for name, (n_in, n_out) in zip(names, zip(sizes, sizes[1:], strict=False), strict=True):
        t[f"{name}.weight"] = rng.standard_normal((n_out, n_in)).astype(np.float32)
        t[f"{name}.bias"] = rng.standard_normal(n_out).astype(np.float32)
    return t


def test_npz_natural_order_and_selection(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [3] + [4] * 10 + [2]
    names = [f"fc{i}" for i in range(1, 12)]
    t = _tensors(rng, sizes, names)
    np.savez(tmp_path / "m.npz", **t)
    model = load_model(tmp_path / "m.npz")
    assert [layer.name for layer in model.layers] == names  # fc2 before fc10
    x = rng.standard_normal((5, 3)).astype(np.float32)
    h = x
    for i, name in enumerate(names):
        h = h @ t[f"{name}.weight"].T + t[f"{name}.bias"]
        h = np.maximum(h, 0) if i < len(names) - 1 else h
    np.testing.assert_allclose(model.forward(x), h, rtol=1e-5, atol=1e-6)
    sub = load_model(tmp_path / "m.npz", ["fc2", "fc3"])
    assert [layer.name for layer in sub.layers] == ["fc2", "fc3"]


def test_safetensors(tmp_path):
    from safetensors.numpy import save_file
    t = _tensors(np.random.default_rng(1))
    save_file(t, str(tmp_path / "m.safetensors"))
    model = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(model.layers[1].weight, t["fc2.weight"])


def _onnx_model(path, t, gemm=True):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits, cur = [], [], "x"
    names = ["fc1", "fc2"]
    for i, name in enumerate(names):
        w, b = t[f"{name}.weight"], t[f"{name}.bias"]
        if gemm:
            inits += [numpy_helper.from_array(w, f"{name}.weight"),
                      numpy_helper.from_array(b, f"{name}.bias")]
            nodes.append(helper.make_node("Gemm", [cur, f"{name}.weight", f"{name}.bias"],
                                          [f"{name}_y"], transB=1, name=name))
        else:
            inits += [numpy_helper.from_array(w.T.copy(), f"{name}.weight"),
                      numpy_helper.from_array(b, f"{name}.bias")]
            nodes.append(helper.make_node("MatMul", [cur, f"{name}.weight"], [f"{name}_m"]))
            nodes.append(helper.make_node("Add", [f"{name}_m", f"{name}.bias"], [f"{name}_y"]))
        cur = f"{name}_y"
        if i < len(names) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"{name}_r"]))
            cur = f"{name}_r"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [None, 4])], inits)
    onnx.save(helper.make_model(graph), str(path))


@pytest.mark.parametrize("gemm", [True, False])
def test_onnx(tmp_path, gemm):
    t = _tensors(np.random.default_rng(2))
    _onnx_model(tmp_path / "m.onnx", t, gemm)
    model = load_model(tmp_path / "m.onnx")
    assert [layer.name for layer in model.layers] == ["fc1", "fc2"]
    for name, layer in zip(["fc1", "fc2"], model.layers, strict=True):
        np.testing.assert_allclose(layer.weight, t[f"{name}.weight"])
        np.testing.assert_allclose(layer.bias, t[f"{name}.bias"])


def test_torch_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    t = _tensors(np.random.default_rng(3))
    torch.save({k: torch.from_numpy(v) for k, v in t.items()}, tmp_path / "m.pt")
    model = load_model(tmp_path / "m.pt")
    np.testing.assert_array_equal(model.layers[0].weight, t["fc1.weight"])


def test_pickles_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        load_array(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", **{"fc1.weight": np.array([[1.0]]),
                                      "fc1.bias": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="pickled"):
        load_model(tmp_path / "obj.npz")
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(ValueError, match="never loaded"):
        load_model(tmp_path / "m.pkl")


def test_errors_are_one_line(tmp_path):
    rng = np.random.default_rng(4)
    cases = []
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.npz")
    (tmp_path / "m.h5").write_bytes(b"x")
    cases.append((tmp_path / "m.h5", "unknown weight format"))
    np.savez(tmp_path / "conv.npz", **{"fc1.weight": rng.standard_normal((2, 3, 3))})
    cases.append((tmp_path / "conv.npz", "must be 2-D"))
    bad = rng.standard_normal((2, 3))
    bad[0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **{"fc1.weight": bad})
    cases.append((tmp_path / "nan.npz", "NaN or Inf"))
    np.savez(tmp_path / "chain.npz", **{"fc1.weight": rng.standard_normal((4, 3)),
                                        "fc2.weight": rng.standard_normal((2, 5))})
    cases.append((tmp_path / "chain.npz", "do not chain"))
    np.savez(tmp_path / "bias.npz", **{"fc1.weight": rng.standard_normal((4, 3)),
                                       "fc1.bias": rng.standard_normal(3)})
    cases.append((tmp_path / "bias.npz", "bias has shape"))
    np.savez(tmp_path / "none.npz", w=rng.standard_normal((4, 3)))
    cases.append((tmp_path / "none.npz", "no '<layer>.weight'"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    cases.append((tmp_path / "junk.safetensors", "not a readable"))
    for path, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as e:
            load_model(path)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="no layer named fc9"):
        load_model(tmp_path / "chain.npz", ["fc9"])


def test_onnx_unsupported_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "fc1.weight")
    nodes = [helper.make_node("MatMul", ["x", "fc1.weight"], ["h"]),
             helper.make_node("Sigmoid", ["h"], ["y"], name="act")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "s.onnx"))
    with pytest.raises(ValueError, match="unsupported ONNX op Sigmoid"):
        load_model(tmp_path / "s.onnx")


def _external_onnx(folder):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    folder.mkdir()
    onnx.save_model(helper.make_model(graph), str(folder / "model.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="data.bin", size_threshold=0)
    return w1, w2


def test_onnx_external_data_from_the_model_folder(tmp_path, monkeypatch):
    """External data is read beside the model, not from the current directory (a decoy of
    the same name there is ignored), and never from outside the model's folder."""
    import onnx
    w1, w2 = _external_onnx(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.bin").write_bytes(b"\x7f" * 4096)           # the decoy
    model = load_model(tmp_path / "m" / "model.onnx")
    np.testing.assert_array_equal(model.layers[0].weight, w1.T)
    np.testing.assert_array_equal(model.layers[1].weight, w2.T)

    evil = onnx.load(str(tmp_path / "m" / "model.onnx"), load_external_data=False)
    for location in ("../data.bin", str(tmp_path / "data.bin")):
        for t in evil.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = location
        onnx.save(evil, str(tmp_path / "m" / "evil.onnx"))
        with pytest.raises(ValueError, match="outside the model's folder"):
            load_model(tmp_path / "m" / "evil.onnx")
    (tmp_path / "m" / "link.bin").symlink_to(tmp_path / "data.bin")
    for t in evil.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "link.bin"
    onnx.save(evil, str(tmp_path / "m" / "evil.onnx"))
    with pytest.raises(ValueError, match="outside the model's folder"):
        load_model(tmp_path / "m" / "evil.onnx")
    (tmp_path / "m" / "data.bin").unlink()
    with pytest.raises(ValueError, match="missing beside the model"):
        load_model(tmp_path / "m" / "model.onnx")
