"""Bench ``cnn_budget``: the digits CNN compressed within an accuracy budget.

The data of :mod:`sim.bench.cnn_methods` (:func:`quantize.digits.load_digits_split`: 1,437
training and 360 test images; the digits CNN of
:func:`quantize.train_cnn.train_digits_cnn`, 6,032 weights).
:func:`quantize.graph_sensitivity.search_graph` chooses each weight node's sparsity and
codebook bits so that the int8 golden model (calibrated on the first :data:`CALIBRATION`
fitting images, as the test figures below) stays within :data:`MAX_LOSS` points of the
float CNN's accuracy on a validation split of the training images (:data:`VAL_FRACTION`,
stratified, seed :data:`SEED`: 288 images), retraining on the other 1,149; the test images
are never passed to it. Two CNNs:

* ``all_images``: the CNN of the ``cnn_methods`` table, trained on all 1,437 training
  images, so the float CNN has seen the validation images (as when ``compress --max-loss``
  is given the data a model was trained on); comparable with the hand-chosen
  ``prune+share`` row (conv1 50 %, conv2 70 %, fc 80 %, 5/4/4 bits);
* ``fit_images``: a CNN trained on the 1,149 fitting images only, so the validation images
  are unseen by every training step and the split's figures are held-out ones.

For each: the chosen sparsities and bits, the paper's ratios (Huffman and codebook +
relative index, against the 32-bit dense weights), accuracy on the split (float and
compressed), test accuracy (float, and int8 golden: TFLite-style per-channel int8
calibrated on 500 training images, :func:`quantize.graph_run.run_graph`) and minutes; and,
for comparison, the hand-chosen ``prune+share`` configuration of ``cnn_methods``
(:data:`sim.bench.cnn_methods.SPARSITY`, :data:`~sim.bench.cnn_methods.BITS`) put through the
same retraining on the same fitting images and scored the same way (its budget verdict
from its int8 golden model on the split, as the search's).

``make bench SUITES=cnn_budget`` (or ``python -m sim.bench cnn_budget``) writes
``build/bench/cnn_budget.json`` and the committed record ``docs/results/cnn_budget.json``
(without the per-candidate lists), from which :mod:`sim.bench.results` renders its table.
"""

import json
import time
from pathlib import Path

import numpy as np

from quantize.compress_graph import compress_graph
from quantize.digits import load_digits_split
from quantize.graph_quant import quantize_graph
from quantize.graph_run import run_graph
from quantize.graph_sensitivity import format_scans, search_graph
from quantize.sensitivity import validation_split
from quantize.train_cnn import accuracy, train_digits_cnn

from ..rtl import BUILD_ROOT
from .cnn_methods import BITS, SPARSITY
from .results import REPO, provenance

__all__ = ["RECORD", "MAX_LOSS", "VAL_FRACTION", "SEED", "measure", "main"]

#: The committed record (docs/results.md is rendered from it).
RECORD = REPO / "docs" / "results" / "cnn_budget.json"
#: Per-candidate lists left out of the committed record (build/bench keeps them).
_BULKY = ("prune_curves", "bits_drops", "tried")

#: Allowed drop of the validation accuracy, in points.
MAX_LOSS = 0.5
VAL_FRACTION, SEED = 0.2, 0
CALIBRATION = 500
#: Codebook fine-tuning epochs after sharing (trained quantization), as cnn_methods' Tucker rows.
FINETUNE_EPOCHS = 5


def _int8_accuracy(graph, x_cal, x, y) -> float:
    """Fraction of ``x`` the int8 golden model (scales from ``x_cal[:CALIBRATION]``)
    answers ``y``."""
    qg = quantize_graph(graph, x_cal[:CALIBRATION])
    return float(np.mean(run_graph(qg, x, "golden").float_output.argmax(1) == y))


def _budget(graph, xtr, ytr, xte, yte, name: str) -> dict:
    start = time.monotonic()
    fit, _ = validation_split(len(xtr), VAL_FRACTION, SEED, ytr)
    found = search_graph(graph, MAX_LOSS, xtr, ytr, val_fraction=VAL_FRACTION, seed=SEED,
                         finetune_epochs=FINETUNE_EPOCHS,
                         int8_calibration=xtr[fit][:CALIBRATION],
                         progress=lambda msg: print(f"[cnn_budget] {name}: {msg}", flush=True))
    minutes = (time.monotonic() - start) / 60
    print(format_scans(found.prune_curves, found.bits_drops, found.picks, MAX_LOSS,
                       ("of the float CNN", "of the chosen pruned CNN")), flush=True)
    print(found.summary(), flush=True)
    cg = found.compressed
    assert np.array_equal(fit, found.fit)
    out = {**found.as_dict(), "search_minutes": minutes,
           "candidates_retrained": sum("pruned_val" in t for t in found.tried),
           "sharings_checked": sum("shared_val" in t for t in found.tried),
           "layers": {r.name: {"kept": r.kept, "weights": r.weights, "bits": r.bits}
                      for r in cg.storage},
           "float_test_accuracy": accuracy(graph, xte, yte),
           "float_int8_test_accuracy": _int8_accuracy(graph, xtr[fit], xte, yte),
           "test_accuracy": accuracy(cg.graph, xte, yte),
           "int8_golden_test_accuracy": _int8_accuracy(cg.graph, xtr[fit], xte, yte)}
    hand = compress_graph(graph, SPARSITY, BITS, xtr[fit], ytr[fit], seed=SEED,
                          finetune_epochs=FINETUNE_EPOCHS)
    val = found.val
    t = hand.totals()
    hand_int8 = 100.0 * _int8_accuracy(hand.graph, xtr[fit], xtr[val], ytr[val])
    out["hand_chosen"] = {
        "sparsity": SPARSITY, "bits": BITS, "ratio_pq": t["ratio_pq"],
        "ratio_huffman": t["ratio_huffman"],
        "val": 100.0 * accuracy(hand.graph, xtr[val], ytr[val]), "val_int8": hand_int8,
        "within_budget": found.float_val - hand_int8 <= MAX_LOSS + 1e-9,
        "test_accuracy": accuracy(hand.graph, xte, yte),
        "int8_golden_test_accuracy": _int8_accuracy(hand.graph, xtr[fit], xte, yte)}
    print(f"[cnn_budget] {name}: " + json.dumps(
        {k: v for k, v in out.items() if k not in ("prune_curves", "bits_drops", "tried")}),
        flush=True)
    return out


def measure() -> dict:
    """Both CNNs searched at :data:`MAX_LOSS`; the figures as a dict."""
    start = time.monotonic()
    xtr, ytr, xte, yte = load_digits_split()
    x, xt = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    fit, _ = validation_split(len(x), VAL_FRACTION, SEED, ytr)
    res = {"max_loss_points": MAX_LOSS, "val_fraction": VAL_FRACTION, "seed": SEED,
           "train_images": int(len(x)), "test_images": int(len(xt)),
           "finetune_epochs": FINETUNE_EPOCHS,
           "accounting": "ratio_huffman / ratio_pq: Deep Compression (codebook index + 5-bit "
                         "relative index, Huffman coded or not) against the 32-bit dense "
                         "weights of the CNN",
           "hand_chosen": "cnn_methods prune+share: conv1 50 %, conv2 70 %, fc 80 %, 5/4/4 "
                          "bits, 13.6x Huffman at 99.72 % (int8 golden, test)"}
    res["all_images"] = _budget(train_digits_cnn(xtr, ytr), x, ytr, xt, yte, "all_images")
    res["fit_images"] = _budget(train_digits_cnn(xtr[fit], ytr[fit]), x, ytr, xt, yte,
                                "fit_images")
    res["bench_minutes"] = (time.monotonic() - start) / 60
    return res


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, started = time.monotonic(), provenance()
    res = measure()
    (out_dir / "cnn_budget.json").write_text(json.dumps(res, indent=1) + "\n")
    kept = {k: ({kk: vv for kk, vv in v.items() if kk not in _BULKY}
                if isinstance(v, dict) else v) for k, v in res.items()}
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps({"measured": {**started, "bench_seconds": round(
        time.monotonic() - start)}, **kept}, indent=1, ensure_ascii=False) + "\n")
    return res


if __name__ == "__main__":
    main(BUILD_ROOT / "bench")
