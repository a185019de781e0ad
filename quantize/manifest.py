"""Reading an image manifest as untrusted input: schema, digest, confined files, shapes.

``manifest.json`` is checked in this order, and the first problem is one ``ValueError`` line
that names the field or file:

1. it is a regular file of at most :data:`MAX_MANIFEST_BYTES`, valid JSON, and valid
   against ``manifest.schema.json`` (shipped beside this module);
2. its ``digest`` is the SHA-256 of the manifest itself (:func:`digest`), so no field that
   changes results (ReLU flags, number formats, zero points, the config) can be edited
   without the image saying so;
3. each data file is a plain name inside the image folder (no folders, no ``..``, no link
   that leads out), a regular file whose size equals ``bytes`` and ``shape`` × ``dtype``
   before a byte is read, and whose SHA-256 matches;
4. the per-engine contract: which files a layer has, their dtypes and shapes against the
   layer's ``in``/``out`` and the config, consecutive layers that chain, and input/output
   formats that agree with the config and the layers (:func:`check_layers`, with the
   engine's part from its :mod:`quantize.engines` entry).

:func:`write_file` writes a data file and makes the entry that check 3 verifies.
"""

import hashlib
import json
import os
import stat
from functools import cache
from pathlib import Path

import numpy as np

from .storage import totals

__all__ = ["MAX_MANIFEST_BYTES", "schema", "digest", "read_manifest", "read_file",
           "write_file", "expect_file", "check_layers", "compression_section"]

#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 64 << 20
#: Files of one image are refused beyond this size each (the engines' memories are far
#: smaller; this stops a hostile manifest from making us read without bound).
MAX_FILE_BYTES = 4 << 30

_SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@cache
def schema() -> dict:
    return json.loads(_SCHEMA_PATH.read_text())


def digest(manifest: dict) -> str:
    """SHA-256 (hex) of the manifest without its ``digest`` field, as canonical JSON
    (keys sorted, no spaces, ASCII)."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _where(error) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return path.lstrip(".") or "(top level)"


def _no_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _message(error) -> str:
    last = error.absolute_path[-1] if error.absolute_path else None
    if error.validator == "pattern" and last == "path":
        return (f"{error.instance!r} must be a plain file name inside the image folder (no "
                f"folders, no '..')")
    if error.validator == "pattern" and last == "name":
        return f"{error.instance!r}: layer names are letters, digits, '_', '.' and '-'"
    return error.message


def _regular(path: Path, what: str) -> os.stat_result:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} is missing") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: {what} is a symbolic link; image files must be plain files "
                         f"inside the image folder")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: {what} is not a regular file")
    return st


def read_manifest(directory: Path, *, format_version) -> dict:
    """The validated manifest of the image in ``directory`` (checks 1 and 2);
    ``format_version``: the version read, or a tuple of them."""
    import jsonschema

    path = directory / "manifest.json"
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such image folder")
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"{directory}: no manifest.json (make one with nnaccel "
                                f"compress)")
    st = _regular(path, "manifest.json")
    if st.st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: {st.st_size} bytes, larger than any nnaccel manifest "
                         f"({MAX_MANIFEST_BYTES} at most)")
    try:
        manifest = json.loads(path.read_bytes(), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "nnaccel-image":
        raise ValueError(f"{path}: not an nnaccel image manifest")
    version = manifest.get("format_version")
    versions = format_version if isinstance(format_version, tuple) else (format_version,)
    if version not in versions or isinstance(version, bool):
        raise ValueError(f"{path}: format version {version}, this nnaccel reads version "
                         f"{' and '.join(map(str, versions))}; recompress the model")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema()).iter_errors(manifest))
    if error is not None:
        raise ValueError(f"{path}: {_where(error)}: {_message(error)} (see "
                         f"docs/image-format.md)")
    if manifest["digest"] != digest(manifest):
        raise ValueError(f"{path}: edited after it was written (digest mismatch); "
                         f"recompress, or see docs/image-format.md for how the digest is "
                         f"computed")
    return manifest


def read_file(directory: Path, spec: dict, what: str) -> np.ndarray:
    """One data file of the image, confined, size-checked and verified (check 3)."""
    name = spec["path"]
    if Path(name).name != name or name in (".", "..") or os.sep in name:
        raise ValueError(f"{directory}: {what} path {name!r} must be a file name inside the "
                         f"image folder")
    path = directory / name
    st = _regular(path, what)
    dtype = np.dtype(spec["dtype"])
    want = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
    if spec["bytes"] != want:
        raise ValueError(f"{path}: manifest says {spec['bytes']} bytes but shape "
                         f"{spec['shape']} of {dtype.str} is {want} bytes")
    if want > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {want} bytes is larger than any engine memory image")
    if st.st_size != want:
        raise ValueError(f"{path}: {st.st_size} bytes on disk, the manifest says {want}: the "
                         f"file was truncated or replaced; recompress")
    raw = path.read_bytes()
    if len(raw) != want or hashlib.sha256(raw).hexdigest() != spec["sha256"]:
        raise ValueError(f"{path}: checksum mismatch (file changed since compression)")
    return np.frombuffer(raw, dtype=dtype).reshape(spec["shape"])


def write_file(directory: Path, name: str, array, dtype: str, memory: bool = True) -> dict:
    """Write ``array`` as ``dtype`` to ``directory / name``; return its manifest entry (what
    :func:`read_file` checks). ``memory``: the file is an engine memory's contents."""
    data = np.ascontiguousarray(np.asarray(array).astype(dtype))
    raw = data.tobytes()
    (directory / name).write_bytes(raw)
    return {"path": name, "dtype": np.dtype(dtype).str, "shape": list(data.shape),
            "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "memory": memory}


def expect_file(layer: dict, key: str, dtype: str, shape: tuple) -> None:
    """Layer ``layer`` has a ``key`` file of ``dtype`` and ``shape`` (for the contracts)."""
    f = layer["files"].get(key)
    if f is None:
        raise ValueError(f"layer {layer['name']}: no '{key}' file")
    if np.dtype(f["dtype"]) != np.dtype(dtype):
        raise ValueError(f"layer {layer['name']}: '{key}' must be {np.dtype(dtype).str}, "
                         f"not {f['dtype']}")
    if tuple(f["shape"]) != tuple(shape):
        raise ValueError(f"layer {layer['name']}: '{key}' has shape {f['shape']}, the layer "
                         f"needs {list(shape)}")


def check_layers(manifest: dict, config, contract) -> None:
    """Check 4: layer names distinct and layers that chain, then the engine's own contract
    between layers, files, formats and the config, ``contract(manifest, config)`` (the
    ``check_layers`` of its :mod:`quantize.engines` entry)."""
    layers = manifest["layers"]
    names = [layer["name"] for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError("layer names must be distinct")
    for a, b in zip(layers, layers[1:], strict=False):
        if a["out"] != b["in"]:
            raise ValueError(f"layer {b['name']} takes {b['in']} inputs but layer {a['name']} "
                             f"gives {a['out']}")
    contract(manifest, config)


def compression_section(storage, image_bytes: int, *, excluded: str, ops=None) -> dict:
    """The manifest's ``compression`` section: the per-layer Deep Compression accounting of
    ``storage`` (:class:`~quantize.storage.LayerStorage` records), its totals and ratios, and
    the real bytes of the image beside the dense 32-bit weights.

    ``excluded`` names what the paper accounting leaves out (e.g. ``"biases"``); ``ops``
    maps a layer name to its graph op, added to that layer's record."""
    table = totals(storage)
    dense_bytes = table["dense_bits"] // 8
    layers = [r.as_dict() if ops is None else dict(r.as_dict(), op=ops[r.name])
              for r in storage]
    return {
        "accounting": "Deep Compression (weights: codebook-index bits + relative-index bits + "
                      f"codebooks vs 32-bit dense; no {excluded})",
        "layers": layers,
        "totals": table,
        "compression_ratio": table["ratio_huffman"],
        "image_bytes": image_bytes,
        "dense_weight_bytes": dense_bytes,
        "image_compression_ratio": dense_bytes / image_bytes,
    }
