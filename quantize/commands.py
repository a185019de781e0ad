"""``nnaccel compress``, ``nnaccel report`` and ``nnaccel run``."""

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from sim import budget

from .atomic import check_outputs, output_file
from .compress import CompressSpec, compress, parse_bits, parse_sparsity
from .compress_graph import compress_graph, weight_nodes
from .engines import ENGINES, image_engine
from .graph_image import graph_config, write_graph_image
from .graph_quant import quantize_graph
from .graph_run import add_winograd, winograd_names
from .graph_sensitivity import format_scans, scan_graph, search_graph
from .image import is_graph, load_image, write_image
from .loaders import load_array, load_model
from .lowrank import LowRankSpec, compress_low_rank, parse_ranks
from .onnx_import import load_onnx_graph
from .onnx_qdq_import import is_quantized_onnx, write_onnx_qdq_image
from .report import format_layers, format_table, layer_rows, report_json, write_plots
from .run import cycles_path, read_cycles, record_cycles, run_graph_image, run_image
from .sensitivity import (
    METHODS,
    MethodSearch,
    bits_scan,
    pick_bits,
    prune_scan,
    search,
    search_methods,
    validation_split,
)
from .sensitivity import Metric as ValMetric
from .share import MAX_BITS, MIN_BITS
from .ternary import QuantSpec, eie_config, quantize_mlp
from .tflite_import import PATHS, raw_inputs, raw_outputs, write_tflite_image
from .weight_only import ACTIVATIONS, LinearChain, is_mlp_chain, mlp_graph

__all__ = ["register", "cmd_compress", "cmd_report", "cmd_run"]

#: What :func:`quantize.report.write_plots` writes (``weights.png`` only when the image keeps
#: its float weights).
_PLOT_FILES = ("weights.png", "sizes.png")


def _progress(tag: str):
    start = time.monotonic()

    def say(msg: str):
        print(f"[{tag} {time.monotonic() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)
    return say


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress", help="prune, share and quantize a trained network into engine memory "
                         "images",
        description="Deep Compression of a trained MLP (.npz, .safetensors, .onnx, or a "
                    "PyTorch state_dict when torch is installed) into memory images and "
                    "manifest.json for one engine. With --train/--labels: prune -> retrain -> "
                    "share -> fine-tune centroids; otherwise post-training, guided by "
                    "--calibration inputs when given. An ONNX graph with more than Linear "
                    "layers and ReLU (Conv, pools, Add, Concat, GELU, ...) becomes a graph "
                    "image for the systolic engine (needs --calibration).")
    p.add_argument("model", help="weight file")
    p.add_argument("--engine", choices=list(ENGINES), required=True)
    p.add_argument("--activation", choices=list(ACTIVATIONS),
                   help="activation between the layers of a weight-only file (npz, "
                        "safetensors, pt); default relu. EIE runs relu and none")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sparsity", help="fraction of weights to prune: 0.9, or per layer "
                                      "fc1=0.93,fc2=0.93,fc3=0.7")
    g.add_argument("--quality", type=float, help="Han's threshold: prune |w| < Q * std(w)")
    p.add_argument("--global", dest="global_prune", action="store_true",
                   help="one magnitude threshold over all layers")
    p.add_argument("--bits", help="weight-sharing bits, 2..8: one width, or per "
                   "layer fc1=4,fc2=3,fc3=5 or per graph node conv1=6,fc=3 (a bare number sets the "
                   "layers not named). EIE: "
                   "2..4; its entries hold one 4-bit codebook index for every layer, so a "
                   "layer at b < 4 bits uses 2**b of its 16 codebook entries; the accounting "
                   "counts it at its true b bits (default 4; with --max-loss the widest "
                   "allowed, default 4 on EIE, 8 on systolic)")
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
    p.add_argument("--max-loss", type=float, metavar="P",
                   help="accuracy budget in points. With --train/--labels: ternary, "
                        "pruning + sharing and low-rank + pruning candidates (or only the "
                        "--ternary / --low-rank ones), each estimated by --folds-fold "
                        "cross-validation on the training data; the most compressive within "
                        "P points of the float model there is retrained on all of it. With "
                        "--calibration only: per-layer --sparsity and --bits from sensitivity "
                        "scans on a held-out split (agreement with the float model's answers "
                        "is the accuracy). A graph (CNN): per-node --sparsity and --bits from "
                        "scans on a --val-fraction split of --train/--labels (or of "
                        "--calibration), the pruned candidates retrained on the rest and "
                        "judged as int8 (scaled from --calibration, held-out rows left out). "
                        "Replaces "
                        "--sparsity, --quality and --bits (--bits: the widest allowed)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="folds of --max-loss's cross-validation with --train/--labels "
                        "(default 5, seeded by --seed)")
    p.add_argument("--val-fraction", type=float,
                   help="share of the calibration (or, for --sensitivity and a graph's "
                        "--max-loss, training) inputs held out for --max-loss/--sensitivity "
                        "(default 0.2, seeded by --seed)")
    p.add_argument("--sensitivity", action="store_true",
                   help="print each layer's accuracy drop at 2..8 bits and over a grid of "
                        "sparsities on the validation split, and the smallest bits per layer "
                        "within --max-loss (default 0.5); with --max-loss and -o the image is "
                        "written too")
    p.add_argument("--test", help="test inputs X.npy: accuracy reported after compressing, "
                                  "never used to choose anything")
    p.add_argument("--test-labels", help="test labels y.npy for --test")
    p.add_argument("--distill", action="store_true",
                   help="retrain towards a mix of the labels and the float model's softened "
                        "outputs (Hinton); needs --train/--labels")
    p.add_argument("--temperature", type=float,
                   help="softmax temperature of --distill (default 4)")
    p.add_argument("--distill-weight", type=float,
                   help="weight of the softened outputs in --distill's targets, 0..1 "
                        "(default 0.5)")
    m = p.add_argument_group(
        "ternary, binary and low-rank weights (one of them; docs/compression-methods.md)")
    m.add_argument("--ternary", action="store_true",
                   help="trained ternary quantization (TTQ): each layer 0, -Wn and +Wp with "
                        "learned scales; trained with --train/--labels, post-training "
                        "otherwise. Zero below --ternary-threshold T * max|w|, or the "
                        "--sparsity quantile of |w| per layer. EIE: 2-bit codebooks")
    m.add_argument("--ternary-threshold", type=float, metavar="T",
                   help="--ternary threshold as a fraction of each layer's max|w| (default "
                        "0.05)")
    m.add_argument("--binary", action="store_true",
                   help="binary weights: sign(w) times a per-layer scale, trained with "
                        "--train/--labels (straight-through), post-training otherwise")
    m.add_argument("--per-channel", action="store_true",
                   help="--binary with one scale per output channel (systolic only)")
    m.add_argument("--low-rank", metavar="LAYER=RANK,...",
                   help="SVD factorization W = U V of the named layers at these ranks, e.g. "
                        "fc1=64,fc2=32; --sparsity and --bits apply to the factors (fc1 "
                        "stands for fc1.v and fc1.u)")
    m.add_argument("--low-rank-energy", type=float, metavar="E",
                   help="like --low-rank, every layer at the smallest rank keeping E of its "
                        "squared singular values (e.g. 0.95)")
    p.add_argument("--winograd", nargs="?", const="all", metavar="LAYERS",
                   help="graph images: run 3x3 stride-1 convolutions as Winograd F(2x2,3x3), "
                        "16 GEMMs on the engine (all of them, or LAYERS: conv1,conv2)")
    p.add_argument("--litert", choices=PATHS, default="reference",
                   help="a fully-integer .tflite keeps its own quantization with the "
                        "arithmetic of these LiteRT kernels (default reference)")
    p.add_argument("-o", "--output",
                   help="image folder: new, empty, or an image to replace")
    p.add_argument("--force", action="store_true",
                   help="replace -o even if it is a non-empty folder that is not an image")
    p.set_defaults(func=cmd_compress)

    p = subparsers.add_parser("report", help="compression table, per-layer costs and (with "
                                             "--plots) plots of an image")
    p.add_argument("image", help="directory written by nnaccel compress")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--batch", type=int,
                   help="inputs per run for the cycle estimates (default 1, or the run's "
                        "with --cycles)")
    p.add_argument("--cycles", metavar="FILE",
                   help="cycles a run measured (Y.cycles.json beside nnaccel run's -o Y.npy "
                        "on rtl), shown beside the cost model")
    p.add_argument("--plots", metavar="DIR",
                   help="write weights.png and sizes.png into DIR (created if missing; not "
                        "inside the image folder, which the report never writes into)")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("run", help="run a compressed network on golden models or RTL")
    p.add_argument("image", help="directory written by nnaccel compress")
    p.add_argument("--input", required=True, help="float inputs X.npy (N x in)")
    p.add_argument("-o", "--output", required=True, help="dequantized outputs Y.npy")
    p.add_argument("--engine", choices=("golden", "rtl"), default="golden")
    p.add_argument("--raw", action="store_true",
                   help="graph images: --input and -o are int8 tensors at the image's own "
                        "input and output scale and zero point (a .tflite's NHWC images)")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=cmd_run)


def compress_to_image(model, engine: str, spec, out_dir, *, x_train=None, y_train=None,
                      calibration=None, source=None, progress=None, config=None, force=False,
                      compressed=None, method=None, **options) -> tuple:
    """Compress ``model`` and write the image; returns ``(compressed, manifest)``.

    ``options``: sizing options of the engines (``pes=``, ``rows=``, ``cols=``); the engine
    reads its own, at its defaults where not given. ``config`` (an engine config) replaces
    the one sized and tuned for the model, e.g. to reuse an already built engine; its number
    formats then apply as they are. ``compressed``: an already compressed model (e.g. from
    :func:`quantize.sensitivity.search`) to write instead of compressing ``model``.
    ``method``: a :class:`~quantize.ternary.QuantSpec` (ternary or binary weights) or a
    :class:`~quantize.lowrank.LowRankSpec` to run in place of pruning + sharing (``spec``);
    on EIE, ternary and binary layers get the 2-bit config of
    :func:`quantize.ternary.eie_config`."""
    entry = image_engine(engine)
    unknown = sorted(set(options) - {name for e in ENGINES.values() for name in e.options})
    if unknown:
        raise TypeError(f"compress_to_image() got unknown options {', '.join(unknown)}")
    options = {name: default if options.get(name) is None else options[name]
               for name, default in entry.options.items()}
    say = progress or (lambda msg: None)
    if isinstance(method, QuantSpec) and method.per_channel and engine == "eie":
        raise ValueError("--binary --per-channel: a scale per output channel does not fit "
                         "EIE's one codebook per layer; use --engine systolic")
    if compressed is None:
        compressed = _compress(model, spec, method, entry.engine.zero_codebook_entry,
                               x_train, y_train, calibration, say)
    if not any(s.mask.any() for s in compressed.shared):
        raise ValueError("pruning removed every weight of every layer; lower --sparsity or "
                         "--quality")
    inputs = calibration if calibration is not None else x_train
    if config is None and engine == "eie" and isinstance(method, QuantSpec):
        config = eie_config(compressed, options["pes"], inputs)
    elif config is None:
        config = entry.config_for(compressed, inputs, spec, options, say)
    say(f"writing {engine} images to {out_dir}")
    manifest = write_image(compressed, engine, config, out_dir, calibration=inputs,
                           source=source, force=force)
    return compressed, manifest


def _compress(model, spec, method, reserve_zero: bool, x_train, y_train, calibration, say):
    """Pruning + sharing by ``spec``, or the ternary/binary/low-rank ``method``."""
    if method is None:
        return compress(model, spec, x_train, y_train, calibration, progress=say)
    if isinstance(method, QuantSpec):
        return quantize_mlp(model, method, x_train, y_train, progress=say)
    if isinstance(method, LowRankSpec):
        return compress_low_rank(model, method, reserve_zero, x_train, y_train, progress=say)
    raise TypeError(f"method {method!r}: give a QuantSpec or a LowRankSpec")


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
    args.bits_text = "4" if args.bits is None else str(args.bits)
    args.bits_given = args.bits is not None
    args.bits = _bits_flag(args.bits_text)
    widths = args.bits.values() if isinstance(args.bits, dict) else [args.bits]
    for width in widths:
        if not MIN_BITS <= width <= MAX_BITS:
            raise ValueError(f"--bits {width}: use {MIN_BITS} to {MAX_BITS} weight-sharing bits")
    entry.check_options(args)
    _check_budget_flags(args)
    _check_method_flags(args)
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


def _bits_flag(text: str):
    """``--bits``: an int, or ``{layer: bits}`` (a bare number under the key ``""``); the
    layer names are checked once the model is loaded."""
    try:
        return int(text)
    except ValueError:
        pass
    out = {}
    for part in text.split(","):
        key, _, value = part.strip().rpartition("=")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            raise ValueError(f"--bits {text!r}: use an integer or layer=bits pairs, e.g. "
                             f"fc1=4,fc2=3") from None
    return out


def _check_budget_flags(args) -> None:
    """--max-loss, --sensitivity, --distill and --test: what goes with what, in range."""
    budgeted = args.max_loss is not None or args.sensitivity
    data = args.train is not None or args.calibration is not None
    if args.max_loss is not None and not (np.isfinite(args.max_loss) and args.max_loss >= 0):
        raise ValueError(f"--max-loss {args.max_loss}: use a non-negative number of accuracy "
                         f"points")
    if budgeted and not data:
        raise ValueError(f"{'--max-loss' if args.max_loss is not None else '--sensitivity'} "
                         f"measures accuracy on a split of the data: give --train/--labels or "
                         f"--calibration")
    if args.folds is not None:
        if args.max_loss is None or args.train is None:
            raise ValueError("--folds sets the cross-validation of --max-loss with --train/"
                             "--labels; give both")
        if args.folds < 2:
            raise ValueError(f"--folds {args.folds}: use 2 or more")
    if args.max_loss is not None:
        for flag, given in (("--sparsity", args.sparsity is not None),
                            ("--quality", args.quality is not None),
                            ("--global", args.global_prune)):
            if given:
                raise ValueError(f"--max-loss chooses each layer's sparsity; drop {flag}")
        if isinstance(args.bits, dict):
            raise ValueError("--max-loss chooses each layer's bits; give one --bits (the "
                             "widest allowed) or none")
    if args.val_fraction is not None:
        if not budgeted:
            raise ValueError("--val-fraction sizes the split of --max-loss/--sensitivity; "
                             "give one of them")
        if not 0 < args.val_fraction < 1:
            raise ValueError(f"--val-fraction {args.val_fraction}: use a number between 0 "
                             f"and 1")
    if args.output is None and not args.sensitivity:
        raise ValueError("-o/--output is required: the image folder to write")
    if args.distill and args.train is None:
        raise ValueError("--distill retrains towards the float model's outputs: give --train "
                         "and --labels")
    for flag, value in (("--temperature", args.temperature),
                        ("--distill-weight", args.distill_weight)):
        if value is not None and not args.distill:
            raise ValueError(f"{flag} sets --distill; add --distill")
    if args.temperature is not None and not (np.isfinite(args.temperature)
                                             and args.temperature > 0):
        raise ValueError(f"--temperature {args.temperature}: use a positive number")
    if args.distill_weight is not None and not (np.isfinite(args.distill_weight)
                                                and 0 <= args.distill_weight <= 1):
        raise ValueError(f"--distill-weight {args.distill_weight}: use a number in [0, 1]")
    if (args.test is None) != (args.test_labels is None):
        raise ValueError("--test and --test-labels go together")


def _check_mlp_budget(args) -> None:
    """What only an MLP refuses: its labelled --max-loss cross-validates (a graph's holds
    out --val-fraction instead)."""
    if (args.val_fraction is not None and args.max_loss is not None and args.train is not None
            and not args.sensitivity):
        raise ValueError("--max-loss with --train/--labels estimates by cross-validation; "
                         "drop --val-fraction (--folds sets it)")


def _method_flags(args) -> list[str]:
    return [flag for flag, given in (("--ternary", args.ternary), ("--binary", args.binary),
                                     ("--low-rank", args.low_rank is not None),
                                     ("--low-rank-energy", args.low_rank_energy is not None))
            if given]


def _check_method_flags(args) -> None:
    """--ternary, --binary, --low-rank(-energy): one of them, with the flags it takes."""
    if args.ternary_threshold is not None and not args.ternary:
        raise ValueError("--ternary-threshold sets the --ternary threshold; add --ternary")
    if args.per_channel and not args.binary:
        raise ValueError("--per-channel gives --binary weights a scale per output channel; "
                         "add --binary")
    methods = _method_flags(args)
    if not methods:
        return
    if len(methods) > 1:
        raise ValueError(f"{methods[0]} and {methods[1]} are different methods; give one")
    method = methods[0]
    budgeted = args.max_loss is not None
    if budgeted and method in ("--binary", "--low-rank-energy"):
        raise ValueError(f"--max-loss chooses --ternary sparsities or the factor sparsity of "
                         f"--low-rank ranks; {method} leaves nothing to choose")
    if budgeted and args.train is None:
        raise ValueError(f"--max-loss with {method} trains its candidates: give --train and "
                         f"--labels")
    if budgeted and args.ternary_threshold is not None:
        raise ValueError("--max-loss chooses the --ternary sparsities; drop "
                         "--ternary-threshold")
    for flag, given in (("--sensitivity", args.sensitivity),
                        ("--quality", args.quality is not None),
                        ("--global", args.global_prune),
                        ("--distill", args.distill and not budgeted)):
        if given:
            raise ValueError(f"{flag} is for pruning + sharing; {method} does not take it")
    if args.activation not in (None, "relu"):
        raise ValueError(f"{method} is for MLPs with ReLU between layers; drop --activation "
                         f"{args.activation}")
    if method in ("--ternary", "--binary") and args.bits_given:
        raise ValueError(f"{method} weights are 2-bit codebooks (0 and two scales); drop --bits")
    if args.binary and args.sparsity is not None:
        raise ValueError("--binary keeps every weight; drop --sparsity (--ternary takes it)")
    if args.ternary_threshold is not None:
        if args.sparsity is not None:
            raise ValueError("--ternary-threshold and --sparsity both set the ternary zeros; "
                             "give one")
        if not 0 <= args.ternary_threshold < 1:
            raise ValueError(f"--ternary-threshold {args.ternary_threshold}: use a fraction "
                             f"in [0, 1) of max|w|")
    if args.per_channel and args.engine == "eie":
        raise ValueError("--binary --per-channel: a scale per output channel does not fit "
                         "EIE's one codebook per layer; use --engine systolic")
    if args.low_rank_energy is not None and not 0 < args.low_rank_energy <= 1:
        raise ValueError(f"--low-rank-energy {args.low_rank_energy}: use a fraction in (0, 1]")


def _method_spec(args, names: list[str]):
    """The QuantSpec or LowRankSpec the method flags ask for, or ``None``."""
    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    if args.ternary or args.binary:
        threshold = 0.05 if args.ternary_threshold is None else args.ternary_threshold
        sparsity = (None if args.sparsity is None
                    else parse_sparsity(args.sparsity, names))
        return QuantSpec("ternary" if args.ternary else "binary", threshold=threshold,
                         sparsity=sparsity, per_channel=args.per_channel, seed=args.seed,
                         index_bits=args.index_bits, **epochs)
    if args.low_rank is not None or args.low_rank_energy is not None:
        ranks = None if args.low_rank is None else parse_ranks(args.low_rank, names)
        return LowRankSpec(ranks=ranks, energy=args.low_rank_energy, sparsity=args.sparsity,
                           bits=args.bits_text, seed=args.seed, index_bits=args.index_bits,
                           **epochs)
    return None


def _print_method(log: dict) -> None:
    method = log.get("method")
    if method in ("ternary", "binary"):
        how = "trained" if log["trained"] else "post-training"
        extra = ", per channel" if log.get("per_channel") else ""
        print(f"method: {method} weights ({how}{extra})")
    elif method == "low-rank":
        ranks = ",".join(f"{k}={v['rank']}" for k, v in log["factors"].items())
        print(f"method: low rank {ranks} ({'fine-tuned' if log['trained'] else 'no training'})")


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


def _onnx_graph(path):
    """The graph of an ONNX file, or ``None`` when it is a plain Linear/ReLU chain that the
    MLP loader reads (those keep their MLP images). The graph importer's error (naming the
    node and op) wins over the MLP loader's."""
    try:
        graph = load_onnx_graph(path)
    except ValueError as graph_error:
        try:
            load_model(path)
        except (ValueError, OSError):
            raise graph_error from None
        return None
    return None if is_mlp_chain(graph) else graph


def _graph_ops(graph) -> str:
    ops = [n.op for n in graph.nodes if n.op not in ("Linear", "Relu")]
    return ", ".join(dict.fromkeys(ops)) or "Linear layers without ReLU between them"


def _choose_path(args):
    """``(graph or None, activation, note)``: what the model file holds and the activation
    between its layers, refused in one line where the engine cannot run it."""
    if Path(args.model).suffix.lower() == ".onnx":
        graph = _onnx_graph(args.model)
        if graph is None:
            if args.activation not in (None, "relu"):
                raise ValueError(f"{args.model}: the ONNX graph has Relu between its layers; "
                                 f"drop --activation {args.activation}")
            return None, "relu", "relu (from the ONNX graph)"
        if args.activation is not None:
            raise ValueError(f"--activation {args.activation}: {args.model} is a graph that "
                             f"states its own activations; drop --activation")
        if args.engine != "systolic":
            raise ValueError(f"{args.model}: the graph has {_graph_ops(graph)}; the EIE engine "
                             f"runs Linear layers with ReLU between them: use --engine "
                             f"systolic")
        return graph, None, None
    activation = args.activation or "relu"
    note = activation + (" (default; give --activation to change)"
                         if args.activation is None else "")
    if args.engine == "eie" and activation not in ("relu", "none"):
        raise ValueError(f"--activation {activation}: the EIE engine runs relu or none between "
                         f"layers; use --engine systolic for {activation}")
    if args.engine == "eie" and activation == "none" and (args.calibration or args.train):
        raise ValueError("--activation none on EIE: compress without --calibration/--train "
                         "(those stages assume ReLU between layers), or use --engine systolic")
    return None, activation, note


def _graph_inputs(graph, x, flag):
    if x is None:
        return None
    x = np.asarray(x, np.float64)
    shape, size = graph.input_shape, int(np.prod(graph.input_shape))
    if x.ndim == 2 and x.shape[1] == size and len(shape) > 1:
        x = x.reshape(len(x), *shape)
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or len(x) == 0:
        dims = ", ".join(map(str, shape))
        raise ValueError(f"{flag}: inputs must have shape (N, {dims}) (or (N, {size})) with "
                         f"N >= 1 for this graph, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{flag}: inputs contain NaN or Inf")
    return x


def _check_graph_flags(args) -> None:
    """Flags a graph does not take, refused in one line saying what it takes instead."""
    methods = _method_flags(args)
    if methods:
        raise ValueError(f"{methods[0]} is for MLP images; {args.model} is a graph")
    for flag, given in (("--quality", args.quality is not None), ("--global", args.global_prune),
                        ("--layers", args.layers is not None), ("--test", args.test is not None)):
        if given:
            raise ValueError(f"{flag} is for MLP images; a graph takes --sparsity (one figure "
                             f"or per node: conv1=0.5,fc=0.8)")
    if args.folds is not None:
        raise ValueError("--folds is for MLP images; a graph's --max-loss holds out "
                         "--val-fraction of the training inputs (default 0.2)")
    if args.distill and args.max_loss is None:
        raise ValueError("--distill on a graph retrains the candidates of --max-loss; add "
                         "--max-loss or drop --distill")
    if args.calibration is None and args.output is not None:
        raise ValueError("the systolic engine's int8 scales need inputs: give --calibration "
                         "X.npy")


def _int8_rows(calibration, x_train, y_train, budget_data, say) -> np.ndarray:
    """The calibration rows the int8 scales come from when --max-loss holds out a split:
    without labels the rows outside the split; with labels every --calibration row that is
    not one of the held-out --train rows."""
    if x_train is None:
        fit, _ = validation_split(len(calibration), budget_data["val_fraction"],
                                  budget_data["seed"])
        say(f"int8 scales from the {fit.size} calibration inputs outside the split")
        return calibration[fit]
    _, val = validation_split(len(x_train), budget_data["val_fraction"], budget_data["seed"],
                              y_train)
    held = {row.tobytes() for row in np.asarray(x_train[val], np.float64)}
    keep = np.array([row.tobytes() not in held for row in calibration])
    if not keep.any():
        raise ValueError(f"--calibration: all {len(calibration)} inputs are held-out --train "
                         f"rows; give calibration inputs outside the validation split")
    say(f"int8 scales from {int(keep.sum())} of {len(calibration)} --calibration inputs"
        + (f" ({int((~keep).sum())} held-out --train rows left out)" if not keep.all()
           else ""))
    return calibration[keep]


def _compress_graph(args, graph, activation, say) -> tuple:
    """The graph path: Deep Compression of the weight nodes (by hand, or per node within
    --max-loss: :func:`quantize.graph_sensitivity.search_graph`), int8, a graph image.
    ``(manifest, search, int8)``: the manifest (None when nothing is written:
    --sensitivity without -o), the :class:`~quantize.graph_sensitivity.GraphSearch` of
    --max-loss (or None) and the written image's golden accuracy on its held-out split."""
    _check_graph_flags(args)
    calibration = None
    if args.calibration is not None:
        calibration = _graph_inputs(graph, load_array(args.calibration, "--calibration"),
                                    "--calibration")
    x_train = load_array(args.train, "--train") if args.train else None
    y_train = load_array(args.labels, "--labels") if args.labels else None
    if (x_train is None) != (y_train is None):
        raise ValueError("--train and --labels go together")
    x_train = _graph_inputs(graph, x_train, "--train")
    if y_train is not None:
        classes = int(np.prod(graph.output_shape))
        if not np.issubdtype(y_train.dtype, np.integer):
            raise ValueError(f"{args.labels}: labels must be integers, got {y_train.dtype}")
        if y_train.ndim != 1 or len(y_train) != len(x_train):
            raise ValueError(f"--labels: need one label per --train row ({len(x_train)}), "
                             f"got shape {y_train.shape}")
        if y_train.min() < 0 or y_train.max() >= classes:
            raise ValueError(f"--labels: classes must be 0..{classes - 1} for a graph with "
                             f"{classes} outputs, found {int(y_train.min())}.."
                             f"{int(y_train.max())}")
    names = [n.name for n in weight_nodes(graph)]
    if not names:
        raise ValueError(f"{args.model}: the graph has no Conv or Gemm/MatMul layer")
    say(f"graph: {len(graph.nodes)} nodes, weight layers {', '.join(names)}")
    labelled = x_train is not None
    budget_data = {"x_train": x_train, "y_train": y_train,
                   "calibration": None if labelled else calibration,
                   "val_fraction": 0.2 if args.val_fraction is None else args.val_fraction,
                   "seed": args.seed, "init": args.init,
                   "max_bits": args.bits if args.bits_given and isinstance(args.bits, int)
                   else MAX_BITS}
    found = None
    wino_names = None if args.winograd in (None, "all") else [
        n.strip() for n in args.winograd.split(",")]
    if args.max_loss is not None:
        distill = None if not args.distill else (
            4.0 if args.temperature is None else args.temperature,
            0.5 if args.distill_weight is None else args.distill_weight)
        if calibration is not None:
            # The budget holds on the int8 model the image holds: the search judges each
            # candidate quantized from the calibration rows the image will use.
            calibration = _int8_rows(calibration, x_train, y_train, budget_data, say)
            if args.winograd is not None:
                try:
                    winograd_names(quantize_graph(graph, calibration[:8]), wino_names)
                except ValueError as e:
                    raise ValueError(f"--winograd {args.winograd}: {e}") from None
        found = search_graph(graph, args.max_loss, **budget_data, index_bits=args.index_bits,
                             retrain_epochs=10 if args.epochs is None else args.epochs,
                             distill=distill, int8_calibration=calibration,
                             winograd=False if args.winograd is None or calibration is None
                             else wino_names or True, progress=say)
        if args.sensitivity:
            print(format_scans(found.prune_curves, found.bits_drops, found.picks,
                               args.max_loss, ("of the float graph", "of the chosen pruned "
                                                                     "graph")))
        if args.output is None:
            return None, found, None
        cg = found.compressed
    else:
        sparsity = parse_sparsity(args.sparsity, names) if args.sparsity is not None else None
        bits = args.bits
        if isinstance(bits, dict):                     # a bare number: every node not named
            bits = {**dict.fromkeys(names, bits.get("")),
                    **{k: v for k, v in bits.items() if k}}
        if args.sensitivity:
            scans = scan_graph(graph, **budget_data)
            print(f"validation split: {scans.val_size} of {scans.val_size + scans.fit_size} "
                  f"{'training' if labelled else 'calibration'} inputs (seed {args.seed}); "
                  f"float {scans.metric} {scans.float_val:.2f} %")
            print(format_scans(scans.prune_curves, scans.bits_drops, scans.bits,
                               scans.max_loss))
            if args.output is None:
                return None, None, None
            bits = scans.bits
        cg = compress_graph(graph, sparsity, bits, x_train, y_train,
                            index_bits=args.index_bits, init=args.init, seed=args.seed,
                            retrain_epochs=10 if args.epochs is None else args.epochs,
                            progress=say)
    say("int8 quantization from the calibration inputs")
    qg = quantize_graph(cg.graph, calibration)
    if args.winograd is not None:
        try:
            qg = add_winograd(qg, calibration, wino_names)
        except ValueError as e:
            raise ValueError(f"--winograd {args.winograd}: {e}") from None
        say(f"Winograd F(2x2,3x3) for {', '.join(qg.winograd)}, calibrated on the same inputs")
    config = graph_config(qg, args.rows, args.cols)
    say(f"writing the graph image to {args.output}")
    manifest = write_graph_image(cg, qg, config, args.output, source=str(args.model),
                                 activation=activation, force=args.force)
    if found is None:
        return manifest, None, None
    # Measured again on the written image, not taken from the search: what the command
    # prints about the engine's model is what the engine's model scores.
    x_val = np.asarray((x_train if labelled else budget_data["calibration"])[found.val],
                       np.float32)
    y_val = y_train[found.val] if labelled else graph.forward(x_val).argmax(axis=1)
    say(f"running the image's golden model on the {len(x_val)} held-out inputs")
    golden = run_graph_image(load_image(args.output), x_val).float_output.argmax(axis=1)
    return manifest, found, 100.0 * float(np.mean(golden == y_val))


def cmd_compress(args) -> int:
    _check_flags(args)
    check_outputs([("-o", args.output)] if args.output else [],
                  [("model", args.model), ("--train", args.train), ("--labels", args.labels),
                   ("--calibration", args.calibration), ("--test", args.test),
                   ("--test-labels", args.test_labels)])
    say = _progress("compress")
    suffix = Path(args.model).suffix.lower()
    if args.winograd is not None and args.engine != "systolic":
        raise ValueError(f"--winograd: Winograd convolutions run on the systolic engine, not "
                         f"{args.engine}")
    if suffix == ".tflite" or suffix == ".onnx" and is_quantized_onnx(args.model):
        if args.winograd is not None:
            raise ValueError(f"--winograd: {args.model} keeps its own int8 graph; Winograd is "
                             f"for float CNNs quantized with --calibration")
        return _compress_tflite(args, say)
    names = [n.strip() for n in args.layers.split(",")] if args.layers else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise ValueError(f"--layers {args.layers!r}: give distinct layer names separated by "
                         f"commas")
    graph, activation, note = _choose_path(args)
    if graph is None:
        model = load_model(args.model, names)
        if activation not in ("relu", "none") or (activation == "none"
                                                  and args.engine == "systolic"):
            if names is not None:
                raise ValueError(f"--layers with --activation {activation}: select layers in "
                                 f"the weight file instead")
            graph = mlp_graph(model, activation)
        elif activation == "none":
            model = LinearChain(model.layers)
    if note is not None:
        print(f"activation between layers: {note}")
    if args.winograd is not None and graph is None:
        raise ValueError(f"--winograd: {args.model} is an MLP (Linear layers only); Winograd "
                         f"runs a CNN's 3x3 stride-1 convolutions")
    if graph is not None:
        manifest, found, int8 = _compress_graph(args, graph, activation, say)
        if manifest is not None:
            _print_written(args.output, manifest)
            g = manifest["graph"]["nodes"]
            engine = sum(n["where"] == "engine" for n in g)
            cfg = manifest["config"]
            print(f"graph image: {len(g)} nodes, {engine} on the engine ({cfg['rows']}x"
                  f"{cfg['cols']} systolic), {len(g) - engine} on the host")
        if found is not None:
            print(found.summary(args.train is not None))
        if int8 is not None:
            drop = found.float_val - int8
            print(f"int8 image (golden model) on the validation split: {int8:.2f} % "
                  f"{found.metric}, {drop:.2f} points below the float graph "
                  f"({'within' if drop <= found.max_loss + 1e-9 else 'OUTSIDE'} the "
                  f"{found.max_loss:g}-point budget, which the search applied to this int8 "
                  f"model)")
        return 0
    _check_mlp_budget(args)
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
    layer_names = [layer.name for layer in model.layers]
    spec = CompressSpec(bits=parse_bits(args.bits_text, layer_names), sparsity=args.sparsity,
                        quality=args.quality, global_prune=args.global_prune,
                        reserve_zero=entry.engine.zero_codebook_entry,
                        init=args.init, index_bits=args.index_bits,
                        retrain_epochs=30 if args.epochs is None else args.epochs,
                        seed=args.seed, distill=args.distill,
                        temperature=4.0 if args.temperature is None else args.temperature,
                        distill_weight=0.5 if args.distill_weight is None
                        else args.distill_weight)
    test = _load_test(args, model)
    method = _method_spec(args, layer_names)
    max_bits = args.bits if args.bits_given and isinstance(args.bits, int) else \
        (4 if entry.engine.zero_codebook_entry else MAX_BITS)
    fraction = 0.2 if args.val_fraction is None else args.val_fraction
    found = None
    if args.max_loss is not None and x_train is not None:
        methods = (("ternary",) if args.ternary else ("low-rank",) if args.low_rank
                   else METHODS)
        ranks = parse_ranks(args.low_rank, layer_names) if args.low_rank else None
        if args.sensitivity:
            _sensitivity(model, spec, x_train, y_train, None, fraction, max_bits)
        found = search_methods(model, spec, args.max_loss, x_train, y_train, methods,
                               5 if args.folds is None else args.folds, max_bits, ranks,
                               args.epochs, progress=say)
        method = found.method
        if method is None:
            spec = dataclasses.replace(spec, sparsity=found.sparsity, bits=found.bits)
    elif args.max_loss is not None:
        found = search(model, spec, args.max_loss, x_train, y_train, calibration,
                       val_fraction=fraction, max_bits=max_bits, progress=say)
        if args.sensitivity:
            _print_scans(found.prune_curves, found.bits_drops, found.bits, args.max_loss,
                         ("of the float model", "of the chosen pruned model"))
        spec = dataclasses.replace(spec, sparsity=found.sparsity, bits=found.bits)
        fit, _ = validation_split(len(calibration), fraction, args.seed)
        calibration = calibration[fit]
    elif args.sensitivity:
        picks = _sensitivity(model, spec, x_train, y_train, calibration, fraction, max_bits)
        if args.output is None:
            return 0
        spec = dataclasses.replace(spec, bits=picks)
    if args.output is None:
        _print_found(found, x_train is not None, args)
        return 0
    compressed, manifest = compress_to_image(
        model, args.engine, spec, args.output, x_train=x_train, y_train=y_train,
        calibration=calibration, source=str(args.model), progress=say, force=args.force,
        compressed=None if found is None else found.compressed, method=method,
        **{name: getattr(args, name) for name in entry.options})
    _print_written(args.output, manifest)
    _print_method(compressed.log)
    _print_found(found, x_train is not None, args)
    if test is not None:
        x_test, y_test = test
        golden = run_image(load_image(args.output), x_test).outputs.argmax(1)
        print(f"test ({len(x_test)} inputs): float {100 * model.accuracy(x_test, y_test):.2f} "
              f"%, compressed {100 * compressed.final.accuracy(x_test, y_test):.2f} %, "
              f"{args.engine} golden {100 * float(np.mean(golden == y_test)):.2f} %")
    return 0


def _print_found(found, labelled: bool, args) -> None:
    if found is None:
        return
    if isinstance(found, MethodSearch):
        print(f"chosen: {found.chosen.label}")
        print(f"{found.folds}-fold estimate ({found.val_size} training inputs, seed "
              f"{args.seed}, each predicted by models trained without it): float "
              f"{found.float_val:.2f} %, compressed {found.final_val:.2f} % accuracy (budget "
              f"{args.max_loss:g} points: {'kept' if found.within_budget else 'MISSED'}); "
              f"retrained on all of them")
        return
    print(f"chosen: sparsity {_pairs(found.sparsity)}, bits {_pairs(found.bits)}")
    print(f"validation split ({found.val_size} of {found.val_size + found.fit_size} "
          f"{'training' if labelled else 'calibration'} inputs, seed {args.seed}, held "
          f"out): float {found.float_val:.2f} %, compressed {found.final_val:.2f} % "
          f"{found.metric} (budget {args.max_loss:g} points: "
          f"{'kept' if found.within_budget else 'MISSED'})")


def _pairs(d: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in d.items())


def _load_test(args, model):
    if args.test is None:
        return None
    x = load_array(args.test, "--test")
    y = load_array(args.test_labels, "--test-labels")
    n_in, n_out = model.sizes[0], model.sizes[-1]
    if x.ndim != 2 or x.shape[1] != n_in or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"--test: inputs must be finite with shape (N, {n_in}), got {x.shape}")
    if (not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),) or y.min() < 0
            or y.max() >= n_out):
        raise ValueError(f"--test-labels: need one integer class 0..{n_out - 1} per --test row")
    return x.astype(np.float32), y.astype(np.int64)


def _sensitivity(model, spec, x_train, y_train, calibration, fraction, max_bits) -> dict:
    """Scans of the float model on the validation split, printed; the picked bits."""
    data = x_train if x_train is not None else calibration
    labels = y_train if x_train is not None else None
    _, val = validation_split(len(data), fraction, spec.seed, labels)
    metric = ValMetric(np.asarray(data[val], np.float32),
                       None if labels is None else labels[val],
                       model if labels is None else None)
    budget_points = 0.5
    curves = prune_scan(model, metric)
    drops = bits_scan(model, metric, spec.reserve_zero, init=spec.init, seed=spec.seed)
    picks = pick_bits(drops, budget_points, max_bits)
    print(f"validation split: {len(val)} of {len(data)} inputs (seed {spec.seed}); float "
          f"{metric.kind} {metric(model):.2f} %")
    _print_scans(curves, drops, picks, budget_points, ("of the float model",) * 2)
    return picks


def _print_scans(curves, drops, picks, budget_points, what) -> None:
    names = list(curves)
    sparsities = list(next(iter(curves.values())))
    print(f"accuracy drop (points) {what[0]}, one layer pruned at a time:")
    print("  sparsity " + "".join(f"{n:>9}" for n in names))
    for s in sparsities:
        print(f"  {s:8.2f} " + "".join(f"{curves[n][s]:9.2f}" for n in names))
    print(f"accuracy drop (points) {what[1]}, one layer shared at a time:")
    print("  bits     " + "".join(f"{n:>9}" for n in names))
    for b in next(iter(drops.values())):
        print(f"  {b:8d} " + "".join(f"{drops[n][b]:9.2f}" for n in names))
    print(f"smallest bits within {budget_points:g} points: {_pairs(picks)}")


def _compress_tflite(args, say) -> int:
    """A fully-integer .tflite or an onnxruntime-quantized .onnx: its own int8 graph as a
    graph image, weights pruned or shared only when --sparsity or --bits asks
    (quantize.tflite_import, quantize.onnx_qdq_import)."""
    onnx = Path(args.model).suffix.lower() == ".onnx"
    kind = "a quantized .onnx" if onnx else "a .tflite"
    if args.engine != "systolic":
        raise ValueError(f"{args.model}: {kind} graph runs on the systolic engine; use "
                         f"--engine systolic")
    for flag, given in (("--calibration", args.calibration), ("--train", args.train),
                        ("--labels", args.labels), ("--quality", args.quality),
                        ("--global", args.global_prune), ("--layers", args.layers),
                        ("--max-loss", args.max_loss), ("--sensitivity", args.sensitivity),
                        ("--distill", args.distill), ("--test", args.test),
                        ("--activation", args.activation),
                        *((flag, True) for flag in _method_flags(args))):
        if given not in (None, False):
            raise ValueError(f"{flag} is not used with {kind}: it keeps its own "
                             f"quantization (--sparsity and --bits prune and share it)")
    bits = args.bits if args.bits_given else None
    if onnx:
        say(f"importing {args.model} (onnxruntime quantization)")
        manifest = write_onnx_qdq_image(
            args.model, args.output, rows=args.rows, cols=args.cols, sparsity=args.sparsity,
            bits=bits, index_bits=args.index_bits, force=args.force)
    else:
        say(f"importing {args.model} ({args.litert} LiteRT kernels)")
        manifest = write_tflite_image(
            args.model, args.output, rows=args.rows, cols=args.cols, path=args.litert,
            sparsity=args.sparsity, bits=bits, index_bits=args.index_bits, force=args.force)
    _print_written(args.output, manifest)
    g = manifest["graph"]["nodes"]
    engine = sum(n["where"] == "engine" for n in g)
    print(f"graph image: {len(g)} nodes, {engine} on the engine ({args.rows}x{args.cols} "
          f"systolic), {len(g) - engine} on the host; int8 in/out as the model's "
          f"(nnaccel run --raw)")
    return 0


def _print_written(output, manifest) -> None:
    c = manifest["compression"]
    print(f"{output}: compression {c['compression_ratio']:.1f}x (Deep Compression "
          f"accounting), image {c['image_bytes']} bytes = {c['image_compression_ratio']:.1f}x "
          f"smaller than 32-bit dense weights")


def cmd_report(args) -> int:
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch {args.batch}: give 1 or more inputs")
    plots = None if args.plots is None else Path(args.plots)
    if plots is not None:
        # The files, not DIR, are the outputs: DIR may hold the image (--plots .).
        check_outputs([("--plots", plots / name) for name in _PLOT_FILES],
                      [("the image", args.image)])
        if plots.exists() and not plots.is_dir():
            raise ValueError(f"--plots {plots}: exists and is not a folder; give a folder")
    image = load_image(args.image)
    measured = read_cycles(args.cycles, image) if args.cycles else None
    batch = args.batch or (measured["inputs"] if measured else 1)
    if measured is not None and batch != measured["inputs"]:
        raise ValueError(f"--batch {batch}: --cycles {args.cycles} measured a run of "
                         f"{measured['inputs']} inputs; give that or leave --batch out")
    if args.json:
        extra = {} if measured is None else {"measured": {
            k: measured[k] for k in ("backend", "inputs", "total_cycles")}}
        print(json.dumps({**report_json(image), "per_layer": layer_rows(image, batch, measured),
                          **extra}, indent=1))
    else:
        print(format_table(image))
        print()
        print(format_layers(image, batch, measured))
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        for path in write_plots(image, plots):
            # stdout stays one JSON document with --json
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_run(args) -> int:
    budget.set_limit(args.max_memory)
    out = Path(args.output)
    if out.suffix != ".npy":
        raise ValueError(f"-o {out}: outputs are written as a NumPy .npy file; name it *.npy")
    check_outputs([("-o", out), ("-o", cycles_path(out))],
                  [("--input", args.input), ("the image", args.image)])
    image = load_image(args.image)
    x = load_array(args.input, "--input")
    say = _progress("run")
    if args.raw and not is_graph(image):
        raise ValueError(f"--raw is for graph images (int8 in and out); {args.image} is an "
                         f"MLP image: give float inputs")
    if is_graph(image):
        return _run_graph(image, x, out, args.engine, say, args.raw)
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
    sidecar = record_cycles(out, image, args.engine, len(result.outputs), result.cycles,
                            result.info.get("layer_cycles"))
    print(msg + (f"; cycles in {sidecar}" if sidecar else ""))
    return 0


def _run_graph(image, x, out: Path, engine: str, say, raw: bool = False) -> int:
    if engine == "rtl":
        budget.check_generator(image.config)
    if raw:
        x = raw_inputs(image.qgraph, x)
    run = run_graph_image(image, x, engine, progress=say)
    nhwc = str(image.manifest.get("source") or "").lower().endswith(".tflite")
    with output_file(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, raw_outputs(run.output, nhwc) if raw else run.float_output,
                    allow_pickle=False)
    print(run.table())
    n = len(run.float_output)
    sidecar = record_cycles(out, image, engine, n, run.cycles if engine == "rtl" else None,
                            [r["cycles"] for r in run.layers if r["where"] == "engine"])
    print(f"{out}: {n} outputs from the systolic {engine} model "
          f"({'measured' if engine == 'rtl' else 'cost model'}), {run.cycles} engine cycles "
          f"({run.cycles / n:.0f} per input)" + (f"; cycles in {sidecar}" if sidecar else ""))
    return 0
