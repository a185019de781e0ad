"""``nnaccel compress``, ``nnaccel report`` and ``nnaccel run``."""

import json
import sys
import time
from pathlib import Path

import numpy as np

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
    p.add_argument("--engine", choices=("eie", "systolic"), required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sparsity", help="fraction of weights to prune: 0.9, or per layer "
                                      "fc1=0.93,fc2=0.93,fc3=0.7")
    g.add_argument("--quality", type=float, help="Han's threshold: prune |w| < Q * std(w)")
    p.add_argument("--global", dest="global_prune", action="store_true",
                   help="one magnitude threshold over all layers")
    p.add_argument("--bits", type=int, default=4, help="weight-sharing bits, 2..8 "
                   "(EIE: the codebook index width, entry 0 reserved for 0; default 4)")
    p.add_argument("--init", choices=("linear", "density", "random"), default="linear",
                   help="k-means centroid initialization (default linear)")
    p.add_argument("--index-bits", type=int, default=5,
                   help="relative-index bits of the paper's storage accounting (default 5)")
    p.add_argument("--layers", help="comma-separated layer names to use (default all)")
    p.add_argument("--pes", type=int, default=8, help="EIE processing elements (default 8)")
    p.add_argument("--rows", type=int, default=8, help="systolic array rows (default 8)")
    p.add_argument("--cols", type=int, default=8, help="systolic array columns (default 8)")
    p.add_argument("--calibration", help="unlabelled inputs X.npy (N x in) for scales and "
                                         "post-training pruning")
    p.add_argument("--train", help="training inputs X.npy (N x in)")
    p.add_argument("--labels", help="training labels y.npy (N,)")
    p.add_argument("--epochs", type=int, default=30, help="retraining epochs per prune step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output directory")
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
    p.set_defaults(func=cmd_run)


def compress_to_image(model, engine: str, spec, out_dir, *, pes=8, rows=8, cols=8,
                      x_train=None, y_train=None, calibration=None, source=None,
                      progress=None, config=None) -> tuple:
    """Compress ``model`` and write the image; returns ``(compressed, manifest)``.

    ``config`` (an engine config) replaces the one sized and tuned for the model, e.g. to
    reuse an already built engine; its number formats then apply as they are."""
    from .compress import compress
    from .image import choose_eie_fracs, eie_config_for, systolic_config_for, write_image
    say = progress or (lambda msg: None)
    compressed = compress(model, spec, x_train, y_train, calibration, progress=say)
    inputs = calibration if calibration is not None else x_train
    if config is not None:
        pass
    elif engine == "eie":
        act_frac, weight_frac = choose_eie_fracs(compressed, inputs)
        say(f"EIE fixed point: activations Q{15 - act_frac}.{act_frac}, "
            f"weights Q{15 - weight_frac}.{weight_frac}")
        config = eie_config_for(compressed, pes, act_frac, weight_frac,
                                index_bits=spec.bits)
    else:
        config = systolic_config_for(compressed, rows, cols)
    say(f"writing {engine} images to {out_dir}")
    manifest = write_image(compressed, engine, config, out_dir, calibration=inputs,
                           source=source)
    return compressed, manifest


def cmd_compress(args) -> int:
    from .compress import CompressSpec
    from .loaders import load_array, load_model
    say = _progress("compress")
    names = [n.strip() for n in args.layers.split(",")] if args.layers else None
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
    sparsity = args.sparsity
    spec = CompressSpec(bits=args.bits, sparsity=sparsity, quality=args.quality,
                        global_prune=args.global_prune, reserve_zero=args.engine == "eie",
                        init=args.init, index_bits=args.index_bits, retrain_epochs=args.epochs,
                        seed=args.seed)
    _, manifest = compress_to_image(model, args.engine, spec, args.output, pes=args.pes,
                                    rows=args.rows, cols=args.cols, x_train=x_train,
                                    y_train=y_train, calibration=calibration,
                                    source=str(args.model), progress=say)
    c = manifest["compression"]
    print(f"{args.output}: compression {c['compression_ratio']:.1f}x (Deep Compression "
          f"accounting), image {c['image_bytes']} bytes = {c['image_compression_ratio']:.1f}x "
          f"smaller than 32-bit dense weights")
    return 0


def cmd_report(args) -> int:
    from .image import load_image
    from .report import format_table, report_json, write_plots
    image = load_image(args.image)
    if args.json:
        print(json.dumps(report_json(image), indent=1))
        return 0
    print(format_table(image))
    for path in write_plots(image, Path(args.image)):
        print(f"wrote {path}")
    return 0


def cmd_run(args) -> int:
    from .image import load_image
    from .loaders import load_array
    from .run import run_image
    image = load_image(args.image)
    x = load_array(args.input, "--input")
    result = run_image(image, x, args.engine, progress=_progress("run"))
    np.save(args.output, result.outputs, allow_pickle=False)
    msg = f"{args.output}: {result.outputs.shape[0]} outputs from the {image.engine} " \
          f"{args.engine} model"
    if result.cycles is not None:
        msg += f", {result.cycles} cycles ({result.cycles / len(result.outputs):.0f} per input)"
    print(msg)
    return 0
