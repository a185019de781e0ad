"""Memory images of a compressed MLP for one engine and config, with ``manifest.json``.

``write_image`` turns a :class:`quantize.compress.Compressed` model into per-layer files of
what the engine's memories hold (raw little-endian arrays) and a manifest naming the
format version, the engine and its full config, every layer (shape, ReLU, files with
dtype/shape/bytes/sha256), the number formats and scales, and the compression table.
The folder is written atomically (:mod:`quantize.atomic`: nothing half written, no stale
files). ``load_image`` reads it back as untrusted input (:mod:`quantize.manifest`: schema,
digest, confined and size-checked files, shapes against the config) and refuses an image
made for another engine or config. ``docs/image-format.md`` documents every field.

What the layers hold, and the contract they are checked against, is each engine's own
(its entry in :mod:`quantize.engines`): the interleaved-CSC sparse matrix, pointers,
fixed-point codebook and bias for **eie** (:mod:`quantize.eie_engine`), TFLite int8
weights, bias and requantization parameters for **systolic**
(:mod:`quantize.systolic_engine`).
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim import engines

from .atomic import image_folder
from .engines import image_engine
from .graph_image import GRAPH_FORMAT_VERSION, GraphImage, load_graph
from .manifest import check_layers, compression_section, digest, read_file, read_manifest

__all__ = ["FORMAT", "FORMAT_VERSION", "GRAPH_FORMAT_VERSION", "Image", "GraphImage",
           "write_image", "load_image", "load_report_weights", "config_from_dict", "is_graph"]

FORMAT = "nnaccel-image"
#: The version of MLP images (``layers``); graph images (``graph``) are
#: :data:`GRAPH_FORMAT_VERSION`, and both are read.
FORMAT_VERSION = 2
#: The float weights of every stage, for ``nnaccel report``'s plots (not an engine memory).
REPORT_FILE = "report_weights.npz"


def config_from_dict(engine: str, d: dict):
    return engines.engine(engine).config.from_dict(d)


@dataclass
class Image:
    """A loaded image: ``directory``, ``manifest`` (dict), ``engine``, ``config`` and the
    arrays of each layer (``layers[i][file_key]``)."""

    directory: Path
    manifest: dict
    engine: str
    config: object
    layers: list[dict]

    @property
    def image_bytes(self) -> int:
        return self.manifest["compression"]["image_bytes"]


def write_image(compressed, engine: str, config, out_dir, calibration=None,
                source: str | None = None, force: bool = False) -> dict:
    """Write the images and ``manifest.json`` into ``out_dir``; return the manifest.

    ``out_dir`` is replaced whole and atomically: it may be new, empty or an older image; a
    non-empty folder that is not an image is refused unless ``force``."""
    with image_folder(out_dir, force=force) as out:
        return _write_image(compressed, engine, config, out, calibration, source)


def _write_image(compressed, engine, config, out: Path, calibration, source) -> dict:
    layers, image_bytes, io = image_engine(engine).write_layers(compressed, config, out,
                                                                calibration)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine": engine,
        "config": dataclasses.asdict(config), "source": source,
        "layers": layers, **io,
        "compression": compression_section(compressed.storage, image_bytes,
                                           excluded="biases or pointers"),
        "log": compressed.log,
    }
    np.savez(out / REPORT_FILE, **{
        f"{stage}/{layer.name}": layer.weight
        for stage, model in (("original", compressed.original), ("pruned", compressed.pruned),
                             ("shared", compressed.final)) for layer in model.layers})
    raw = (out / REPORT_FILE).read_bytes()
    manifest["report"] = {"path": REPORT_FILE, "dtype": "|u1", "shape": [len(raw)],
                          "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                          "memory": False}
    manifest = _finite(json.loads(json.dumps(manifest, default=_json)))
    manifest["digest"] = digest(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _finite(o):
    """JSON has no infinity: a ratio of a layer that stores nothing is written as null."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def _json(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def is_graph(image) -> bool:
    """Whether ``image`` is a graph image (:class:`GraphImage`) rather than an MLP image."""
    return isinstance(image, GraphImage)


def load_image(directory, engine: str | None = None, config=None) -> Image | GraphImage:
    """Read and verify an image (MLP or graph); refuse one made for another ``engine`` or
    ``config``."""
    d = Path(directory)
    manifest = read_manifest(d, format_version=(FORMAT_VERSION, GRAPH_FORMAT_VERSION))
    kind = manifest["engine"]
    if engine is not None and engine != kind:
        raise ValueError(f"{d}: image made for the {kind} engine, not for {engine}")
    try:
        image_config = config_from_dict(kind, manifest["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{d / 'manifest.json'}: config: {e}") from None
    if config is not None and config != image_config:
        raise ValueError(f"{d}: image made for {image_config}, but the engine is {config}; "
                         f"recompress for this config")
    if manifest["format_version"] == GRAPH_FORMAT_VERSION:
        return load_graph(d, manifest, image_config)
    try:
        check_layers(manifest, image_config, image_engine(kind).check_layers)
    except ValueError as e:
        raise ValueError(f"{d / 'manifest.json'}: {e}") from None
    layers = [{key: read_file(d, f, f"layer {spec['name']} '{key}'")
               for key, f in spec["files"].items()} for spec in manifest["layers"]]
    return Image(d, manifest, kind, image_config, layers)


def load_report_weights(image: Image) -> dict:
    """The float weights of each stage (original, pruned, shared) saved for the report."""
    spec = image.manifest.get("report")
    if spec is None:
        raise ValueError(f"{image.directory}: the image has no report weights")
    raw = read_file(image.directory, spec, "report weights").tobytes()
    import io
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
