"""The EIE engine's part of the compression front end (its entry in :mod:`quantize.engines`).

* **config**: the most fraction bits the data allows for activations and weights, the
  memories sized for the model (:func:`eie_config_for`);
* **image layers**: per layer the interleaved-CSC sparse matrix packed into the engine's
  words (:mod:`hw.eie.csc`, PE after PE), column pointers, the 16-entry signed 16-bit
  fixed-point codebook (entry 0 = 0) and the bias in the activations' fixed-point format;
  inputs and outputs in that format;
* **contract**: which files a layer has, their dtypes and shapes against the config;
* **run**: the image built once by the driver, every input through all layers.
"""

import numpy as np

from hw.eie import csc
from hw.eie import driver as eie_driver
from hw.eie.config import EieConfig
from hw.eie.csc import unpack_words
from sim.golden import eie as eie_golden

from .backends import dense_layers
from .fixedpoint import frac_bits_for, to_fixed
from .manifest import expect_file, write_file

__all__ = ["OPTIONS", "check_options", "choose_eie_fracs", "eie_config_for", "config_for",
           "write_layers", "check_layers", "memory", "eie_layers", "run"]

#: Sizing options of ``nnaccel compress`` this engine takes, with their defaults.
OPTIONS = {"pes": 8}
_ACT_MARGIN = 1.25


#: Codebook index width of the engine's entries: one per config (with a 4-bit zero run, eight
#: entries fill a 64-bit word). A layer shared at fewer bits uses ``2**bits`` of its entries.
INDEX_BITS = 4


def check_options(args) -> None:
    """``nnaccel compress`` flags the engine fixes (``args.bits``: an int or
    ``{layer: bits}``)."""
    widths = args.bits.values() if isinstance(args.bits, dict) else [args.bits]
    if max(widths) > INDEX_BITS:
        raise ValueError(f"--bits {max(widths)}: the EIE engine's entries hold a {INDEX_BITS}-bit "
                         f"codebook index (and a 4-bit zero run); use 2 to {INDEX_BITS} bits "
                         f"per layer with --engine eie")


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


def config_for(compressed, inputs, spec, options: dict, say) -> EieConfig:
    """The config for this model: fixed-point formats from ``inputs``, memories that fit."""
    act_frac, weight_frac = choose_eie_fracs(compressed, inputs)
    say(f"EIE fixed point: activations Q{15 - act_frac}.{act_frac}, "
        f"weights Q{15 - weight_frac}.{weight_frac}")
    return eie_config_for(compressed, options["pes"], act_frac, weight_frac,
                          index_bits=INDEX_BITS)


def write_layers(compressed, config, out, calibration) -> tuple[list, int, dict]:
    """Write each layer's files into ``out``: ``(layer specs, memory bytes, io formats)``.
    ``calibration`` inputs (optional) let the bias absorb the products' truncation."""
    calibration = None if calibration is None else np.asarray(calibration, np.float32)
    layers, total = [], 0
    acts = None if calibration is None else compressed.final.activations(calibration)
    n = len(compressed.shared)
    relu = getattr(compressed.final, "relu", True)     # False for --activation none
    flags = getattr(compressed.final, "relu_flags", None)  # per layer (low-rank factors)
    ptr_dtype = "<u2" if config.ptr_bits <= 16 else "<u4"
    for i, (layer, s) in enumerate(zip(compressed.final.layers, compressed.shared, strict=False)):
        if not s.reserve_zero or s.bits > config.index_bits:
            raise ValueError(f"layer {layer.name}: the EIE engine needs sharing at up to "
                             f"{config.index_bits} bits with codebook entry 0 reserved for 0")
        # A narrower layer's codebook fills the first 2**bits entries; the rest stay 0, unused.
        codebook = np.zeros(config.codebook_size, np.int64)
        codebook[:s.codebook.size] = to_fixed(s.codebook, config.weight_frac,
                                              config.weight_width)
        codebook[0] = 0
        enc = csc.encode(s.index, config, codebook)
        words = [csc.pack_words(enc.pe_entries(p), config) for p in range(config.pes)]
        files = {
            "spmat": write_file(out, f"{layer.name}.spmat.bin", np.concatenate(words), "<u8"),
            "ptr": write_file(out, f"{layer.name}.ptr.bin", enc.pointers, ptr_dtype),
            "codebook": write_file(out, f"{layer.name}.codebook.bin", codebook, "<i2"),
            "bias": write_file(out, f"{layer.name}.bias.bin",
                               _bias(layer, s, config, None if acts is None else acts[i]),
                               "<i2"),
        }
        total += sum(f["bytes"] for f in files.values() if f["memory"])
        layers.append({
            "name": layer.name, "in": layer.shape[1], "out": layer.shape[0],
            "relu": relu and i < n - 1 if flags is None else flags[i], "files": files,
            "pe_entries": enc.entry_counts.tolist(),
            "pe_words": [int(len(w)) for w in words],
            "padding_entries": int(enc.padding_counts.sum()),
            "codebook_real": s.codebook.astype(float).tolist(),
        })
    fmt = {"format": "fixed", "width": config.act_width, "frac": config.act_frac}
    return layers, total, {"input": fmt, "output": dict(fmt)}


def _bias(layer, shared, config, inputs) -> np.ndarray:
    """Bias in the activations' format. With calibration inputs it also absorbs the mean
    loss of the engine's truncated products (each ``(w * a) >> weight_frac`` rounds toward
    minus infinity: half an LSB on average per non-zero product)."""
    bias = layer.bias.astype(np.float64) * 2.0 ** config.act_frac
    if inputs is not None:
        active = (np.asarray(inputs) != 0).astype(np.float64)
        products = shared.mask.astype(np.float64) @ active.mean(axis=0)
        bias = bias + 0.5 * products
    return to_fixed(bias, 0, config.act_width)


def _check_layer(layer: dict, config) -> None:
    pes, epw = config.pes, config.entries_per_word
    for key in ("pe_entries", "pe_words"):
        if len(layer.get(key, ())) != pes:
            raise ValueError(f"layer {layer['name']}: '{key}' must list {pes} values, one per "
                             f"PE of the config")
    words = [-(-n // epw) for n in layer["pe_entries"]]
    if words != layer["pe_words"]:
        raise ValueError(f"layer {layer['name']}: 'pe_words' does not match 'pe_entries' "
                         f"at {epw} entries per word")
    if set(layer["files"]) != {"spmat", "ptr", "codebook", "bias"}:
        raise ValueError(f"layer {layer['name']}: an EIE layer has the files spmat, ptr, "
                         f"codebook and bias, found {', '.join(sorted(layer['files']))}")
    expect_file(layer, "spmat", "<u8", (sum(words),))
    expect_file(layer, "ptr", "<u2" if config.ptr_bits <= 16 else "<u4", (pes, layer["in"] + 1))
    expect_file(layer, "codebook", "<i2", (config.codebook_size,))
    expect_file(layer, "bias", "<i2", (layer["out"],))
    for key in ("input", "output", "act_min", "act_max"):
        if key in layer:
            raise ValueError(f"layer {layer['name']}: '{key}' belongs to systolic images")


def check_layers(manifest: dict, config) -> None:
    """The EIE contract of a manifest's layers and formats
    (:func:`quantize.manifest.check_layers`)."""
    layers = manifest["layers"]
    if len(layers) > config.max_layers:
        raise ValueError(f"{len(layers)} layers, the config holds {config.max_layers} "
                         f"(max_layers)")
    for layer in layers:
        _check_layer(layer, config)
    for key in ("input", "output"):
        fmt = manifest[key]
        if fmt != {"format": "fixed", "width": config.act_width, "frac": config.act_frac}:
            raise ValueError(f"'{key}' must be the config's activation format (fixed, "
                             f"width {config.act_width}, frac {config.act_frac}), "
                             f"not {fmt}")


def memory(spec: dict, batch: int) -> int:
    """Bytes a golden run of ``batch`` inputs needs for layer ``spec`` (an estimate)."""
    n_in, n_out = spec["in"], spec["out"]
    return n_in * n_out * 2 + sum(spec["pe_entries"]) * 64 + batch * (n_in + n_out) * 8


def eie_layers(image) -> list[dict]:
    """Per layer: the :class:`hw.eie.csc.CscLayer`, codebook, bias and ReLU flag."""
    cfg = image.config
    out = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=False):
        words = np.split(arrays["spmat"], np.cumsum(spec["pe_words"])[:-1])
        entries = np.concatenate([unpack_words(w, n, cfg)
                                  for w, n in zip(words, spec["pe_entries"], strict=False)])
        offsets = np.concatenate(([0], np.cumsum(spec["pe_entries"]))).astype(np.int64)
        codebook = arrays["codebook"].astype(np.int64)
        layer = csc.CscLayer(spec["out"], spec["in"], cfg.pes, cfg.index_bits, cfg.zrun_bits,
                             entries, offsets, arrays["ptr"].astype(np.int64), codebook)
        out.append({"name": spec["name"], "csc": layer, "codebook": codebook,
                    "bias": arrays["bias"].astype(np.int64), "relu": spec["relu"]})
    return out


def run(image, xq: np.ndarray, backend, progress) -> tuple:
    """``(raw outputs, cycles or None, info)`` of the quantized inputs ``xq`` on ``backend``."""
    layers = eie_layers(image)
    built = eie_driver.build_image(image.config, [
        {"csc": spec["csc"], "codebook": spec["codebook"], "bias": spec["bias"],
         "relu": spec["relu"]} for spec in layers])
    results = backend.eie(layers, built, xq, progress)
    outputs = np.array([np.asarray(r["outputs"]) for r in results], dtype=np.int64)
    if not backend.timed:
        return outputs, None, {}
    cycles = [r["cycles"] for r in results]
    info = {"cycles_per_input": cycles, "ideal_cycles": [
        eie_driver.ideal_cycles(built, _layer_inputs(layers, x, image.config)) for x in xq]}
    if all("layer_cycles" in r for r in results):
        info["layer_cycles"] = [int(c) for c in np.sum([r["layer_cycles"] for r in results],
                                                       axis=0)]
    return outputs, int(sum(cycles)), info


def _layer_inputs(layers, x, config):
    return [np.asarray(x)] + eie_golden.run(dense_layers(layers), x, config)[:-1]
