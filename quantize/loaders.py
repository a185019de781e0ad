"""Load trained MLP weights from files written by strangers, without ever unpickling.

Formats (by extension):

* ``.npz`` — NumPy archive, read with ``allow_pickle=False``;
* ``.safetensors`` — through safetensors' NumPy backend (no torch needed);
* ``.onnx`` — the initializers and the graph of a Gemm/MatMul/Add/Relu MLP;
* ``.pt`` / ``.pth`` — a PyTorch ``state_dict``, only when torch is installed, read with
  ``torch.load(..., weights_only=True)``.

Weight-only files follow PyTorch's convention: ``<layer>.weight`` (out × in) and
``<layer>.bias``, an MLP with ReLU between layers, layers in natural name order (fc1, fc2,
…, fc10). Every failure is a ``ValueError``/``OSError`` with a one-line message.
"""

import os
import re
from pathlib import Path

import numpy as np

from .model import Layer, Mlp

__all__ = ["load_model", "load_array", "layers_from_tensors", "natural_key", "FORMATS"]

FORMATS = (".npz", ".safetensors", ".onnx", ".pt", ".pth")
_PICKLES = (".pkl", ".pickle", ".joblib")


def natural_key(name: str):
    """Sort key that puts fc2 before fc10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _check_exists(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a weight file")


def load_array(path, name: str = "array") -> np.ndarray:
    """A ``.npy`` (or single-array ``.npz``) file, refusing pickled object arrays."""
    path = Path(path)
    _check_exists(path)
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: {name} must be a .npy file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and magic[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: not a NumPy file (no .npy/.npz header); save {name} with "
                         f"numpy.save")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError(f"{path}: holds pickled Python objects, which are never loaded "
                             f"(they can run code); save a plain numeric array") from None
        raise ValueError(f"{path}: not a readable NumPy file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if len(data.files) != 1:
                raise ValueError(f"{path}: expected one array, found {len(data.files)}")
            data = data[data.files[0]]
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ValueError(f"{path}: {name} must be real numbers, got dtype {data.dtype}")
    return data


def layers_from_tensors(tensors: dict, source: str, names=None) -> Mlp:
    """Build an :class:`Mlp` from ``<layer>.weight`` / ``<layer>.bias`` tensors."""
    weights = {k[: -len(".weight")]: v for k, v in tensors.items() if k.endswith(".weight")}
    if not weights:
        raise ValueError(f"{source}: no '<layer>.weight' tensors found "
                         f"(keys: {', '.join(sorted(tensors)[:8]) or 'none'})")
    order = sorted(weights, key=natural_key)
    if names:
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"{source}: no layer named {', '.join(missing)} "
                             f"(layers: {', '.join(order)})")
        order = list(names)
    layers = []
    for name in order:
        w = np.asarray(weights[name])
        if w.ndim != 2:
            raise ValueError(f"{source}: {name}.weight must be 2-D (out x in), "
                             f"got shape {w.shape}")
        b = tensors.get(f"{name}.bias")
        b = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b)
        for what, a in (("weight", w), ("bias", b)):
            if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{source}: {name}.{what} has dtype {a.dtype}, "
                                 f"expected real numbers")
        try:
            layers.append(Layer(name, w, b.reshape(-1) if b.ndim == 2 and 1 in b.shape else b))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    try:
        return Mlp(layers)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError(f"{path}: a single array, not an archive of named tensors")
            return {k: data[k] for k in data.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError(f"{path}: holds pickled Python objects, which are never loaded "
                             f"(they can run code); save plain numeric arrays") from None
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None
    except Exception as e:  # zipfile.BadZipFile and friends
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None


def _load_safetensors(path: Path) -> dict:
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError
        raise ValueError(f"{path}: not a readable .safetensors file "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _load_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path}: reading PyTorch files needs torch "
                         f"(pip install 'nnaccel[torch]'), or export to .safetensors") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: refused by torch.load(weights_only=True) "
                         f"({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (name -> tensor), "
                         f"got {type(state).__name__}")
    return {k: v.detach().cpu().float().numpy() for k, v in state.items()
            if hasattr(v, "detach")}


def _load_onnx(path: Path, names=None) -> Mlp:
    import onnx
    from onnx import numpy_helper
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from None
    graph = model.graph
    init = {t.name: _onnx_tensor(path, t, numpy_helper) for t in graph.initializer}
    # Each value name is either the running activation or a constant.
    current = None
    inputs = [i.name for i in graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one graph input, found {len(inputs)}")
    current = inputs[0]
    layers: list[list] = []  # [name, weight(out x in), bias, relu_after]
    for node in graph.node:
        ins = list(node.input)
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if ins[0] != current or attrs.get("transA", 0):
                raise ValueError(f"{path}: Gemm node {node.name!r} is not a plain "
                                 f"x @ W layer on the running activation")
            w = init.get(ins[1])
            if w is None:
                raise ValueError(f"{path}: Gemm {node.name!r} weight {ins[1]!r} "
                                 f"is not an initializer")
            w = w.astype(np.float32) * attrs.get("alpha", 1.0)
            w = w if attrs.get("transB", 0) else w.T
            b = init.get(ins[2]) if len(ins) > 2 and ins[2] else None
            b = (np.zeros(w.shape[0], np.float32) if b is None
                 else b.astype(np.float32) * attrs.get("beta", 1.0))
            layers.append([_onnx_name(ins[1], node.name, len(layers)), w, b, False])
        elif node.op_type == "MatMul":
            if ins[0] != current or ins[1] not in init:
                raise ValueError(f"{path}: MatMul node {node.name!r} is not x @ W "
                                 f"with W an initializer")
            w = init[ins[1]].astype(np.float32).T
            layers.append([_onnx_name(ins[1], node.name, len(layers)), w,
                           np.zeros(w.shape[0], np.float32), False])
        elif node.op_type == "Add":
            other = [i for i in ins if i != current]
            if current not in ins or len(other) != 1 or other[0] not in init or not layers \
                    or layers[-1][3]:
                raise ValueError(f"{path}: Add node {node.name!r} is not a bias added "
                                 f"after a MatMul/Gemm")
            layers[-1][2] = layers[-1][2] + init[other[0]].astype(np.float32).reshape(-1)
        elif node.op_type == "Relu":
            if ins[0] != current or not layers or layers[-1][3]:
                raise ValueError(f"{path}: Relu node {node.name!r} is not after a layer")
            layers[-1][3] = True
        elif node.op_type in ("Identity", "Flatten") and ins[0] == current:
            pass
        else:
            raise ValueError(f"{path}: unsupported ONNX op {node.op_type} (node "
                             f"{node.name!r}); only Gemm/MatMul/Add/Relu MLPs are read")
        current = node.output[0]
    if not layers:
        raise ValueError(f"{path}: no Gemm/MatMul layers in the graph")
    for name, _, _, relu in layers[:-1]:
        if not relu:
            raise ValueError(f"{path}: no Relu after layer {name}; the engines run "
                             f"ReLU between layers")
    if layers[-1][3]:
        raise ValueError(f"{path}: the last layer is followed by Relu; expected logits")
    tensors = {}
    for name, w, b, _ in layers:
        tensors[f"{name}.weight"], tensors[f"{name}.bias"] = w, b
    order = [layer[0] for layer in layers]
    return layers_from_tensors(tensors, str(path), names or order)


def _onnx_tensor(path: Path, tensor, numpy_helper) -> np.ndarray:
    """An initializer's values; external data only from a plain file in the model's folder
    (resolved against that folder, never the current directory), within the file's size."""
    from onnx import TensorProto
    if tensor.data_location != TensorProto.EXTERNAL:
        try:
            return numpy_helper.to_array(tensor)
        except Exception as e:
            raise ValueError(f"{path}: initializer {tensor.name!r} is unreadable "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             ) from None
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    folder = Path(os.path.realpath(path.parent))
    target = Path(os.path.realpath(folder / location))
    if (not location or Path(location).is_absolute() or ".." in Path(location).parts
            or folder not in target.parents):
        raise ValueError(f"{path}: initializer {tensor.name!r} points to external data "
                         f"{location!r} outside the model's folder; keep the data file "
                         f"beside the .onnx file")
    if not target.is_file():
        raise ValueError(f"{path}: external data file {location!r} of initializer "
                         f"{tensor.name!r} is missing beside the model")
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
    except ValueError:
        raise ValueError(f"{path}: initializer {tensor.name!r} has a non-numeric external "
                         f"data offset/length") from None
    size = target.stat().st_size
    count = int(np.prod(tensor.dims, dtype=np.int64)) if len(tensor.dims) else 1
    if offset < 0 or offset > size or (length >= 0 and offset + length > size) \
            or count * 8 > (1 << 34):
        raise ValueError(f"{path}: initializer {tensor.name!r}: external data range "
                         f"offset {offset}, length {length} does not fit {location!r} "
                         f"({size} bytes)")
    try:
        return numpy_helper.to_array(tensor, base_dir=str(folder))
    except Exception as e:
        raise ValueError(f"{path}: initializer {tensor.name!r}: external data unreadable "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                         ) from None


def _onnx_name(weight_name: str, node_name: str, index: int) -> str:
    if weight_name.endswith(".weight"):
        return weight_name[: -len(".weight")]
    return node_name or f"fc{index + 1}"


def load_model(path, layers=None) -> Mlp:
    """Load an MLP from ``path``; ``layers`` selects layer names (default: all, in order)."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in _PICKLES:
        raise ValueError(f"{path}: pickle files are never loaded (they can run code); "
                         f"save the weights as .npz or .safetensors")
    if suffix == ".onnx":
        return _load_onnx(path, layers)
    if suffix == ".npz":
        tensors = _load_npz(path)
    elif suffix == ".safetensors":
        tensors = _load_safetensors(path)
    elif suffix in (".pt", ".pth"):
        tensors = _load_torch(path)
    else:
        raise ValueError(f"{path}: unknown weight format {suffix or '(no extension)'}; "
                         f"expected one of {', '.join(FORMATS)}")
    return layers_from_tensors(tensors, str(path), layers)
