"""The systolic engine's part of the compression front end (its entry in
:mod:`quantize.engines`).

* **config**: buffers that hold every layer of the model (:func:`systolic_config_for`);
* **image layers**: per layer TFLite int8: weights int8 K × N (the transpose of out × in),
  per-output-channel scales, int32 bias, requantization multiplier (int32) and shift;
  inputs and outputs int8 with the first layer's input and the last layer's output scale;
* **contract**: which files a layer has, their dtypes and shapes, quantization that chains;
* **run**: layer by layer, each a GEMM (in chunks that fit the buffers, on a backend that
  has them), the host carrying the activations.
"""

import numpy as np

from hw.systolic.config import SystolicConfig
from hw.systolic.driver import GemmJob

from .int8 import (
    activation_params,
    quantize_bias,
    quantize_multiplier,
    quantize_weights_per_channel,
)
from .manifest import expect_file, write_file

__all__ = ["OPTIONS", "check_options", "systolic_config_for", "config_for", "write_layers",
           "check_layers", "memory", "run"]

#: Sizing options of ``nnaccel compress`` this engine takes, with their defaults.
OPTIONS = {"rows": 8, "cols": 8}


def check_options(args) -> None:
    """``nnaccel compress`` flags the engine fixes: none."""


def systolic_config_for(compressed, rows: int, cols: int, batch: int = 64, **fields):
    """A :class:`~hw.systolic.config.SystolicConfig` whose buffers hold every layer of this
    model with up to ``batch`` inputs per GEMM (larger batches run in chunks)."""
    gemms = [(batch, layer.shape[1], layer.shape[0]) for layer in compressed.final.layers]
    return SystolicConfig.fit(gemms, rows=rows, cols=cols, **fields)


def config_for(compressed, inputs, spec, options: dict, say) -> SystolicConfig:
    """The config for this model: an array of ``options`` rows × cols, buffers that fit."""
    return systolic_config_for(compressed, options["rows"], options["cols"])


def write_layers(compressed, config, out, calibration) -> tuple[list, int, dict]:
    """Write each layer's files into ``out``: ``(layer specs, memory bytes, io formats)``.
    The int8 scales come from the ``calibration`` inputs, which are required."""
    if calibration is None:
        raise ValueError("the systolic engine's int8 scales need inputs: give "
                         "--calibration X.npy (or --train)")
    acts = compressed.final.activations(np.asarray(calibration, np.float32))
    layers, total = [], 0
    n = len(compressed.shared)
    flags = getattr(compressed.final, "relu_flags", None)  # per layer (low-rank factors)
    params = [activation_params(a.min(), a.max()) for a in acts]
    for i, layer in enumerate(compressed.final.layers):
        (s_in, zp_in), (s_out, zp_out) = params[i], params[i + 1]
        relu = i < n - 1 if flags is None else flags[i]
        if relu:  # ReLU outputs: range [0, max], zero point at the bottom
            s_out, zp_out = activation_params(0.0, acts[i + 1].max())
            params[i + 1] = (s_out, zp_out)
        q, s_w = quantize_weights_per_channel(layer.weight)
        bias = quantize_bias(layer.bias, s_in, s_w)
        mult, shift = zip(*(quantize_multiplier(s_in * sw / s_out) for sw in s_w), strict=False)
        files = {
            "weight": write_file(out, f"{layer.name}.weight.bin", q.T, "<i1"),
            "bias": write_file(out, f"{layer.name}.bias.bin", bias, "<i4"),
            "multiplier": write_file(out, f"{layer.name}.multiplier.bin", mult, "<i4"),
            "shift": write_file(out, f"{layer.name}.shift.bin", shift, "<i1"),
            "weight_scale": write_file(out, f"{layer.name}.weight_scale.bin", s_w, "<f8",
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
    io = {"input": {"format": "int8", **layers[0]["input"]},
          "output": {"format": "int8", **layers[-1]["output"]}}
    return layers, total, io


def _check_layer(layer: dict) -> None:
    n, k = layer["out"], layer["in"]
    if set(layer["files"]) != {"weight", "bias", "multiplier", "shift", "weight_scale"}:
        raise ValueError(f"layer {layer['name']}: a systolic layer has the files weight, bias, "
                         f"multiplier, shift and weight_scale, found "
                         f"{', '.join(sorted(layer['files']))}")
    expect_file(layer, "weight", "|i1", (k, n))
    for key, dtype in (("bias", "<i4"), ("multiplier", "<i4"), ("shift", "|i1"),
                       ("weight_scale", "<f8")):
        expect_file(layer, key, dtype, (n,))
    for key in ("input", "output", "act_min", "act_max"):
        if key not in layer:
            raise ValueError(f"layer {layer['name']}: a systolic layer needs '{key}'")
    if layer["act_min"] > layer["act_max"]:
        raise ValueError(f"layer {layer['name']}: act_min {layer['act_min']} is above "
                         f"act_max {layer['act_max']}")
    for key in ("pe_entries", "pe_words", "padding_entries", "codebook_real"):
        if key in layer:
            raise ValueError(f"layer {layer['name']}: '{key}' belongs to EIE images")


def check_layers(manifest: dict, config) -> None:
    """The systolic contract of a manifest's layers and formats
    (:func:`quantize.manifest.check_layers`)."""
    layers = manifest["layers"]
    for layer in layers:
        _check_layer(layer)
    for a, b in zip(layers, layers[1:], strict=False):
        if a["output"] != b["input"]:
            raise ValueError(f"layer {b['name']}'s input quantization {b['input']} is not "
                             f"layer {a['name']}'s output {a['output']}")
    for key, layer in (("input", layers[0]), ("output", layers[-1])):
        fmt = manifest[key]
        if fmt != {"format": "int8", **layer[key]}:
            raise ValueError(f"'{key}' must be int8 with layer {layer['name']}'s {key} scale "
                             f"and zero point, not {fmt}")


def memory(spec: dict, batch: int) -> int:
    """Bytes a golden run of ``batch`` inputs needs for layer ``spec`` (an estimate)."""
    n_in, n_out = spec["in"], spec["out"]
    return 8 * (batch * n_in + n_in * n_out + 3 * batch * n_out)


def _chunks(image, m: int) -> list[slice]:
    cfg = image.config
    kt = max(-(-spec["in"] // cfg.rows) for spec in image.manifest["layers"])
    size = max(1, min(cfg.acc_depth, cfg.act_depth // kt))
    return [slice(i, min(i + size, m)) for i in range(0, m, size)]


def run(image, xq: np.ndarray, backend, progress) -> tuple:
    """``(raw outputs, cycles or None, info)`` of the quantized inputs ``xq`` on ``backend``."""
    a = xq
    per_layer = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=True):
        args = (arrays["weight"], arrays["bias"], arrays["multiplier"], arrays["shift"],
                spec["input"]["zero_point"], spec["output"]["zero_point"], spec["act_min"],
                spec["act_max"])
        parts = _chunks(image, len(a)) if backend.chunked else [slice(0, len(a))]
        runs = backend.gemms(image.config, [GemmJob(a[p], *args) for p in parts],
                             f"{spec['name']}: {len(a)}x{spec['in']}x{spec['out']}", progress)
        a = np.concatenate([r["output"] for r in runs]).astype(np.int64)
        if backend.timed:
            per_layer.append(sum(r["cycles"] for r in runs))
    info = {"layer_cycles": per_layer} if per_layer else {}
    return a, (sum(per_layer) if backend.timed else None), info
