"""Memory images of a compressed MLP for one engine and config, with ``manifest.json``.

``write_image`` turns a :class:`quantize.compress.Compressed` model into per-layer files of
what the engine's memories hold (raw little-endian arrays) and a manifest naming the
format version, the engine and its full config, every layer (shape, ReLU, files with
dtype/shape/bytes/sha256), the number formats and scales, and the compression table.
The folder is written atomically (:mod:`quantize.atomic`: nothing half written, no stale
files). ``load_image`` reads it back as untrusted input (:mod:`quantize.manifest`: schema,
digest, confined and size-checked files, shapes against the config) and refuses an image
made for another engine or config. ``docs/image-format.md`` documents every field.

* **eie**: per layer the interleaved-CSC sparse matrix packed into the engine's words
  (:mod:`hw.eie.csc`, PE after PE), column pointers, the 16-entry signed 16-bit fixed-point
  codebook (entry 0 = 0) and the bias in the activations' fixed-point format. Fraction bits
  of activations and weights are chosen from the data and are part of the config.
* **systolic**: per layer TFLite int8: weights int8 K × N (the transpose of out × in),
  per-output-channel scales, int32 bias, requantization multiplier (int32) and shift.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.eie import csc
from hw.eie.config import EieConfig
from hw.systolic.config import SystolicConfig
from sim import engines

from .atomic import image_folder
from .fixedpoint import frac_bits_for, to_fixed
from .int8 import (
    activation_params,
    quantize_bias,
    quantize_multiplier,
    quantize_weights_per_channel,
)
from .manifest import check_layers, digest, read_file, read_manifest
from .storage import totals

__all__ = ["FORMAT", "FORMAT_VERSION", "ENGINES", "Image", "write_image", "load_image",
           "load_report_weights",
           "eie_config_for", "systolic_config_for", "config_from_dict", "choose_eie_fracs"]

FORMAT = "nnaccel-image"
FORMAT_VERSION = 2
ENGINES = tuple(sorted(engines.ENGINES))
_ACT_MARGIN = 1.25
#: The float weights of every stage, for ``nnaccel report``'s plots (not an engine memory).
REPORT_FILE = "report_weights.npz"


def config_from_dict(engine: str, d: dict):
    return engines.engine(engine).config.from_dict(d)


def choose_eie_fracs(compressed, inputs=None, width: int = 16) -> tuple[int, int]:
    """``(act_frac, weight_frac)`` from the data: the most fraction bits for which the
    largest codebook value, and the largest input, pre-activation or bias seen on
    ``inputs`` (times a 1.25 margin), still fit ``width`` bits. Without inputs the
    activation format keeps 8 fraction bits."""
    w_max = max(float(np.abs(s.codebook).max()) for s in compressed.shared)
    weight_frac = frac_bits_for(w_max, width)
    if inputs is None:
        return 8, weight_frac
    acts = compressed.final.activations(np.asarray(inputs, np.float32))
    model = compressed.final
    a_max = max(float(np.abs(a).max()) for a in acts)
    pre = [a @ layer.weight.T + layer.bias for a, layer in zip(acts, model.layers, strict=False)]
    a_max = max([a_max] + [float(np.abs(p).max()) for p in pre]
                + [float(np.abs(layer.bias).max()) for layer in model.layers])
    return frac_bits_for(a_max * _ACT_MARGIN, width), weight_frac


def eie_config_for(compressed, pes: int, act_frac: int, weight_frac: int, **fields):
    """An :class:`~hw.eie.config.EieConfig` for ``pes`` PEs whose memories fit this model.

    The image keeps a spare sparse-matrix word per PE and a spare pointer per layer."""
    # Encoding only reads pes and the entry format; the sizes come from the layers below.
    fields = {"pes": pes, "act_frac": act_frac, "weight_frac": weight_frac,
              "max_layers": max(4, len(compressed.shared)), **fields}
    probe = EieConfig(**{**fields, "acc_width": 64})
    words = np.zeros(pes, dtype=np.int64)
    for s in compressed.shared:
        layer = csc.encode(s.index, probe)
        words += -(-layer.entry_counts // probe.entries_per_word)
    layers = compressed.final.layers
    needs = {
        "spmat_depth": int(words.max()) + 1,
        "ptr_depth": sum(layer.shape[1] + 2 for layer in layers),
        "act_depth": max(-(-max(layer.shape) // pes) for layer in layers),
        "bias_depth": sum(-(-layer.shape[0] // pes) for layer in layers),
    }
    return EieConfig.fit(needs, **fields)


def systolic_config_for(compressed, rows: int, cols: int, batch: int = 64, **fields):
    """A :class:`~hw.systolic.config.SystolicConfig` whose buffers hold every layer of this
    model with up to ``batch`` inputs per GEMM (larger batches run in chunks)."""
    gemms = [(batch, layer.shape[1], layer.shape[0]) for layer in compressed.final.layers]
    return SystolicConfig.fit(gemms, rows=rows, cols=cols, **fields)


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


def _write(out: Path, name: str, array: np.ndarray, dtype: str, memory: bool = True) -> dict:
    data = np.ascontiguousarray(np.asarray(array).astype(dtype))
    raw = data.tobytes()
    (out / name).write_bytes(raw)
    return {"path": name, "dtype": np.dtype(dtype).str, "shape": list(data.shape),
            "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "memory": memory}


def _eie_layers(compressed, config, out: Path, calibration=None) -> tuple[list, int]:
    layers, total = [], 0
    acts = None if calibration is None else compressed.final.activations(calibration)
    n = len(compressed.shared)
    ptr_dtype = "<u2" if config.ptr_bits <= 16 else "<u4"
    for i, (layer, s) in enumerate(zip(compressed.final.layers, compressed.shared, strict=False)):
        if not s.reserve_zero or s.bits != config.index_bits:
            raise ValueError(f"layer {layer.name}: the EIE engine needs {config.index_bits}-bit "
                             f"sharing with codebook entry 0 reserved for 0")
        codebook = to_fixed(s.codebook, config.weight_frac, config.weight_width)
        codebook[0] = 0
        enc = csc.encode(s.index, config, codebook)
        words = [csc.pack_words(enc.pe_entries(p), config) for p in range(config.pes)]
        files = {
            "spmat": _write(out, f"{layer.name}.spmat.bin", np.concatenate(words), "<u8"),
            "ptr": _write(out, f"{layer.name}.ptr.bin", enc.pointers, ptr_dtype),
            "codebook": _write(out, f"{layer.name}.codebook.bin", codebook, "<i2"),
            "bias": _write(out, f"{layer.name}.bias.bin",
                           _eie_bias(layer, s, config, None if acts is None else acts[i]),
                           "<i2"),
        }
        total += sum(f["bytes"] for f in files.values() if f["memory"])
        layers.append({
            "name": layer.name, "in": layer.shape[1], "out": layer.shape[0],
            "relu": i < n - 1, "files": files,
            "pe_entries": enc.entry_counts.tolist(),
            "pe_words": [int(len(w)) for w in words],
            "padding_entries": int(enc.padding_counts.sum()),
            "codebook_real": s.codebook.astype(float).tolist(),
        })
    return layers, total


def _eie_bias(layer, shared, config, inputs) -> np.ndarray:
    """Bias in the activations' format. With calibration inputs it also absorbs the mean
    loss of the engine's truncated products (each ``(w * a) >> weight_frac`` rounds toward
    minus infinity: half an LSB on average per non-zero product)."""
    bias = layer.bias.astype(np.float64) * 2.0 ** config.act_frac
    if inputs is not None:
        active = (np.asarray(inputs) != 0).astype(np.float64)
        products = shared.mask.astype(np.float64) @ active.mean(axis=0)
        bias = bias + 0.5 * products
    return to_fixed(bias, 0, config.act_width)


def _systolic_layers(compressed, calibration, out: Path) -> tuple[list, int]:
    acts = compressed.final.activations(calibration)
    layers, total = [], 0
    n = len(compressed.shared)
    params = [activation_params(a.min(), a.max()) for a in acts]
    for i, layer in enumerate(compressed.final.layers):
        (s_in, zp_in), (s_out, zp_out) = params[i], params[i + 1]
        relu = i < n - 1
        if relu:  # ReLU outputs: range [0, max], zero point at the bottom
            s_out, zp_out = activation_params(0.0, acts[i + 1].max())
            params[i + 1] = (s_out, zp_out)
        q, s_w = quantize_weights_per_channel(layer.weight)
        bias = quantize_bias(layer.bias, s_in, s_w)
        mult, shift = zip(*(quantize_multiplier(s_in * sw / s_out) for sw in s_w), strict=False)
        files = {
            "weight": _write(out, f"{layer.name}.weight.bin", q.T, "<i1"),
            "bias": _write(out, f"{layer.name}.bias.bin", bias, "<i4"),
            "multiplier": _write(out, f"{layer.name}.multiplier.bin", mult, "<i4"),
            "shift": _write(out, f"{layer.name}.shift.bin", shift, "<i1"),
            "weight_scale": _write(out, f"{layer.name}.weight_scale.bin", s_w, "<f8",
                                   memory=False),
        }
        total += sum(f["bytes"] for f in files.values() if f["memory"])
        layers.append({
            "name": layer.name, "in": layer.shape[1], "out": layer.shape[0], "relu": relu,
            "files": files,
            "input": {"scale": s_in, "zero_point": zp_in},
            "output": {"scale": s_out, "zero_point": zp_out},
            "act_min": zp_out if relu else -128, "act_max": 127,
        })
    return layers, total


def write_image(compressed, engine: str, config, out_dir, calibration=None,
                source: str | None = None, force: bool = False) -> dict:
    """Write the images and ``manifest.json`` into ``out_dir``; return the manifest.

    ``out_dir`` is replaced whole and atomically: it may be new, empty or an older image; a
    non-empty folder that is not an image is refused unless ``force``."""
    with image_folder(out_dir, force=force) as out:
        return _write_image(compressed, engine, config, out, calibration, source)


def _write_image(compressed, engine, config, out: Path, calibration, source) -> dict:
    if engine == "eie":
        layers, image_bytes = _eie_layers(
            compressed, config, out,
            None if calibration is None else np.asarray(calibration, np.float32))
        io = {"input": {"format": "fixed", "width": config.act_width, "frac": config.act_frac},
              "output": {"format": "fixed", "width": config.act_width, "frac": config.act_frac}}
    elif engine == "systolic":
        if calibration is None:
            raise ValueError("the systolic engine's int8 scales need inputs: give "
                             "--calibration X.npy (or --train)")
        layers, image_bytes = _systolic_layers(compressed, np.asarray(calibration, np.float32),
                                               out)
        io = {"input": {"format": "int8", **layers[0]["input"]},
              "output": {"format": "int8", **layers[-1]["output"]}}
    else:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    table = totals(compressed.storage)
    dense_bytes = table["dense_bits"] // 8
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine": engine,
        "config": dataclasses.asdict(config), "source": source,
        "layers": layers, **io,
        "compression": {
            "accounting": "Deep Compression (weights: codebook-index bits + relative-index "
                          "bits + codebooks vs 32-bit dense; no biases or pointers)",
            "layers": [r.as_dict() for r in compressed.storage],
            "totals": table,
            "compression_ratio": table["ratio_huffman"],
            "image_bytes": image_bytes,
            "dense_weight_bytes": dense_bytes,
            "image_compression_ratio": dense_bytes / image_bytes,
        },
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


def load_image(directory, engine: str | None = None, config=None) -> Image:
    """Read and verify an image; refuse one made for another ``engine`` or ``config``."""
    d = Path(directory)
    manifest = read_manifest(d, format_version=FORMAT_VERSION)
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
    try:
        check_layers(manifest, image_config)
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
