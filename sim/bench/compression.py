"""Suite ``compression``: Deep Compression figures of the front end (``quantize/``).

* digits 64-300-100-10 MLP: compression ratio (paper's accounting and real image bytes)
  and test accuracy, with retraining (prune → retrain → share → fine-tune) and
  post-training (calibration inputs only; the best ratio within 1 point of float);
  k-means initialisations compared across bits;
* a 25088 × 4096 layer (VGG-6's size): prune to 4 % + 4-bit sharing + interleaved-CSC
  encoding for 64 PEs, wall time per step and peak memory (in a subprocess);
* 1-D k-means on 10 M weights against ``sklearn.cluster.KMeans`` from the same initial
  centroids, time and inertia side by side;
* an accuracy budget on a net the project did not train: scikit-learn's
  ``MLPClassifier((300, 100))`` on a 1,400/397 digits split, compressed for EIE with
  16 PEs by ``--max-loss 0.5`` (ternary, prune+share and low-rank+prune candidates, each
  estimated by 5-fold cross-validation on the training data, the most compressive within
  the budget retrained on all of it), test accuracy on the golden model and the RTL, two
  splits, beside the README's uniform recipe.
"""

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from quantize.commands import compress_to_image
from quantize.compress import CompressSpec, compress
from quantize.digits import BITS, SPARSITY, load_digits_split, train_digits_mlp
from quantize.image import load_image
from quantize.kmeans import inertia, init_centroids, kmeans_1d
from quantize.model import Layer, Mlp
from quantize.run import run_image
from quantize.sensitivity import search_methods
from quantize.share import share_weights
from quantize.storage import layer_storage, totals
from sim import engines

__all__ = ["main"]

_VGG = r"""
import json, resource, sys, time
import numpy as np
from hw.eie.config import EieConfig
from hw.eie import csc
from quantize.prune import prune_sparsity
from quantize.share import share_weights
from quantize.storage import layer_storage
rng = np.random.default_rng(0)
w = rng.standard_normal((4096, 25088), dtype=np.float32) * 0.01
t = [time.monotonic()]
mask = prune_sparsity(w, 0.96); t.append(time.monotonic())
shared = share_weights(w, mask, 4, reserve_zero=True); t.append(time.monotonic())
del w
enc = csc.encode(shared.index, EieConfig(pes=64)); t.append(time.monotonic())
row = layer_storage("vgg6", mask, shared.index, 4, 4)
print(json.dumps({"prune_s": t[1] - t[0], "share_s": t[2] - t[1], "encode_s": t[3] - t[2],
                  "total_s": t[3] - t[0], "kept": int(mask.sum()),
                  "entries": int(enc.entries.size),
                  "ratio_huffman": row.ratios()["huffman"],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _digits(out_dir: Path) -> dict:
    xtr, ytr, xte, yte = load_digits_split()
    model = train_digits_mlp(xtr, ytr)
    float_acc = model.accuracy(xte, yte)
    res = {"float_accuracy": float_acc, "test_images": int(len(xte))}

    def golden_acc(image_dir):
        return float(np.mean(run_image(load_image(image_dir), xte).outputs.argmax(1) == yte))

    # With retraining, for both engines.
    for engine in ("eie", "systolic"):
        spec = CompressSpec(bits=BITS, sparsity=SPARSITY,
                            reserve_zero=engines.engine(engine).zero_codebook_entry)
        start = time.monotonic()
        c, manifest = compress_to_image(model, engine, spec, out_dir / f"digits_{engine}",
                                        x_train=xtr, y_train=ytr)
        comp = manifest["compression"]
        res[f"retrained_{engine}"] = {
            "sparsity": SPARSITY, "bits": BITS, "seconds": time.monotonic() - start,
            "density": comp["totals"]["density"],
            "compression_ratio": comp["compression_ratio"],
            "ratio_pq": comp["totals"]["ratio_pq"],
            "ratio_pruned": comp["totals"]["ratio_pruned"],
            "image_bytes": comp["image_bytes"],
            "image_compression_ratio": comp["image_compression_ratio"],
            "float_model_accuracy": c.final.accuracy(xte, yte),
            "golden_accuracy": golden_acc(out_dir / f"digits_{engine}"),
        }
        print(f"[compression] digits retrained ({engine}): {res[f'retrained_{engine}']}",
              flush=True)
    # Post-training: calibration inputs only (the training images, unlabelled).
    scan = []
    for sparsity in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        for bits in (4, 5, 6):
            spec = CompressSpec(bits=bits, sparsity=sparsity)
            c = compress(model, spec, calibration=xtr)
            t = totals(c.storage)
            scan.append({"sparsity": sparsity, "bits": bits, "accuracy": c.final.accuracy(xte, yte),
                         "compression_ratio": t["ratio_huffman"]})
    ok = [s for s in scan if s["accuracy"] >= float_acc - 0.01]
    best = max(ok, key=lambda s: s["compression_ratio"]) if ok else None
    res["post_training_scan"] = scan
    res["post_training_best_within_1pt"] = best
    if best:
        spec = CompressSpec(bits=4, sparsity=max(s["sparsity"] for s in ok if s["bits"] == 4))
        _, manifest = compress_to_image(model, "eie", spec, out_dir / "digits_post_eie",
                                        calibration=xtr)
        res["post_training_eie_4bit"] = {
            "sparsity": spec.sparsity,
            "compression_ratio": manifest["compression"]["compression_ratio"],
            "golden_accuracy": golden_acc(out_dir / "digits_post_eie")}
    print(f"[compression] post-training best within 1 point: {best}", flush=True)
    # k-means initialisations after pruning + retraining, before centroid fine-tuning.
    pruned = compress(model, CompressSpec(bits=4, sparsity=SPARSITY, finetune_epochs=0),
                      xtr, ytr).pruned
    inits = {}
    for init in ("linear", "density", "random"):
        for bits in range(2, 9):
            m = pruned.copy()
            rows = []
            for layer in m.layers:
                s = share_weights(layer.weight, layer.mask, bits, init=init)
                layer.weight = s.weight()
                rows.append(layer_storage(layer.name, s.mask, s.index, bits))
            inits[f"{init}/{bits}"] = {"accuracy": m.accuracy(xte, yte),
                                       "compression_ratio": totals(rows)["ratio_huffman"]}
    res["init_comparison_no_finetune"] = inits
    res["pruned_retrained_accuracy"] = pruned.accuracy(xte, yte)
    return res


def sklearn_digits(split_seed: int):
    """``(model, x_train, y_train, x_test, y_test)``: scikit-learn's
    ``MLPClassifier((300, 100), max_iter=300, random_state=0)`` trained on 1,400 of the
    digits (pixels / 16; stratified split seeded by ``split_seed``), tested on 397."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, data.target.astype(np.int64), test_size=397,
                                          random_state=split_seed, stratify=data.target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((300, 100), max_iter=300, random_state=0).fit(xtr, ytr)
    model = Mlp([Layer(f"fc{i + 1}", w.T, b)
                 for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True))])
    return model, xtr, ytr, xte, yte


def _budget_run(out_dir: Path, split_seed: int, rtl: bool) -> dict:
    """``nnaccel compress --max-loss 0.5 --engine eie --pes 16`` on one split, through the
    same functions: the search, the image of the chosen candidate, its test accuracy."""
    model, xtr, ytr, xte, yte = sklearn_digits(split_seed)
    spec = CompressSpec(bits=4, reserve_zero=True)
    start = time.monotonic()
    found = search_methods(model, spec, 0.5, xtr, ytr, max_bits=4,
                           progress=lambda msg: print(f"[compression] {msg}", flush=True))
    seconds = time.monotonic() - start
    if found.method is None:
        spec = replace(spec, sparsity=found.sparsity, bits=found.bits)
    name = f"sklearn_split{split_seed}"
    _, manifest = compress_to_image(model, "eie", spec, out_dir / name, x_train=xtr,
                                    y_train=ytr, compressed=found.compressed,
                                    method=found.method, pes=16, force=True)
    image = load_image(out_dir / name)
    golden = run_image(image, xte).outputs
    row = {"split_seed": split_seed, "seconds": seconds, **found.as_dict(),
           "candidates_tried": len(found.tried),
           "compression_ratio": manifest["compression"]["compression_ratio"],
           "image_bytes": manifest["compression"]["image_bytes"],
           "float_test_accuracy": model.accuracy(xte, yte),
           "compressed_float_test_accuracy": found.compressed.final.accuracy(xte, yte),
           "golden_test_accuracy": float(np.mean(golden.argmax(1) == yte))}
    if rtl:
        start = time.monotonic()
        run = run_image(image, xte, "rtl")
        row["rtl_test_accuracy"] = float(np.mean(run.outputs.argmax(1) == yte))
        row["rtl_equals_golden"] = bool(np.array_equal(run.outputs, golden))
        row["rtl_cycles_per_input"] = run.cycles / len(xte)
        row["rtl_seconds"] = time.monotonic() - start
    return row


def budget_figure(out_dir: Path, rtl: bool = True, splits=(0, 1)) -> dict:
    """The accuracy-budget figure (see the module docstring); ``rtl`` runs the test images
    on the EIE RTL (one Verilator build per image config); ``splits``: the split seeds."""
    out_dir = Path(out_dir)
    res = {"target": "compression >= 45x (paper accounting), <= 0.5 point test loss on the "
                     "RTL, EIE 16 PEs", "max_loss": 0.5, "runs": [], "recipe": []}
    for split_seed in splits:
        model, xtr, ytr, xte, yte = sklearn_digits(split_seed)
        c, manifest = compress_to_image(
            model, "eie", CompressSpec(bits=4, sparsity=0.92, reserve_zero=True),
            out_dir / f"sklearn_recipe{split_seed}", x_train=xtr, y_train=ytr, pes=16)
        golden = run_image(load_image(out_dir / f"sklearn_recipe{split_seed}"), xte).outputs
        res["recipe"].append({
            "split_seed": split_seed, "sparsity": 0.92, "bits": 4,
            "compression_ratio": manifest["compression"]["compression_ratio"],
            "float_test_accuracy": model.accuracy(xte, yte),
            "golden_test_accuracy": float(np.mean(golden.argmax(1) == yte))})
        print(f"[compression] sklearn recipe split {split_seed}: {res['recipe'][-1]}", flush=True)
        res["runs"].append(_budget_run(out_dir, split_seed, rtl))
        print(f"[compression] sklearn --max-loss 0.5 split {split_seed}: "
              f"{res['runs'][-1]}", flush=True)
    return res


def _vgg() -> dict:
    proc = subprocess.run([sys.executable, "-c", _VGG], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kmeans() -> dict:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(10_000_000) * 0.02).astype(np.float64)
    out = {}
    for k in (16, 32):
        start = time.monotonic()
        ours = kmeans_1d(x, k, init="linear")
        t_ours = time.monotonic() - start
        init = init_centroids(np.sort(x), k, "linear").reshape(-1, 1)
        start = time.monotonic()
        km = KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd").fit(x.reshape(-1, 1))
        t_sk = time.monotonic() - start
        out[f"k{k}"] = {"ours_s": t_ours, "sklearn_s": t_sk, "speedup": t_sk / t_ours,
                        "ours_inertia": inertia(x, ours.centroids),
                        "sklearn_inertia": inertia(x, km.cluster_centers_.ravel()),
                        "ours_iterations": ours.iterations, "sklearn_iterations": int(km.n_iter_)}
        print(f"[compression] k-means 10M k={k}: {out[f'k{k}']}", flush=True)
    return out


def _plot(res: dict, out_dir: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for bits in (4, 5, 6):
        pts = sorted((s["compression_ratio"], 100 * s["accuracy"])
                     for s in res["digits"]["post_training_scan"] if s["bits"] == bits)
        ax.plot(*zip(*pts, strict=True), "o-", label=f"post-training, {bits} bits")
    for engine, marker in (("eie", "*"), ("systolic", "s")):
        r = res["digits"][f"retrained_{engine}"]
        ax.plot(r["compression_ratio"], 100 * r["golden_accuracy"], marker, markersize=12,
                label=f"retrained, {engine} golden")
    ax.axhline(100 * res["digits"]["float_accuracy"], color="k", lw=0.8, label="float")
    ax.set_xlabel("compression ratio (Deep Compression accounting)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits 64-300-100-10")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "compression_digits.png", dpi=100)
    plt.close(fig)


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    work = out_dir / "compression"
    work.mkdir(parents=True, exist_ok=True)
    res = {"digits": _digits(work)}
    res["budget"] = budget_figure(work)
    res["vgg6_layer"] = _vgg()
    print(f"[compression] VGG-6 layer: {res['vgg6_layer']}", flush=True)
    res["kmeans_10M"] = _kmeans()
    _plot(res, out_dir)
    (out_dir / "compression.json").write_text(json.dumps(res, indent=1))
    return res
