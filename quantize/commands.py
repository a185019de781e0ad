"""``nnaccel compress``, ``nnaccel report`` and ``nnaccel run``."""

import json
import sys
import time
from pathlib import Path

import numpy as np

from sim import budget

from .atomic import check_outputs, output_file
from .compress import CompressSpec, compress
from .engines import ENGINES, image_engine
from .image import load_image, write_image
from .loaders import load_array, load_model
from .report import format_table, report_json, write_plots
from .run import run_image

__all__ = ["register", "cmd_compress", "cmd_report", "cmd_run"]


def _progress(tag: str):
    start = time.monotonic()

    def say(msg: str):
        print(f"[{tag} {time.monotonic() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)
    return say


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress", help="prune, share and quantize a trained MLP into engine memory images",
        description="Deep Compression of a trained MLP (.npz, .safetensors, .onnx, or a "
                    "PyTorch state_dict when torch is installed) into memory images and "
                    "manifest.json for one engine. With --train/--labels: prune -> retrain -> "
                    "share -> fine-tune centroids; otherwise post-training, guided by "
                    "--calibration inputs when given.")
    p.add_argument("model", help="weight file")
    p.add_argument("--engine", choices=list(ENGINES), required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sparsity", help="fraction of weights to prune: 0.9, or per layer "
                                      "fc1=0.93,fc2=0.93,fc3=0.7")
    g.add_argument("--quality", type=float, help="Han's threshold: prune |w| < Q * std(w)")
    p.add_argument("--global", dest="global_prune", action="store_true",
                   help="one magnitude threshold over all layers")
    p.add_argument("--bits", type=int, default=4, help="weight-sharing bits, 2..8 "
                   "(EIE: 4, the codebook index width of its entries, entry 0 reserved for "
                   "0; default 4)")
    p.add_argument("--init", choices=("linear", "density", "random"), default="linear",
                   help="k-means centroid initialization (default linear)")
    p.add_argument("--index-bits", type=int, default=5,
                   help="relative-index bits of the paper's storage accounting, 1..16 "
                        "(default 5)")
    p.add_argument("--layers", help="comma-separated layer names to use (default all)")
    p.add_argument("--pes", type=int, help="EIE processing elements (default 8)")
    p.add_argument("--rows", type=int, help="systolic array rows (default 8)")
    p.add_argument("--cols", type=int, help="systolic array columns (default 8)")
    p.add_argument("--calibration", help="unlabelled inputs X.npy (N x in) for scales and "
                                         "post-training pruning")
    p.add_argument("--train", help="training inputs X.npy (N x in)")
    p.add_argument("--labels", help="training labels y.npy (N,)")
    p.add_argument("--epochs", type=int, help="retraining epochs per prune step, with "
                                              "--train (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True,
                   help="image folder: new, empty, or an image to replace")
    p.add_argument("--force", action="store_true",
                   help="replace -o even if it is a non-empty folder that is not an image")
    p.set_defaults(func=cmd_compress)

    p = subparsers.add_parser("report", help="compression table and plots of an image")
    p.add_argument("image", help="directory written by nnaccel compress")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("run", help="run a compressed network on golden models or RTL")
    p.add_argument("image", help="directory written by nnaccel compress")
    p.add_argument("--input", required=True, help="float inputs X.npy (N x in)")
    p.add_argument("-o", "--output", required=True, help="dequantized outputs Y.npy")
    p.add_argument("--engine", choices=("golden", "rtl"), default="golden")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=cmd_run)


def compress_to_image(model, engine: str, spec, out_dir, *, x_train=None, y_train=None,
                      calibration=None, source=None, progress=None, config=None, force=False,
                      **options) -> tuple:
    """Compress ``model`` and write the image; returns ``(compressed, manifest)``.

    ``options``: sizing options of the engines (``pes=``, ``rows=``, ``cols=``); the engine
    reads its own, at its defaults where not given. ``config`` (an engine config) replaces
    the one sized and tuned for the model, e.g. to reuse an already built engine; its number
    formats then apply as they are."""
    entry = image_engine(engine)
    unknown = sorted(set(options) - {name for e in ENGINES.values() for name in e.options})
    if unknown:
        raise TypeError(f"compress_to_image() got unknown options {', '.join(unknown)}")
    options = {name: default if options.get(name) is None else options[name]
               for name, default in entry.options.items()}
    say = progress or (lambda msg: None)
    compressed = compress(model, spec, x_train, y_train, calibration, progress=say)
    if not any(s.mask.any() for s in compressed.shared):
        raise ValueError("pruning removed every weight of every layer; lower --sparsity or "
                         "--quality")
    inputs = calibration if calibration is not None else x_train
    if config is None:
        config = entry.config_for(compressed, inputs, spec, options, say)
    say(f"writing {engine} images to {out_dir}")
    manifest = write_image(compressed, engine, config, out_dir, calibration=inputs,
                           source=source, force=force)
    return compressed, manifest


def _check_flags(args) -> None:
    """Flags in range and meant for the chosen engine, before any work starts."""
    entry = image_engine(args.engine)
    every = dict.fromkeys(name for other in ENGINES.values() for name in other.options)
    wrong = [f"--{name}" for name in every
             if getattr(args, name) is not None and name not in entry.options]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not used by "
                         f"the {args.engine} engine; drop {'it' if len(wrong) == 1 else 'them'}")
    for name, default in entry.options.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    entry.check_options(args)
    if not 2 <= args.bits <= 8:
        raise ValueError(f"--bits {args.bits}: use 2 to 8 weight-sharing bits")
    if not 1 <= args.index_bits <= 16:
        raise ValueError(f"--index-bits {args.index_bits}: use 1 to 16 relative-index bits")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer")
    if args.epochs is not None:
        if args.train is None:
            raise ValueError("--epochs sets retraining, which needs --train and --labels")
        if args.epochs < 0:
            raise ValueError(f"--epochs {args.epochs}: use 0 or more")
    if args.quality is not None and not (np.isfinite(args.quality) and args.quality >= 0):
        raise ValueError(f"--quality {args.quality}: use a non-negative number (prune |w| < "
                         f"Q * std(w))")
    if args.global_prune and args.sparsity is None:
        raise ValueError("--global spreads one --sparsity over all layers; give --sparsity")
    # The engine config's own validation says what is wrong with a size (one line).
    entry.engine.config(**{name: getattr(args, name) for name in entry.options})


def _check_data(model, x_train, y_train, calibration, args) -> None:
    n_in, n_out = model.sizes[0], model.sizes[-1]
    for flag, x in (("--train", x_train), ("--calibration", calibration)):
        if x is None:
            continue
        if x.ndim != 2 or x.shape[1] != n_in or len(x) == 0:
            raise ValueError(f"{flag}: inputs must have shape (N, {n_in}) with N >= 1 for "
                             f"this model, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{flag}: inputs contain NaN or Inf")
    if y_train is None:
        return
    if y_train.ndim != 1 or len(y_train) != len(x_train):
        raise ValueError(f"--labels: need one label per --train row ({len(x_train)}), got "
                         f"shape {y_train.shape}")
    if y_train.min() < 0 or y_train.max() >= n_out:
        raise ValueError(f"--labels: classes must be 0..{n_out - 1} for a model with {n_out} "
                         f"outputs, found {int(y_train.min())}..{int(y_train.max())}")


def cmd_compress(args) -> int:
    _check_flags(args)
    check_outputs([("-o", args.output)],
                  [("model", args.model), ("--train", args.train), ("--labels", args.labels),
                   ("--calibration", args.calibration)])
    say = _progress("compress")
    names = [n.strip() for n in args.layers.split(",")] if args.layers else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise ValueError(f"--layers {args.layers!r}: give distinct layer names separated by "
                         f"commas")
    model = load_model(args.model, names)
    say(f"loaded {args.model}: layers {', '.join(layer.name for layer in model.layers)} "
        f"({'-'.join(map(str, model.sizes))})")
    x_train = load_array(args.train, "--train") if args.train else None
    y_train = load_array(args.labels, "--labels") if args.labels else None
    if (x_train is None) != (y_train is None):
        raise ValueError("--train and --labels go together")
    if y_train is not None and not np.issubdtype(y_train.dtype, np.integer):
        raise ValueError(f"{args.labels}: labels must be integers, got {y_train.dtype}")
    calibration = load_array(args.calibration, "--calibration") if args.calibration else None
    _check_data(model, x_train, y_train, calibration, args)
    entry = image_engine(args.engine)
    spec = CompressSpec(bits=args.bits, sparsity=args.sparsity, quality=args.quality,
                        global_prune=args.global_prune,
                        reserve_zero=entry.engine.zero_codebook_entry,
                        init=args.init, index_bits=args.index_bits,
                        retrain_epochs=30 if args.epochs is None else args.epochs,
                        seed=args.seed)
    _, manifest = compress_to_image(model, args.engine, spec, args.output, x_train=x_train,
                                    y_train=y_train, calibration=calibration,
                                    source=str(args.model), progress=say, force=args.force,
                                    **{name: getattr(args, name) for name in entry.options})
    c = manifest["compression"]
    print(f"{args.output}: compression {c['compression_ratio']:.1f}x (Deep Compression "
          f"accounting), image {c['image_bytes']} bytes = {c['image_compression_ratio']:.1f}x "
          f"smaller than 32-bit dense weights")
    return 0


def cmd_report(args) -> int:
    image = load_image(args.image)
    if args.json:
        print(json.dumps(report_json(image), indent=1))
        return 0
    print(format_table(image))
    for path in write_plots(image, Path(args.image)):
        print(f"wrote {path}")
    return 0


def cmd_run(args) -> int:
    budget.set_limit(args.max_memory)
    out = Path(args.output)
    if out.suffix != ".npy":
        raise ValueError(f"-o {out}: outputs are written as a NumPy .npy file; name it *.npy")
    check_outputs([("-o", out)], [("--input", args.input), ("the image", args.image)])
    image = load_image(args.image)
    x = load_array(args.input, "--input")
    say = _progress("run")
    result = run_image(image, x, args.engine, progress=say)
    saturated = result.info.get("saturated_inputs", 0)
    if saturated:
        say(f"warning: {saturated} of {x.size} input values lie outside the image's input "
            f"format ({image.manifest['input']['format']}) and were saturated")
    with output_file(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, result.outputs, allow_pickle=False)
    msg = f"{out}: {result.outputs.shape[0]} outputs from the {image.engine} " \
          f"{args.engine} model"
    if result.cycles is not None:
        msg += f", {result.cycles} cycles ({result.cycles / len(result.outputs):.0f} per input)"
    print(msg)
    return 0
