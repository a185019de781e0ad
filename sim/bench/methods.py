"""Suite ``methods``: compression methods side by side on the digits 64-300-100-10 MLP.

Pruning + 4-bit sharing (the front end's recipe), trained ternary quantization (TTQ) at
its own threshold and at fixed sparsities, binary weights (per layer; per channel on the
systolic engine only), low-rank factorization (SVD, shared 4-bit factors) and low-rank
plus pruning; and two settings chosen per layer on a validation split carved from the
training data (ternary sparsities; low-rank rank and factor sparsity), never on the test
images, then retrained on the whole training split; and ternary, binary and low-rank+prune
again with distillation (Hinton et al.: the float model's outputs softened at T = 4 mixed
into every training step's targets at weight 0.5; ``+distill``). For each: the quantized
float model's test accuracy, each engine's image run on the golden model over every test
image, the
Deep Compression ratio (paper accounting: codebook-index + relative-index bits +
codebooks vs the original model's 32-bit dense weights; plain and Huffman), the
plain-code ratio for ternary and binary (no relative index), and the real image bytes
(weights, pointers, codebooks, biases, requantization) against the 32-bit dense weights.

The same methods (:data:`SKLEARN_METHODS`) also run on the accuracy-budget figure's model:
scikit-learn's ``MLPClassifier((300, 100))`` on 1,400/397 digits splits (seeds 0 and 1),
EIE with 16 PEs; scans fit their float model with the same classifier.

Written to ``out_dir/methods.json`` and, with the run's provenance, to the committed record
``docs/results/compression_methods.json`` (:func:`write_record`); :func:`plot` draws golden
accuracy against the paper's ratio and against each engine's image bytes
(``out_dir/compression_methods.png``, copied beside the record). The best method within
0.5 point of the float model (golden, both engines) then runs on the RTL (Verilator) over
every test image, every output word compared with golden.
"""

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from quantize.compress import Compressed, CompressSpec, compress, parse_sparsity
from quantize.digits import SPARSITY, load_digits_split, train_digits_mlp
from quantize.image import load_image
from quantize.lowrank import (
    _dense_as_original,
    compress_factored,
    factorize,
    finetune,
    per_factor,
)
from quantize.model import Layer, Mlp
from quantize.prune import prune_sparsity
from quantize.run import run_image
from quantize.share import share_weights
from quantize.storage import layer_storage, totals
from quantize.ternary import (
    QuantSpec,
    dense_code_bits,
    quantize_mlp,
    write_method_image,
)
from quantize.train import Distill

from ..rtl import BUILD_ROOT
from .compression import sklearn_digits
from .results import REPO, RESULTS_MD, provenance

__all__ = ["RECORD", "PLOT", "METHODS", "measure", "write_record", "plot", "accuracy_plot",
           "main"]

RECORD = REPO / "docs" / "results" / "compression_methods.json"
#: Allowed accuracy loss (points of the float model's test accuracy) for "best" below.
BUDGET = 0.005
#: Distilled rows: softmax temperature and weight of the float model's softened outputs.
DISTILL_T, DISTILL_WEIGHT = 4.0, 0.5
_DISTILLED = (f"distilled (the float model's outputs at T = {DISTILL_T:g}, weight "
              f"{DISTILL_WEIGHT:g})")
#: The accuracy-against-compression figure, committed beside the record.
PLOT = REPO / "docs" / "results" / "compression_methods.png"


def _baseline(model, xtr, ytr):
    return compress(model, CompressSpec(bits=4, sparsity=SPARSITY), xtr, ytr)


def _ternary(sparsity=None, epochs=30, ramp=0):
    def build(m, x, y):
        spec = QuantSpec("ternary", sparsity=sparsity, epochs=epochs, ramp_epochs=ramp)
        return quantize_mlp(m, spec, x, y)
    return build


def _low_rank(ranks, sparsity=None):
    def build(m, x, y):
        return compress_factored(m, ranks=ranks, sparsity=sparsity, x_train=x, y_train=y)
    return build


def _low_rank_distilled(ranks, sparsity, weight=DISTILL_WEIGHT, temperature=DISTILL_T):
    """:func:`quantize.lowrank.compress_factored` at its defaults (fine-tune 20 epochs at
    5e-4, prune and retrain 20, 4-bit sharing, codebooks 10 at 1e-4) with every training
    step on the float model's softened outputs mixed into the targets."""
    def build(m, x, y):
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.int64)
        soft = Distill(m.forward(x), temperature, weight)
        work, info = factorize(m, ranks)
        names = [layer.name for layer in work.layers]
        log = {"method": "low-rank", "factors": info, "trained": True,
               "distill": {"weight": weight, "temperature": temperature},
               "sparsity": parse_sparsity(per_factor(sparsity, names), names)}
        with threadpool_limits(1):
            finetune(work, x, y, 20, 5e-4, seed=0, distill=soft)
            for layer in work.layers:
                layer.mask = prune_sparsity(layer.weight, log["sparsity"][layer.name])
                layer.weight = np.where(layer.mask, layer.weight, np.float32(0))
            finetune(work, x, y, 20, 5e-4, seed=1, distill=soft)
            pruned = work.copy()
            shared = [share_weights(layer.weight, layer.mask, 4, reserve_zero=True, seed=0)
                      for layer in work.layers]
            for layer, sh in zip(work.layers, shared, strict=True):
                layer.weight = sh.weight()
            finetune(work, x, y, 10, 1e-4, seed=2, shared=shared, distill=soft)
        storage = [layer_storage(layer.name, sh.mask, sh.index, sh.bits, 5)
                   for layer, sh in zip(work.layers, shared, strict=True)]
        return Compressed(m.copy(), pruned, work, shared, _dense_as_original(storage, m), log)
    return build


#: name → (description, engines, builder(model, x_train, y_train) -> Compressed)
METHODS = {
    "prune+share": ("Deep Compression recipe: per-layer pruning " + SPARSITY
                    + ", 4-bit sharing, retrained", ("eie", "systolic"), _baseline),
    "ternary": ("TTQ, threshold 0.05 max|w|, 30 epochs", ("eie", "systolic"), _ternary()),
    "ternary-s0.8": ("TTQ, 80 % zeros per layer, 30 epochs", ("eie", "systolic"),
                     _ternary(0.8)),
    "ternary-s0.9": ("TTQ, 90 % zeros per layer, 30 epochs", ("eie", "systolic"),
                     _ternary(0.9)),
    "ternary-post": ("ternary post-training (no labels), threshold 0.05 max|w|",
                     ("eie", "systolic"),
                     lambda m, x, y: quantize_mlp(m, QuantSpec("ternary"))),
    "ternary+distill": (f"TTQ, threshold 0.05 max|w|, 30 epochs, {_DISTILLED}",
                        ("eie", "systolic"),
                        lambda m, x, y: quantize_mlp(m, QuantSpec(
                            "ternary", distill=DISTILL_WEIGHT, temperature=DISTILL_T), x, y)),
    "binary": ("binary, per-layer scale, 30 epochs", ("eie", "systolic"),
               lambda m, x, y: quantize_mlp(m, QuantSpec("binary"), x, y)),
    "binary+distill": (f"binary, per-layer scale, 30 epochs, {_DISTILLED}",
                       ("eie", "systolic"),
                       lambda m, x, y: quantize_mlp(m, QuantSpec(
                           "binary", distill=DISTILL_WEIGHT, temperature=DISTILL_T), x, y)),
    "binary-channel": ("binary, per-output-channel scale, 30 epochs (systolic only)",
                       ("systolic",),
                       lambda m, x, y: quantize_mlp(m, QuantSpec("binary", per_channel=True),
                                                    x, y)),
    "low-rank": ("SVD fc1 rank 16, fc2 rank 16, fine-tuned, 4-bit shared factors",
                 ("eie", "systolic"), _low_rank({"fc1": 16, "fc2": 16})),
    "low-rank+prune": ("SVD fc1/fc2 rank 16, factors pruned 60 % (fc3 30 %), retrained, "
                       "4-bit shared", ("eie", "systolic"),
                       _low_rank({"fc1": 16, "fc2": 16}, "0.6,fc3=0.3")),
    "low-rank+prune+distill": ("SVD fc1/fc2 rank 16, factors pruned 60 % (fc3 30 %), "
                               f"retrained, 4-bit shared; every training step {_DISTILLED}",
                               ("eie", "systolic"),
                               _low_rank_distilled({"fc1": 16, "fc2": 16}, "0.6,fc3=0.3")),
}

#: Per-layer settings scanned on a validation split of the training data; the one with
#: the best ratio within 0.5 point of the float model there is retrained on all of it.
SCANS = {
    "ternary-chosen": ("TTQ with per-layer sparsity chosen on a validation split, 40 epochs "
                       "(sparsity ramped over 20)",
                       [(sp, _ternary(sp, 40, 20)) for sp in (
                           "fc1=0.8,fc2=0.8,fc3=0.5", "fc1=0.88,fc2=0.85,fc3=0.5",
                           "fc1=0.92,fc2=0.9,fc3=0.5", "fc1=0.93,fc2=0.93,fc3=0.6",
                           "fc1=0.95,fc2=0.93,fc3=0.6", "fc1=0.96,fc2=0.95,fc3=0.7")]),
    "low-rank+prune-chosen": ("SVD fc1/fc2 at a rank and factor sparsity chosen on a "
                              "validation split, retrained, 4-bit shared",
                              [(f"rank {r}, sparsity {sp}",
                                _low_rank({"fc1": r, "fc2": r}, f"{sp},fc3=0.3"))
                               for r in (12, 16, 24) for sp in (0.5, 0.7)]),
}


#: Methods also measured on the issue's scikit-learn model.
SKLEARN_METHODS = ("prune+share", "ternary-s0.8", "low-rank", "low-rank+prune",
                   "low-rank+prune-chosen", "ternary-chosen")


def _sklearn_fit(x, y) -> Mlp:
    """The issue's model on ``x``: ``MLPClassifier((300, 100), max_iter=300,
    random_state=0)`` as an :class:`~quantize.model.Mlp`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((300, 100), max_iter=300, random_state=0).fit(x, y)
    return Mlp([Layer(f"fc{i + 1}", w.T, b)
                for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True))])


def _scan(name, data, fit=train_digits_mlp) -> tuple:
    """``(label, builder, scan rows)``: the scanned setting with the best ratio whose
    validation accuracy is within :data:`BUDGET` of the float model's, trained on the
    training split minus the validation images (20 %, stratified, seed 0)."""
    xtr, ytr, _, _ = data
    x_fit, x_val, y_fit, y_val = train_test_split(xtr, ytr, test_size=0.2, random_state=0,
                                                  stratify=ytr)
    model = fit(x_fit, y_fit)
    floor = model.accuracy(x_val, y_val) - BUDGET
    rows = []
    for label, build in SCANS[name][1]:
        c = build(model, x_fit, y_fit)
        rows.append({"setting": label, "validation_accuracy": c.final.accuracy(x_val, y_val),
                     "ratio_huffman": totals(c.storage)["ratio_huffman"]})
        print(f"[methods] {name} scan: {rows[-1]}", flush=True)
    ok = [i for i, r in enumerate(rows) if r["validation_accuracy"] >= floor]
    best = max(ok or range(len(rows)), key=lambda i: (rows[i]["ratio_huffman"]
                                                      if ok else rows[i]["validation_accuracy"]))
    return SCANS[name][1][best][0], SCANS[name][1][best][1], {
        "validation_images": int(len(x_val)),
        "validation_float_accuracy": model.accuracy(x_val, y_val), "scan": rows,
        "chosen": SCANS[name][1][best][0], "within_budget": bool(ok)}


def _method(name, model, data, work: Path, method=None, pes: int = 8) -> dict:
    xtr, ytr, xte, yte = data
    description, engines, build = method or METHODS[name]
    start = time.monotonic()
    c = build(model, xtr, ytr)
    seconds = time.monotonic() - start
    t = totals(c.storage)
    row = {"description": description, "seconds": round(seconds, 1),
           "layers": [layer.name for layer in c.final.layers],
           "accuracy": c.final.accuracy(xte, yte), "density": t["density"],
           "original_weights": sum(layer.weight.size for layer in model.layers),
           "engine_weights": t["weights"], "ratio_huffman": t["ratio_huffman"],
           "ratio_pq": t["ratio_pq"], "engines": {}}
    if c.log.get("method") in ("ternary", "binary"):
        row["ratio_plain_code"] = t["dense_bits"] / dense_code_bits(c)
    if "factors" in c.log:
        row["factors"] = c.log["factors"]
    row["distilled"] = bool(c.log.get("distill"))
    for engine in engines:
        folder = work / f"{name}_{engine}"
        manifest = write_method_image(c, engine, folder, xtr, pes=pes)
        out = run_image(load_image(folder, engine=engine), xte, "golden").outputs
        comp = manifest["compression"]
        row["engines"][engine] = {
            "golden_accuracy": float(np.mean(out.argmax(1) == yte)),
            "image_bytes": comp["image_bytes"],
            "image_compression_ratio": comp["image_compression_ratio"],
            "config": {k: manifest["config"][k] for k in ("index_bits", "zrun_bits", "pes")
                       if k in manifest["config"]}}
    print(f"[methods] {name}: {row}", flush=True)
    return row


def _section(model, data, work: Path, names, fit, pes: int, rtl: bool) -> dict:
    """Every method of ``names`` on ``model`` (trained by ``fit`` on ``data``'s training
    split), the best within the budget, and its RTL run."""
    xtr, ytr, xte, yte = data
    work.mkdir(parents=True, exist_ok=True)
    res = {"model": {"sizes": model.sizes, "train_images": int(len(xtr)),
                     "test_images": int(len(xte)),
                     "float_accuracy": model.accuracy(xte, yte)}, "methods": {}}
    for name in names:
        if name in SCANS:
            label, build, scan = _scan(name, data, fit)
            method = (f"{SCANS[name][0]}: {label}", ("eie", "systolic"), build)
            res["methods"][name] = {**_method(name, model, data, work, method, pes),
                                    "selection": scan}
        else:
            res["methods"][name] = _method(name, model, data, work, pes=pes)
    floor = res["model"]["float_accuracy"] - BUDGET
    within = {n: m["ratio_huffman"] for n, m in res["methods"].items()
              if all(e["golden_accuracy"] >= floor for e in m["engines"].values())}
    best = max(within, key=within.get) if within else None
    res["best_within_0.5_points"] = best
    if best and rtl:
        res["methods"][best]["rtl"] = {e: _rtl(work / f"{best}_{e}", xte, yte, e)
                                       for e in res["methods"][best]["engines"]}
    return res


def measure(work: Path, names=None, rtl: bool = True, sklearn: bool = True) -> dict:
    """Train the digits MLP, run every method (or ``names``), return the figures; with
    ``rtl`` the best method within the budget also runs on both engines' RTL; with
    ``sklearn`` :data:`SKLEARN_METHODS` also run on scikit-learn's model on two splits
    (EIE with 16 PEs)."""
    data = load_digits_split()
    res = {"accounting": "ratio_huffman / ratio_pq: Deep Compression (weights only, "
                         "5-bit relative index, codebooks at 32 bits) vs the original "
                         "model's 32-bit dense weights; ratio_plain_code: every weight as a "
                         "2-bit (ternary) or 1-bit (binary) code plus its scales, no "
                         "relative index; image_compression_ratio: 32-bit dense weights vs "
                         "the image's memory bytes",
           **_section(train_digits_mlp(data[0], data[1]), data, work,
                      names or [*METHODS, *SCANS], train_digits_mlp, 8, rtl)}
    if sklearn:
        res["sklearn"] = {}
        for seed in (0, 1):
            model, *split = sklearn_digits(seed)
            res["sklearn"][f"split{seed}"] = {
                "model_name": "MLPClassifier((300, 100), max_iter=300, random_state=0), "
                              f"1,400/397 stratified split seed {seed}",
                **_section(model, tuple(split), work / f"sklearn{seed}", SKLEARN_METHODS,
                           _sklearn_fit, 16, rtl)}
    return res


def _rtl(folder: Path, x, y, engine: str) -> dict:
    """The image on the Verilator model over every test image, against its golden run."""
    image = load_image(folder, engine=engine)
    golden = run_image(image, x, "golden")
    rtl = run_image(image, x, "rtl")
    row = {"raw_equal_golden": bool(np.array_equal(rtl.raw, golden.raw)),
           "accuracy": float(np.mean(rtl.outputs.argmax(1) == y)), "cycles": rtl.cycles,
           "config": image.manifest["config"]}
    print(f"[methods] RTL {folder.name}: {row}", flush=True)
    return row


def write_record(res: dict, started: dict, seconds: float) -> Path:
    """``docs/results/compression_methods.json``: the figures with their provenance."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    data = {"measured": {**started, "bench_seconds": round(seconds)}, **res}
    RECORD.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return RECORD


def accuracy_plot(points, path: Path, title: str, reference: float, dense_bytes: int,
                  what: str) -> Path:
    """Two panels, test accuracy (%) against the paper's compression ratio (left) and
    against the real image bytes (right, log scale, the 32-bit dense weights marked); one
    marker per point (``name``, ``paper``, ``bytes``, ``accuracy``, ``distilled``, optional
    ``engine``), distilled points hollow. Written to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    names = list(dict.fromkeys(p["name"].removesuffix("+distill") for p in points))
    colors = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    shapes = {None: "o", "eie": "o", "systolic": "s"}
    # Points more than 5 points down (post-training binary/ternary) would squash the rest:
    # they sit on the floor with their value written.
    near = [100 * p["accuracy"] for p in points if p["accuracy"] >= reference - 0.05]
    floor = min(near or [100 * reference]) - 1
    labelled, below, written = set(), 0, set()
    for p in points:
        base = p["name"].removesuffix("+distill")
        label = p["name"]
        style = {"marker": shapes.get(p.get("engine"), "o"), "ms": 6, "ls": "none",
                 "color": colors[base], "mfc": "none" if p["distilled"] else colors[base],
                 "mew": 1.5}
        y = 100 * p["accuracy"]
        if y < floor:
            style["marker"] = "v"
            for k, (ax, x) in enumerate(((left, p["paper"]), (right, p["bytes"]))):
                if (k, p["name"], x) not in written:
                    written.add((k, p["name"], x))
                    ax.annotate(f"{p['name']} {y:.0f} %", (x, floor + 0.2), fontsize=6,
                                ha="center", xytext=(0, 6 + 8 * below),
                                textcoords="offset points")
            below += 1
            y = floor + 0.2
        left.plot(p["paper"], y, **style, label=None if label in labelled else label)
        right.plot(p["bytes"], y, **style)
        labelled.add(label)
    for ax in (left, right):
        ax.axhline(100 * reference, color="k", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    right.axvline(dense_bytes, color="grey", lw=0.8, ls=":")
    right.set_xscale("log")
    right.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    right.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    right.xaxis.set_minor_formatter(NullFormatter())
    left.set_xlabel("ratio against 32-bit dense, paper accounting (Huffman)")
    right.set_xlabel("image bytes (log scale; dotted: 32-bit dense weights)")
    left.set_ylabel(f"test accuracy, {what} (%)")
    fig.suptitle(title, fontsize=10)
    left.set_title("paper accounting", fontsize=9)
    right.set_title("real image bytes", fontsize=9)
    left.set_ylim(floor, 100.5)
    engines = any(p.get("engine") for p in points)
    fig.legend(fontsize=6, ncol=1, loc="center right", title_fontsize=6,
               title="hollow: distilled\ndashed: uncompressed"
               + ("\ncircle EIE, square systolic" if engines else ""))
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def plot(res: dict, path: Path) -> Path:
    """Golden test accuracy against the paper's ratio and against each engine's image
    bytes, one point per method and engine, distilled rows hollow."""
    points = [{"name": name, "engine": engine, "paper": m["ratio_huffman"],
               "bytes": e["image_bytes"], "accuracy": e["golden_accuracy"],
               "distilled": m.get("distilled", False)}
              for name, m in res["methods"].items() for engine, e in m["engines"].items()]
    dense = next(iter(res["methods"].values()))["original_weights"] * 4
    return accuracy_plot(points, path, "digits MLP 64-300-100-10",
                         res["model"]["float_accuracy"], dense, "golden engine")


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    work = out_dir / "methods"
    work.mkdir(parents=True, exist_ok=True)
    start, started = time.monotonic(), provenance()
    res = {**measure(work), "plot": PLOT.relative_to(RESULTS_MD.parent).as_posix()}
    (out_dir / "methods.json").write_text(json.dumps(res, indent=1))
    write_record(res, started, time.monotonic() - start)
    shutil.copyfile(plot(res, out_dir / "compression_methods.png"), PLOT)
    return res


if __name__ == "__main__":
    main(BUILD_ROOT / "bench")
