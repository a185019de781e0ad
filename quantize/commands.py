"""``nnaccel compress``, ``nnaccel report`` and ``nnaccel run``."""

import json
import sys
import time
from pathlib import Path

import numpy as np

from sim import budget

from .atomic import check_outputs, output_file
from .compress import CompressSpec, compress, parse_sparsity
from .compress_graph import compress_graph, weight_nodes
from .engines import ENGINES, image_engine
from .graph_image import graph_config, write_graph_image
from .graph_quant import quantize_graph
from .image import is_graph, load_image, write_image
from .loaders import load_array, load_model
from .onnx_import import load_onnx_graph
from .report import format_layers, format_table, layer_rows, report_json, write_plots
from .run import run_graph_image, run_image
from .weight_only import ACTIVATIONS, LinearChain, is_mlp_chain, mlp_graph

__all__ = ["register", "cmd_compress", "cmd_report", "cmd_run"]


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

    p = subparsers.add_parser("report", help="compression table, per-layer costs and plots "
                                             "of an image")
    p.add_argument("image", help="directory written by nnaccel compress")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--batch", type=int, default=1,
                   help="inputs per run for the cycle estimates (default 1)")
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


def _compress_graph(args, graph, activation, say) -> dict:
    """The graph path: Deep Compression of the weight nodes, int8, a graph image."""
    for flag, given in (("--quality", args.quality is not None), ("--global", args.global_prune),
                        ("--layers", args.layers is not None)):
        if given:
            raise ValueError(f"{flag} is for MLP images; a graph takes --sparsity (one figure "
                             f"or per node: conv1=0.5,fc=0.8)")
    if args.calibration is None:
        raise ValueError("the systolic engine's int8 scales need inputs: give --calibration "
                         "X.npy")
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
    sparsity = parse_sparsity(args.sparsity, names) if args.sparsity is not None else None
    say(f"graph: {len(graph.nodes)} nodes, weight layers {', '.join(names)}")
    cg = compress_graph(graph, sparsity, args.bits, x_train, y_train,
                        index_bits=args.index_bits, init=args.init, seed=args.seed,
                        retrain_epochs=10 if args.epochs is None else args.epochs,
                        progress=say)
    say("int8 quantization from the calibration inputs")
    qg = quantize_graph(cg.graph, calibration)
    config = graph_config(qg, args.rows, args.cols)
    say(f"writing the graph image to {args.output}")
    return write_graph_image(cg, qg, config, args.output, source=str(args.model),
                             activation=activation, force=args.force)


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
    if graph is not None:
        manifest = _compress_graph(args, graph, activation, say)
        _print_written(args.output, manifest)
        g = manifest["graph"]["nodes"]
        engine = sum(n["where"] == "engine" for n in g)
        cfg = manifest["config"]
        print(f"graph image: {len(g)} nodes, {engine} on the engine ({cfg['rows']}x"
              f"{cfg['cols']} systolic), {len(g) - engine} on the host")
        return 0
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
    _print_written(args.output, manifest)
    return 0


def _print_written(output, manifest) -> None:
    c = manifest["compression"]
    print(f"{output}: compression {c['compression_ratio']:.1f}x (Deep Compression "
          f"accounting), image {c['image_bytes']} bytes = {c['image_compression_ratio']:.1f}x "
          f"smaller than 32-bit dense weights")


def cmd_report(args) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch}: give 1 or more inputs")
    image = load_image(args.image)
    if args.json:
        print(json.dumps({**report_json(image), "per_layer": layer_rows(image, args.batch)},
                         indent=1))
        return 0
    print(format_table(image))
    print()
    print(format_layers(image, args.batch))
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
    if is_graph(image):
        return _run_graph(image, x, out, args.engine, say)
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


def _run_graph(image, x, out: Path, engine: str, say) -> int:
    if engine == "rtl":
        budget.check_generator(image.config)
    run = run_graph_image(image, x, engine, progress=say)
    with output_file(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, run.float_output, allow_pickle=False)
    print(run.table())
    n = len(run.float_output)
    print(f"{out}: {n} outputs from the systolic {engine} model "
          f"({'measured' if engine == 'rtl' else 'cost model'}), {run.cycles} engine cycles "
          f"({run.cycles / n:.0f} per input)")
    return 0
