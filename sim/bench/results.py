"""Measured results, rendered from the bench records committed in the repository.

``make bench`` writes each suite's full figures into ``build/bench/<suite>.json`` (not
committed); :func:`record` keeps a small copy in ``docs/results/<suite>.json``
(committed), and :func:`render` turns the records into ``docs/results.md``. The synthesis
suite ``boards`` keeps its own committed record, ``sim/bench/boards_record.json``.
:func:`headline` renders the README's short table of results from the same records;
the README holds it between :data:`HEADLINE_MARKERS`, and a test checks that both files
are what these functions render. Nothing here writes the README.

::

    python -m sim.bench.results             # rewrite docs/results.md from the records
    python -m sim.bench.results --check     # exit 1, saying how to refresh, if stale
    python -m sim.bench.results --headline  # print the README's headline table
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sim.sweep.report import (
    makespan,
    model_markdown,
    plot_names,
    summary_markdown,
    wall_seconds,
)
from sim.sweep.spec import load_spec
from sim.sweep.store import ResultStore

from .boards import table

__all__ = ["RECORDS", "RESULTS_MD", "HEADLINE_MARKERS", "load", "provenance", "record",
           "render", "headline", "check", "main"]

REPO = Path(__file__).resolve().parents[2]
#: Committed per-suite records (``<suite>.json``).
RECORDS = REPO / "docs" / "results"
#: The synthesis suite's committed record (every case's latest build).
BOARDS_RECORD = REPO / "sim" / "bench" / "boards_record.json"
RESULTS_MD = REPO / "docs" / "results.md"
#: Sweeps' results files (``nnaccel sweep``: the cost-model sweep and the synthesis
#: sweeps), with their specs.
SWEEPS = REPO / "docs" / "sweeps"
README = REPO / "README.md"
#: The two comment lines around the README's generated headline table.
HEADLINE_MARKERS = (
    "<!-- headline results: generated from docs/results/*.json by "
    "python -m sim.bench.results --headline -->",
    "<!-- end of headline results -->",
)
_ENGINE_NAMES = {"eie": "EIE", "systolic": "systolic"}
#: Suites whose record this module writes (``boards`` writes its own).
SUITES = ("systolic", "eie", "eie_pes", "compression", "convs", "tflite")
NOT_MEASURED = "_Not measured in this record._"


def _int(n) -> str:
    """``540761`` → ``540 761`` (the thin grouping used in every table here)."""
    return f"{int(n):,}".replace(",", " ")


def _pct(x, digits=1) -> str:
    return f"{100 * x:.{digits}f} %"


#: Environment variables that change what a suite measures or how fast it simulates.
_BENCH_ENV = ("NNACCEL_OPT_FAST", "NNACCEL_SYSTOLIC_ARRAYS", "NNACCEL_EIE_PES",
              "NNACCEL_BENCH_BOARDS", "WAVES")


def provenance() -> dict:
    """Date, commit, and whether the engines' sources differ from it: taken as a suite
    starts, since others may commit while it runs."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    dirty = bool(git("status", "--porcelain", "--", "hw", "sim", "quantize", "boards"))
    env = {k: os.environ[k] for k in _BENCH_ENV if os.environ.get(k)}
    return {"date": time.strftime("%Y-%m-%d"), "commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_changes": dirty, **({"environment": env} if env else {})}


# Trimming a suite's full JSON to its committed record.

def _trim_systolic(full, old, when):
    runs = [{"array": r["array"], "m": r["m"], "k": r["k"], "n": r["n"],
             "cycles": r["cycles"], "utilization": round(r["utilization"], 5),
             "model_cycles": r["model_cycles"], "mismatches": r["mismatches"],
             "weight_stall": r["counters"].get("weight_stall"),
             "output_stall": r["counters"].get("output_stall"),
             "sim_cycles_per_second": round(r["sim_cycles_per_second"])}
            for r in full["runs"]]
    arrays = {r["array"] for r in runs}
    builds = {a: {**b, "measured": when} for a, b in full["builds"].items() if a in arrays}
    # A run of some arrays (NNACCEL_SYSTOLIC_ARRAYS) keeps the other arrays' rows.
    kept = [r for r in (old or {}).get("runs", []) if r["array"] not in arrays]
    builds = {**{a: b for a, b in (old or {}).get("builds", {}).items() if a not in arrays},
              **builds}
    return {"builds": builds, "runs": kept + runs}


def _trim_eie_row(r, keys):
    return {k: r[k] for k in keys if k in r}


_EIE_KEYS = ("layer", "cycles", "eie_cycles", "vs_eie", "work_cycles", "ideal_cycles",
             "load_balance_efficiency", "busiest_pe_starved_cycles", "padding_entries",
             "real_entries", "padding_overhead", "broadcasts", "stall_cycles", "mismatches")


def _trim_eie(full, old, when):
    out = {"measured": when, "seed": full.get("seed"),
           "build_seconds_64pe": full.get("build_seconds_64pe"),
           "layers": [_trim_eie_row(r, _EIE_KEYS) for r in full["layers"]],
           "summary": full["summary"]}
    if "balanced" in full:
        out["balanced"] = full["balanced"]
    if "queue_sweep" in full:
        out["queue_sweep"] = {q: {n: _trim_eie_row(r, ("cycles", "load_balance_efficiency",
                                                        "mismatches"))
                                  for n, r in rows.items()}
                              for q, rows in full["queue_sweep"].items()}
    if "pe_sweep_work_bound" in full:
        out["pe_sweep_work_bound"] = full["pe_sweep_work_bound"]
    return out


def _trim_eie_pes(full, old, when):
    runs = {p: {"config": r["config"], "build_seconds": r["build_seconds"],
                "wall_seconds": r["wall_seconds"], "measured": when,
                "layers": {n: _trim_eie_row(x, ("cycles", "load_balance_efficiency",
                                                "mismatches"))
                           for n, x in r["layers"].items()}}
            for p, r in full["runs"].items()}
    # A run of some PE counts (NNACCEL_EIE_PES) keeps the others.
    merged = {**(old or {}).get("runs", {}), **runs}
    return {"runs": {p: merged[p] for p in sorted(merged, key=int)}}


def _trim_compression(full, old, when):
    return {"measured": when, **full}


def _trim_convs(full, old, when):
    def fig(a):
        keep = {k: round(v, 5) if isinstance(v, float) else v for k, v in a.items()
                if k not in ("config", "scalesim")}
        ss = {k: v for k, v in a["scalesim"].items() if not k.endswith("_seconds")}
        return {**keep, "scalesim": ss}
    layers = [{**{k: v for k, v in r.items() if k != "arrays"},
               "arrays": {a: fig(x) for a, x in r["arrays"].items()}} for r in full["layers"]]
    out = {"measured": when, **{k: v for k, v in full.items() if k != "layers"},
           "layers": layers}
    for key in ("rtl_check", "rtl_check_16"):
        if key not in full and old and key in old:
            out[key] = old[key]
    return out


def _trim_tflite(full, old, when):
    return {"measured": when, **full}


_TRIM = {"systolic": _trim_systolic, "eie": _trim_eie, "eie_pes": _trim_eie_pes,
         "compression": _trim_compression, "convs": _trim_convs, "tflite": _trim_tflite}


def record(suite: str, out_dir, seconds=None, started: dict | None = None) -> Path | None:
    """Keep ``out_dir/<suite>.json`` (a bench run's figures) as the committed record.

    ``seconds``: the suite's wall time; ``started``: :func:`provenance` as the suite
    started (taken now if not given; a ``note`` in it is printed with the figures).
    Returns the record's path, or ``None`` for a suite that keeps its own record
    (``boards``) or wrote no figures.
    """
    source = Path(out_dir) / f"{suite}.json"
    if suite not in _TRIM or not source.exists():
        return None
    full = json.loads(source.read_text())
    if suite == "systolic" and not full.get("runs") or suite == "eie" and "layers" not in full:
        return None
    path = RECORDS / f"{suite}.json"
    old = json.loads(path.read_text()) if path.exists() else None
    when = dict(started or provenance())
    if seconds is not None:
        when["bench_seconds"] = round(seconds)
    data = _TRIM[suite](full, old, when)
    if suite == "systolic":
        data = {"measured": when, **data}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def load() -> dict:
    """Every committed record by suite name (absent suites are missing keys)."""
    records = {}
    for suite in SUITES:
        path = RECORDS / f"{suite}.json"
        if path.exists():
            records[suite] = json.loads(path.read_text())
    if BOARDS_RECORD.exists():
        records["boards"] = json.loads(BOARDS_RECORD.read_text())
    # These suites write their own records.
    for suite, name in (("methods", "compression_methods"), ("cnn_methods", "cnn_methods"),
                        ("cnn_budget", "cnn_budget")):
        path = RECORDS / f"{name}.json"
        if path.exists():
            records[suite] = json.loads(path.read_text())
    sweeps = {p.stem: ResultStore(p) for p in [SWEEPS / "model.jsonl",
                                               *sorted(SWEEPS.glob("synth-*.jsonl"))]
              if p.exists()}
    if sweeps:
        records["sweeps"] = {name: {"records": st.latest(), "context": st.context()}
                             for name, st in sweeps.items()}
    winograd = RECORDS / "winograd.json"                # the suite writes its own record
    if winograd.exists():
        records["winograd"] = json.loads(winograd.read_text())
    return records


def _when(m: dict, first: bool = False) -> str:
    text = f"{'M' if first else 'm'}easured {m['date']}"
    if m.get("commit"):
        text += f" at commit `{m['commit']}`"
        if m.get("uncommitted_changes"):
            text += " (with uncommitted changes)"
    env = m.get("environment")
    if env:
        text += " with " + ", ".join(f"`{k}={v}`" for k, v in env.items())
    if m.get("bench_seconds") is not None:
        text += f"; the suite took {_int(m['bench_seconds'])} s"
    if m.get("note"):
        text += f"; {m['note']}"
    return text


# docs/results.md, one section per suite.

def _systolic_md(rec) -> list[str]:
    out = [f"Cycles count from the first input beat to the last result word (loads, fill, "
           f"drain and weight loads included); utilization is useful MACs / (rows · cols · "
           f"cycles); the model is `hw.systolic.driver.model_cycles`; every output word is "
           f"compared with the golden model. {_when(rec['measured'], True)}.", "",
           "| array | GEMM M×K×N | cycles | utilization | weight-stall cycles | "
           "output-stall cycles | model cycles | wrong words |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rec["runs"]:
        out.append(f"| {r['array'].replace('x', '×')} | {r['m']}×{r['k']}×{r['n']} | "
                   f"{_int(r['cycles'])} | {_pct(r['utilization'])} | "
                   f"{_int(r['weight_stall'])} | {_int(r['output_stall'])} | "
                   f"{_int(r['model_cycles'])} | {r['mismatches']} |")
    out += ["", "| array | Verilator build s | simulated cycles/s on its longest GEMM (cocotb) |",
            "|---|---|---|"]
    for a, b in rec["builds"].items():
        longest = max((r for r in rec["runs"] if r["array"] == a), key=lambda r: r["cycles"])
        cached = " (cached from an earlier run)" if b.get("cached") else ""
        out.append(f"| {a.replace('x', '×')} | {_int(b['build_seconds'])}{cached} | "
                   f"{_int(longest['sim_cycles_per_second'])} |")
    measured = {r["array"] for r in rec["runs"]}
    # The arrays suite ``systolic`` runs (NNACCEL_SYSTOLIC_ARRAYS picks some).
    missing = [a for a in ("16x16", "8x8", "32x32") if a not in measured]
    if missing:
        out += ["", f"Arrays not measured in this record: "
                    f"{', '.join(a.replace('x', '×') for a in missing)}."]
    return out


def _eie_md(rec) -> list[str]:
    s = rec["summary"]
    rows = rec["layers"]
    out = [f"64 PEs, queue depth 8, EIE's nine benchmark layers as synthetic matrices with "
           f"the paper's sizes and densities (seed {rec['seed']}); cycles from the layer "
           f"command to the end of write-back; every output word compared with the golden "
           f"model. \"Work\" is the busiest PE's MAC cycles from the image, \"ideal\" its "
           f"entries with padding; load-balance efficiency is `1 − bubble / total` for the "
           f"busiest PE. {_when(rec['measured'], True)}.", "",
           "| layer | cycles | EIE cycles | ours / EIE | work | ideal | load balance | "
           "busiest PE starved | padding / real entries | wrong words |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['layer']} | {_int(r['cycles'])} | {_int(r['eie_cycles'])} | "
                   f"{r['vs_eie']:.2f} | {_int(r['work_cycles'])} | {_int(r['ideal_cycles'])}"
                   f" | {_pct(r['load_balance_efficiency'])} | "
                   f"{_int(r['busiest_pe_starved_cycles'])} | {_pct(r['padding_overhead'])} | "
                   f"{r['mismatches']} |")
    out += ["", f"Mean load-balance efficiency {_pct(s['mean_load_balance_efficiency'])}; "
                f"every layer at or below EIE's cycles: "
                f"{'yes' if s['all_at_or_below_eie'] else 'no'}; "
                f"{s['total_mismatches']} wrong words. The 64-PE Verilator model simulates "
                f"{_int(s['verilator_cycles_per_second_64pe'])} cycles/s; Alex-7 from its "
                f"index matrix to checked outputs takes "
                f"{s['alex7_wall_seconds_image_load_and_run']:.1f} s "
                f"({s['alex7_load_seconds']:.1f} s loading the image, "
                f"{s['alex7_run_seconds']:.1f} s running the layer)."]
    if rec.get("build_seconds_64pe") is not None:
        out[-1] += f" Its Verilator build took {rec['build_seconds_64pe']:.0f} s."
    if rec.get("balanced"):
        out += ["", "### Rows assigned to PEs by load", "",
                "`balance_layers` (greedy by non-zeros per row) instead of row `i` in PE "
                "`i mod N`; outputs permuted back on the host.", "",
                "| layer | cycles | interleaved cycles | speed-up | work | interleaved work "
                "| wrong words |", "|---|---|---|---|---|---|---|"]
        for r in rec["balanced"]:
            out.append(f"| {r['layer']} | {_int(r['cycles'])} | {_int(r['interleaved_cycles'])}"
                       f" | {r['speedup']:.3f} | {_int(r['work_cycles'])} | "
                       f"{_int(r['interleaved_work_cycles'])} | {r['mismatches']} |")
    else:
        out += ["", "Rows assigned by load: not measured in this record."]
    sweep = rec.get("queue_sweep")
    if sweep:
        depths = sorted(sweep, key=int)
        names = [r["layer"] for r in rows]
        out += ["", "### Queue depth (EIE Fig. 8)", "",
                "One 64-PE build with 64-deep queues whose fill is capped per run, which "
                "behaves as a shallower queue. Load-balance efficiency per layer:", "",
                "| layer | " + " | ".join(f"depth {q}" for q in depths) + " |",
                "|---|" + "---|" * len(depths)]
        for n in names:
            out.append(f"| {n} | " + " | ".join(
                _pct(sweep[q][n]["load_balance_efficiency"]) for q in depths) + " |")
        means = [sum(sweep[q][n]["load_balance_efficiency"] for n in names) / len(names)
                 for q in depths]
        wrong = sum(sweep[q][n]["mismatches"] for q in depths for n in names)
        out.append("| mean | " + " | ".join(_pct(m) for m in means) + " |")
        out += ["", f"{wrong} wrong words over the sweep."]
    else:
        out += ["", "Queue-depth sweep: not measured in this record."]
    work = rec.get("pe_sweep_work_bound")
    if work:
        counts = sorted(work, key=int)
        names = [r["layer"] for r in rows]
        first = counts[0]
        out += ["", "### Work bound by PE count (from the images)", "",
                f"Speed-up of the busiest PE's work over {first} PE, per layer (the RTL "
                f"cycles are suite `eie_pes`):", "",
                "| layer | " + " | ".join(f"{p} PEs" for p in counts) + " |",
                "|---|" + "---|" * len(counts)]
        for n in names:
            base = work[first][n] * int(first)
            out.append(f"| {n} | " + " | ".join(f"{base / work[p][n]:.2f}×"
                                                for p in counts) + " |")
    else:
        out += ["", "Work bound by PE count: not measured in this record."]
    return out


def _eie_pes_md(rec) -> list[str]:
    runs = rec["runs"]
    counts = sorted(runs, key=int)
    names = list(runs[counts[0]]["layers"])
    first = counts[0]
    dates = sorted({r["measured"]["date"] for r in runs.values()})
    out = [f"The nine layers of suite `eie` on engines of {', '.join(counts)} PEs, queue "
           f"depth 8, one Verilator build per PE count; every output word compared with the "
           f"golden model. Measured {', '.join(dates)}.", "",
           f"RTL speed-up over {first} PE{'s' if int(first) > 1 else ''}:", "",
           "| layer | " + " | ".join(f"{p} PEs" for p in counts) + " |",
           "|---|" + "---|" * len(counts)]
    for n in names:
        base = runs[first]["layers"][n]["cycles"] * int(first)
        out.append(f"| {n} | " + " | ".join(
            f"{base / runs[p]['layers'][n]['cycles']:.2f}×" for p in counts) + " |")
    out.append("| mean load balance | " + " | ".join(
        _pct(sum(runs[p]["layers"][n]["load_balance_efficiency"] for n in names) / len(names))
        for p in counts) + " |")
    wrong = sum(x["mismatches"] for r in runs.values() for x in r["layers"].values())
    builds = ", ".join(f"{p} PEs {runs[p]['build_seconds']:.0f} s" for p in counts)
    out += ["", f"{wrong} wrong words. Verilator builds: {builds}."]
    return out


def _compression_md(rec) -> list[str]:
    d = rec["digits"]
    out = [f"Digits 64-300-100-10 MLP (scikit-learn's 8×8 digits, {d['test_images']} test "
           f"images), float accuracy {_pct(d['float_accuracy'], 2)}. "
           f"{_when(rec['measured'], True)}.", "",
           "\"Ratio\" is Deep Compression's accounting (codebook-index bits, relative-index "
           "bits with filler entries, codebooks; Huffman-coded) against 32-bit dense; "
           "\"image ratio\" is the engine image's real bytes against 32-bit dense.", "",
           "| path | weights kept | bits | ratio | image ratio | test accuracy |",
           "|---|---|---|---|---|---|"]
    for engine in ("eie", "systolic"):
        r = d.get(f"retrained_{engine}")
        if not r:
            continue
        name = _ENGINE_NAMES[engine]
        out.append(f"| retrained, {name} image | {_pct(r['density'])} | {r['bits']} | "
                   f"{r['compression_ratio']:.1f}× (pruning alone {r['ratio_pruned']:.1f}×, "
                   f"pruning + sharing {r['ratio_pq']:.1f}×) | "
                   f"{r['image_compression_ratio']:.1f}× ({_int(r['image_bytes'])} B) | "
                   f"{_pct(r['float_model_accuracy'], 2)} compressed model, "
                   f"{_pct(r['golden_accuracy'], 2)} {name} golden model |")
    best = d.get("post_training_best_within_1pt")
    if best:
        out.append(f"| post-training (calibration only), best ratio within 1 point | "
                   f"{_pct(1 - best['sparsity'], 0)} | {best['bits']} | "
                   f"{best['compression_ratio']:.1f}× | – | {_pct(best['accuracy'], 2)} |")
    p4 = d.get("post_training_eie_4bit")
    if p4:
        out.append(f"| post-training, EIE image | {_pct(1 - p4['sparsity'], 0)} | 4 | "
                   f"{p4['compression_ratio']:.1f}× | – | {_pct(p4['golden_accuracy'], 2)} "
                   f"EIE golden model |")
    scan = d.get("post_training_scan")
    if scan:
        bits = sorted({s["bits"] for s in scan})
        sparsities = sorted({s["sparsity"] for s in scan})
        by = {(s["sparsity"], s["bits"]): s for s in scan}
        out += ["", "Post-training scan (test accuracy, ratio):", "",
                "| pruned | " + " | ".join(f"{b} bits" for b in bits) + " |",
                "|---|" + "---|" * len(bits)]
        for sp in sparsities:
            out.append(f"| {_pct(sp, 0)} | " + " | ".join(
                f"{_pct(by[sp, b]['accuracy'], 2)}, {by[sp, b]['compression_ratio']:.1f}×"
                for b in bits) + " |")
    inits = d.get("init_comparison_no_finetune")
    if inits:
        kinds = sorted({k.split("/")[0] for k in inits}, key=["linear", "density",
                                                                "random"].index)
        bits = sorted({int(k.split("/")[1]) for k in inits})
        out += ["", f"k-means initialisation after pruning and retraining, no centroid "
                    f"fine-tuning (pruned and retrained: "
                    f"{_pct(d['pruned_retrained_accuracy'], 2)}); test accuracy:", "",
                "| bits | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for b in bits:
            out.append(f"| {b} | " + " | ".join(_pct(inits[f'{k}/{b}']['accuracy'], 2)
                                                for k in kinds) + " |")
    v = rec.get("vgg6_layer")
    if v:
        out += ["", f"A 25088 × 4096 layer (VGG-6's size): pruning to 4 % {v['prune_s']:.1f} s, "
                    f"4-bit sharing {v['share_s']:.1f} s, interleaved-CSC encoding for 64 PEs "
                    f"{v['encode_s']:.1f} s ({v['total_s']:.1f} s in all), peak RSS "
                    f"{v['peak_mib'] / 1024:.2f} GiB; ratio {v['ratio_huffman']:.1f}×."]
    km = rec.get("kmeans_10M")
    if km:
        out += ["", "1-D k-means on 10 M weights against `sklearn.cluster.KMeans` (same "
                    "initial centroids, `n_init=1`):", "",
                "| k | ours s | scikit-learn s | speed-up | inertia ours | inertia "
                "scikit-learn |", "|---|---|---|---|---|---|"]
        for k, r in km.items():
            out.append(f"| {k[1:]} | {r['ours_s']:.1f} | {r['sklearn_s']:.1f} | "
                       f"{r['speedup']:.1f}× | {r['ours_inertia']:.2f} | "
                       f"{r['sklearn_inertia']:.2f} |")
    budget = rec.get("budget")
    if budget:
        out += ["", f"`--max-loss {budget['max_loss']}` on scikit-learn's MLPClassifier((300, "
                    f"100)) (1,400/397 splits; target: {budget['target']}): ternary, "
                    f"prune+share and low-rank+prune candidates, each estimated by k-fold "
                    f"cross-validation on the 1,400 training images (every image predicted "
                    f"by models trained without it; the float model, trained on all of "
                    f"them, scores 100 % there), the most compressive within the budget "
                    f"retrained on all of them; the test images only measure it:", "",
                "| split | chosen | k-fold estimate | ratio | float test | golden test | "
                "RTL test (== golden) | search |", "|---|---|---|---|---|---|---|---|"]
        for r in budget["runs"]:
            same = "yes" if r.get("rtl_equals_golden") else "no"
            rtl = (f"{_pct(r['rtl_test_accuracy'], 2)} ({same})" if "rtl_test_accuracy" in r
                   else "–")
            estimate = (f"{r['final_val']:.2f} % ({r['folds']} folds, "
                        f"{'within' if r['within_budget'] else 'over'} budget)")
            out.append(f"| {r['split_seed']} | {r['label']} | {estimate} | "
                       f"{r['compression_ratio']:.1f}× | {_pct(r['float_test_accuracy'], 2)} | "
                       f"{_pct(r['golden_test_accuracy'], 2)} | {rtl} | "
                       f"{r['seconds'] / 60:.0f} min |")
    return out


def _convs_md(rec) -> list[str]:
    layers = rec["layers"]
    arrays = list(layers[0]["arrays"]) if layers else []
    # Records from before activation loads overlapped compute carry that projection.
    over = bool(layers) and all("overlapped_cycles" in f for r in layers
                                for f in r["arrays"].values())
    out = [f"The conv layers of AlexNet, VGG-16 and ResNet-18 (224×224 input, batch 1), each "
           f"lowered to its im2col GEMM by `quantize.lower` (M = output pixels, K = C·kh·kw, "
           f"N = output channels). {_when(rec['measured'], True)}.", "",
           "- **ours**: `hw.systolic.driver.model_cycles` (loads included) on "
           "`SystolicConfig.fit` sized for the layer; utilization = MACs / (rows · cols · "
           "cycles). † = `fit` refuses the config (reason below); the cycles are still the "
           "model's, which reads only rows and cols."]
    out += (["- **overlapped**: the same model with its serial load term "
             "`max(KT·M, KT·NT·rows, NT)` replaced by the first tile's `max(M, rows, 1)`: "
             "what overlapping activation loads with compute (double-buffered activation "
             "tiles) would give."] if over else
            ["  Activations stream in while the GEMM runs; the weights and parameters "
             "(`KT·NT·rows` and `NT` words) load before its command."])
    out += [
           f"- **SCALE-Sim**: {rec.get('scalesim', 'scalesim')} in its own venv "
           f"(`build/scalesim-venv`), weight stationary, square array, "
           f"{_int(rec.get('sram_kb', 0))} kB for each of the ifmap, filter and ofmap SRAMs, "
           f"CALC bandwidth mode; each layer a conv topology row with the padded input extent "
           f"its windows read. Cycles are the rows of its compute model's demand matrices "
           f"minus one, which is its COMPUTE_REPORT \"Total Cycles\" when nothing stalls; "
           f"layers of at most {_int(rec.get('full_sim_rows', 0))} demand rows also ran its "
           f"full memory simulation (table below). It counts no loading of its SRAMs; ours "
           f"counts every word streamed in."]
    for a in arrays:
        label = a.replace("x", "×")
        head = ["network", "layer", "M", "K", "N", "MACs", "our cycles", "utilization"]
        head += ["overlapped cycles"] * over + ["SCALE-Sim cycles", "ours / SCALE-Sim"]
        head += ["overlapped / SCALE-Sim"] * over
        out += ["", f"### {label}", "", "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head)]
        for r in layers:
            f = r["arrays"][a]
            ss = f["scalesim"].get("cycles")
            mark = " †" if "config_error" in f else ""
            cells = [r["net"], r["layer"], _int(r["m"]), _int(r["k"]), _int(r["n"]),
                     _int(r["macs"]), f"{_int(f['cycles'])}{mark}", _pct(f["utilization"])]
            cells += [_int(f["overlapped_cycles"])] if over else []
            if ss is None:
                cells += ["–"] * (2 + over)
            else:
                cells += [_int(ss), f"{f['ratio']:.3f}"]
                cells += [f"{f['overlapped_ratio']:.3f}"] if over else []
            out.append("| " + " | ".join(cells) + " |")
        figs = [r["arrays"][a] for r in layers]
        ok = [f for f in figs if "config_error" not in f]
        vgg = [r["arrays"][a] for r in layers if r["net"] == "VGG-16"]
        below = [f for f in vgg if f.get("ratio", 2) <= 1]

        def mean(xs, key):
            return sum(x[key] for x in xs) / len(xs) if xs else 0.0

        out += ["", f"- Mean utilization: {_pct(mean(figs, 'utilization'))} over all "
                    f"{len(figs)} layers ({_pct(mean(ok, 'utilization'))} over the {len(ok)} "
                    f"that `fit` configures), VGG-16 {_pct(mean(vgg, 'utilization'))}"
                    + (f"; overlapped {_pct(mean(figs, 'overlapped_utilization'))}, VGG-16 "
                       f"{_pct(mean(vgg, 'overlapped_utilization'))}" if over else "") + ".",
                f"- VGG-16 layers at or below SCALE-Sim's cycles: {len(below)} of {len(vgg)} "
                f"({sum(1 for f in below if 'config_error' not in f)} of the "
                f"{sum(1 for f in vgg if 'config_error' not in f)} that `fit` configures)"
                + (f"; overlapped: {sum(1 for f in vgg if f.get('overlapped_ratio', 2) <= 1)} "
                   f"of {len(vgg)}" if over else "") + ".",
                f"- Configs refused by `fit`: {len(figs) - len(ok)} of {len(figs)}."]
    reasons = sorted({f["config_error"] for r in layers for f in r["arrays"].values()
                      if "config_error" in f})
    if reasons:
        out += ["", "† Reasons `SystolicConfig.fit` gave:", ""]
        out += [f"- {x}" for x in reasons]
    full = [(r, a, r["arrays"][a]["scalesim"]) for r in layers for a in arrays
            if "total_cycles" in r["arrays"][a]["scalesim"]]
    if full:
        same = sum(1 for _, _, s in full if s["total_cycles"] == s.get("cycles"))
        out += ["", "### SCALE-Sim's full simulation", "",
                f"{len(full)} layer/array pairs also ran SCALE-Sim's memory simulation; its "
                f"\"Total Cycles\" equals the compute-model figure above on {same} of them.", "",
                "| network | layer | array | total cycles | stall cycles | total incl. DRAM "
                "prefetch |", "|---|---|---|---|---|---|"]
        for r, a, s in full:
            out.append(f"| {r['net']} | {r['layer']} | {a.replace('x', '×')} | "
                       f"{_int(s['total_cycles'])} | {_int(s['stall_cycles'])} | "
                       f"{_int(s['total_cycles_incl_prefetch'])} |")
    rtl = rec.get("rtl_check")
    if rtl:
        out += _rtl_check_md(rtl, "Real channel counts at reduced spatial size")
        real = rec.get("rtl_check_16")
        if real:
            out += _rtl_check_md(real, "Real shapes (batch 1)")
        else:
            out += ["", "Not done: the same check on 16×16 at real shapes."]
    else:
        out += ["", "RTL against the model: not measured in this record."]
    return out


def _rtl_check_md(rtl: dict, what: str) -> list[str]:
    array = rtl["array"].replace("x", "×")
    out = ["", f"### RTL against the model ({array})", "",
           f"{what}, one Verilator build of the {array} array sized by `fit` for the three "
           f"({', '.join(f'{k} {v}' for k, v in rtl['config'].items())}); random int8 "
           f"data, every output word compared with the golden model.", "",
           "| layer | M×K×N | RTL cycles | model cycles | model error | wrong words |",
           "|---|---|---|---|---|---|"]
    for r in rtl["layers"]:
        out.append(f"| {r['layer']} | {r['m']}×{r['k']}×{r['n']} | {_int(r['rtl_cycles'])} "
                   f"| {_int(r['model_cycles'])} | {100 * r['model_error']:+.3f} % | "
                   f"{r['mismatches']} |")
    return out

def _boards_md(cases) -> list[str]:
    out = ["Each row is a full yowasp build (Yosys, nextpnr, packing) of a board's top "
           "level with one engine. Fmax is nextpnr's post-route figure for the design "
           "clock, with its constraint in brackets; rows swept over several nextpnr seeds "
           "keep the best. `NNACCEL_BENCH_BOARDS=name,...` rebuilds some cases; the "
           "others keep their rows.", "", table(cases)]
    swept = [c for c in cases if len(c.get("seed_fmax", {})) > 1]
    if swept:
        out += ["", "Every seed of the swept cases (the same netlist placed and routed with "
                    "each nextpnr seed; – = no legal placement or routing):", ""]
        for c in swept:
            seeds = ", ".join(f"seed {s} {f:.1f} MHz" if f else f"seed {s} –"
                              for s, f in c["seed_fmax"].items())
            out.append(f"- {c['name']}: {seeds}")
    return out



def _methods_table(methods: dict) -> list[str]:
    out = ["| method | what | ratio (paper) | test accuracy (float) | golden accuracy, image "
           "bytes per engine |", "|---|---|---|---|---|"]
    for name, m in methods.items():
        plain = (f" ({m['ratio_plain_code']:.1f}× as a plain code)"
                 if "ratio_plain_code" in m else "")
        engines = "; ".join(f"{_ENGINE_NAMES.get(e, e)} {_pct(v['golden_accuracy'], 2)}, "
                            f"{_int(v['image_bytes'])} B"
                            for e, v in m.get("engines", {}).items())
        rtl = m.get("rtl")
        if rtl:
            engines += f"; RTL == golden on {', '.join(_ENGINE_NAMES.get(e, e) for e in rtl)}"
        what = m["description"].replace("|", "\\|")
        shown = f"{name} (*distilled*)" if m.get("distilled") else name
        out.append(f"| {shown} | {what} | {m['ratio_huffman']:.1f}×{plain} | "
                   f"{_pct(m['accuracy'], 2)} | {engines} |")
    return out


def _methods_md(rec) -> list[str]:
    model = rec["model"]
    out = [f"The project's digits 64-300-100-10 MLP ({model['train_images']} training, "
           f"{model['test_images']} test images, float accuracy "
           f"{_pct(model['float_accuracy'], 2)}), golden model on every test image. "
           f"{_when(rec['measured'], True)}. Accounting: {rec['accounting']}.", ""]
    out += _methods_table(rec["methods"])
    out += ["", f"Best within 0.5 point: {rec.get('best_within_0.5_points') or 'none'}."]
    if rec.get("plot"):
        out += ["", f"![Accuracy against compression, digits MLP]({rec['plot']})"]
    for s in rec.get("sklearn", {}).values():
        out += ["", f"### {s['model_name']}", "",
                f"Float accuracy {_pct(s['model']['float_accuracy'], 2)} on "
                f"{s['model']['test_images']} test images.", ""]
        out += _methods_table(s["methods"])
        out += ["", f"Best within 0.5 point: {s.get('best_within_0.5_points') or 'none'}."]
    return out

def _cnn_methods_md(rec: dict) -> list[str]:
    """The record as Markdown lines (a table with one row per method)."""
    model = rec["model"]
    image = (f", systolic image {_int(model['image_bytes'])} B" if "image_bytes" in model
             else "")
    out = [f"The digits CNN ({model['weights']:,} weights; {model['train_images']:,} training, "
           f"{model['test_images']} test images; float {100 * model['float_accuracy']:.2f} %, "
           f"int8 golden {100 * model['int8_golden_accuracy']:.2f} %{image}). Accounting: "
           f"{rec['accounting']}."]
    d = rec.get("distillation")
    if d:
        out[0] += (f" Rows marked *distilled* mix the float CNN's outputs softened at "
                   f"T = {d['temperature']:g} into the targets at weight {d['weight']:g}.")
    if "measured" in rec:
        out[0] += f" {_when(rec['measured'], True)}."
    out += ["", "| method | what | ratio (paper) | image bytes (ratio) | float accuracy | "
                "int8 golden accuracy |", "|---|---|---|---|---|---|"]
    for name, r in rec["methods"].items():
        plain = (f" ({r['ratio_plain_code']:.1f}× as a plain code)"
                 if "ratio_plain_code" in r else "")
        what = r["description"].replace("|", "\\|")
        image = (f"{_int(r['image_bytes'])} ({r['image_ratio']:.1f}×)" if "image_bytes" in r
                 else "—")
        shown = f"{name} (*distilled*)" if r.get("distilled") else name
        out.append(f"| {shown} | {what} | {r['ratio_huffman']:.1f}×{plain} | {image} | "
                   f"{100 * r['float_accuracy']:.2f} % | "
                   f"{100 * r['int8_golden_accuracy']:.2f} % |")
    for name, r in rec["methods"].items():
        if "rtl" in r:
            t = r["rtl"]
            out += ["", f"{name} on the {t['array'].replace('x', '×')} systolic RTL, all "
                        f"{rec['model']['test_images']} test images, random stalls "
                        f"{t['stall']}: {t['wrong_words']} of {t['words']:,} output words "
                        f"differ from golden, accuracy {100 * t['accuracy']:.2f} %, "
                        f"{t['cycles']:,} cycles."]
    sel = rec.get("rank_selection")
    if sel:
        out += ["", _rank_selection_md(sel)]
    if rec.get("plot"):
        out += ["", f"![Accuracy against compression, digits CNN]({rec['plot']})"]
    return out


def _cnn_budget_md(rec: dict) -> list[str]:
    """The record as Markdown lines: per CNN, what the search chose and how it scored."""
    out = [f"`quantize.graph_sensitivity.search_graph` (what `nnaccel compress MODEL.onnx "
           f"--max-loss` runs) on the digits CNN: each weight node's sparsity and codebook "
           f"bits within {rec['max_loss_points']:g} points of the float CNN's accuracy on "
           f"{100 * rec['val_fraction']:g} % of the {_int(rec['train_images'])} training "
           f"images held out (stratified, seed {rec['seed']}), retrained on the rest, every "
           f"candidate judged on its int8 golden model where the record has one; the "
           f"{rec['test_images']} test images are never seen by the search. *all images*: the "
           f"CNN of the table above, trained on every training image (the held-out images "
           f"are not new to it); *fit images*: a CNN trained on the retraining images only. "
           f"Beside each, the hand-chosen prune+share row ({rec['hand_chosen']}) retrained "
           f"the same way. Accounting: {rec['accounting']}."]
    if "measured" in rec:
        out[0] += f" {_when(rec['measured'], True)}."
    out += ["", "| CNN | configuration | ratio (paper) | validation: float → compressed "
                "float / int8 | budget | test float | test compressed | test int8 golden "
                "(float int8) | search |", "|---|---|---|---|---|---|---|---|---|"]

    def val(v, v8):
        return f"{v:.2f} / {v8:.2f} %" if v8 is not None else f"{v:.2f} %"

    for key, label in (("all_images", "all images"), ("fit_images", "fit images")):
        r = rec.get(key)
        if not r:
            continue
        what = (", ".join(f"{n} {100 * r['sparsity'][n]:.0f} %/{r['bits'][n]} b"
                          for n in r["sparsity"]))
        out.append(f"| {label} | searched: {what} | {r['ratio_huffman']:.1f}× | "
                   f"{r['float_val']:.2f} → {val(r['final_val'], r.get('final_val_int8'))} | "
                   f"{'kept' if r['within_budget'] else 'missed'} | "
                   f"{_pct(r['float_test_accuracy'], 2)} | {_pct(r['test_accuracy'], 2)} | "
                   f"{_pct(r['int8_golden_test_accuracy'], 2)} "
                   f"({_pct(r['float_int8_test_accuracy'], 2)}) | "
                   f"{r['search_minutes']:.1f} min |")
        h = r["hand_chosen"]
        out.append(f"| {label} | hand-chosen prune+share | {h['ratio_huffman']:.1f}× | "
                   f"{r['float_val']:.2f} → {val(h['val'], h.get('val_int8'))} | "
                   f"{'kept' if h['within_budget'] else 'missed'} | "
                   f"{_pct(r['float_test_accuracy'], 2)} | {_pct(h['test_accuracy'], 2)} | "
                   f"{_pct(h['int8_golden_test_accuracy'], 2)} | — |")
    return out


def _rank_selection_md(sel: dict) -> str:
    """One paragraph: the Tucker-2 rank scan on the validation split and what it chose."""
    scan = ", ".join(f"({r['ranks'][0]}, {r['ranks'][1]}) {_pct(r['validation_accuracy'], 2)}"
                     for r in sel["scan"])
    text = (f"Tucker-2 ranks of conv2 chosen on {sel['validation_images']} validation images "
            f"held out of the training images (a CNN trained on the other "
            f"{_int(sel['fit_images'])}, validation accuracy "
            f"{_pct(sel['reference_accuracy'], 2)} float, "
            f"{_pct(sel['reference_int8_validation_accuracy'], 2)} int8 golden; each "
            f"candidate fine-tuned {sel['scan_epochs']} epochs; budget "
            f"{100 * sel['budget']:g} point): {scan}. ")
    if sel["ranks"] is None:
        return text + "No candidate is within the budget: conv2 stays whole."
    text += f"Chosen: ({sel['ranks'][0]}, {sel['ranks'][1]})"
    pipes = sel.get("pipelines", {})
    if pipes:
        text += "; on the CNN that never saw the validation images, " + "; ".join(
            f"{k}: validation {_pct(v['validation_float_accuracy'], 2)} float, "
            f"{_pct(v['validation_int8_golden_accuracy'], 2)} int8 golden, test "
            f"{_pct(v['test_int8_golden_accuracy'], 2)} int8 golden" for k, v in pipes.items())
    return text + ". The table's tucker2-chosen rows train on all training images."

def _tflite_md(rec) -> list[str]:
    out = [f"The committed fully-integer fixtures (`tests/fixtures/tflite`: a 64-32-10 MLP; a "
           f"CNN with depthwise conv, residual add, pools, concatenation, logistic, tanh and "
           f"softmax) imported with `quantize.tflite_import` for each LiteRT kernel path and "
           f"run on the golden model over {_int(rec['vectors'])} int8 vectors per model "
           f"(extremes, zero point, the digits, random codes), and a batch of "
           f"{rec['rtl_batch']} on the systolic {rec['rtl_array'].replace('x', '×')} RTL. "
           f"{_when(rec['measured'], True)}.", "",
           "| model | LiteRT path (op resolver) | vectors | bytes differing, golden | "
           "bytes differing, RTL | RTL cycles per inference |", "|---|---|---|---|---|---|"]
    for r in rec["models"]:
        g, t = r["golden"], r["rtl"]
        out.append(f"| {r['model']} | {r['path']} (`{r['resolver']}`) | {_int(r['vectors'])} | "
                   f"{_int(g['bytes_differ'])} of {_int(g['bytes'])} | {t['bytes_differ']} of "
                   f"{t['bytes']} | {_int(round(t['cycles_per_inference']))} |")
    xnn = [r for r in rec["models"] if "xnnpack" in r]
    if xnn:
        out += ["", "Not claimed: LiteRT's default path hands these ops to XNNPACK, which "
                    "requantizes in float32; against the reference-path import: " + "; ".join(
                        f"{r['model']} {_int(r['xnnpack']['bytes_differ'])} of "
                        f"{_int(r['xnnpack']['bytes'])} bytes differ (at most "
                        f"{r['xnnpack']['max_steps']} steps)" for r in xnn) + "."]
    return out

def _winograd_md(rec) -> list[str]:
    t = rec["vgg16_total"]
    out = [f"F(2×2, 3×3) as 16 GEMMs over channels against the im2col GEMM "
           f"([docs/winograd.md](winograd.md)): VGG-16's 3×3 layers, batch 1, "
           f"{rec['array'].replace('x', '×')} array, cost model. {_when(rec['measured'], True)}.",
           "", "| layer | im2col cycles | Winograd cycles | ratio |", "|---|---|---|---|"]
    for r in rec["vgg16"]:
        out.append(f"| {r['layer']} ({r['c']}→{r['o']}, {r['h']}²) | {_int(r['im2col_cycles'])} "
                   f"| {_int(r['winograd_cycles'])} | {r['cycles_ratio']:.2f}× |")
    out.append(f"| **all** | **{_int(t['im2col_cycles'])}** | **{_int(t['winograd_cycles'])}** "
               f"| **{t['cycles_ratio']:.2f}×** |")
    out += ["", f"Multiplies {t['macs_ratio']:.2f}× fewer; {t['cycles_ratio_where_faster']:.2f}× "
                f"with Winograd only where it is faster; host transforms "
                f"{_int(t['host_adds'])} additions."]
    d = rec["digits_cnn"]
    out += ["", "Accuracy against im2col (golden; int8 steps; calibrated ranges widened by "
                "the headroom):", "", "| layer | headroom | equal | within 1 step | max steps "
                "| cosine |", "|---|---|---|---|---|---|"]
    for r in rec["random"]:
        out.append(f"| random {r['c']}→{r['o']} @{r['hw']}² {r['inputs']} | {r['headroom']} | "
                   f"{_pct(r['equal'])} | {_pct(r['within_1'])} | {r['max_steps']} | "
                   f"{r['cosine']:.5f} |")
    for h, v in d["headrooms"].items():
        for name, r in v["layers"].items():
            out.append(f"| digits CNN {name} | {h} | {_pct(r['equal'])} | {_pct(r['within_1'])} "
                       f"| {r['max_steps']} | {r['cosine']:.5f} |")
    out += ["", "Digits CNN, both convolutions on Winograd: test accuracy " + ", ".join(
        f"{_pct(v['accuracy_winograd'], 2)} at headroom {h}" for h, v in d["headrooms"].items())
        + f" (im2col {_pct(d['accuracy_im2col'], 2)}, {d['test_images']} images)."]
    r = rec.get("rtl")
    if r:
        out += ["", f"RTL {r['array'].replace('x', '×')}, 64→64 at 8×8: 16 Winograd GEMMs "
                    f"{_int(r['winograd_rtl_cycles'])} cycles (model "
                    f"{_int(r['winograd_model_cycles'])}), im2col {_int(r['im2col_rtl_cycles'])} "
                    f"(model {_int(r['im2col_model_cycles'])}), {r['wrong_words']} of "
                    f"{_int(r['words'])} words differ from the golden model."]
    return out


def _sweeps_md(sweeps: dict) -> list[str]:
    out = ["Results files `docs/sweeps/model.jsonl` and `docs/sweeps/synth-*.jsonl`, written "
           "by `nnaccel sweep docs/sweeps/SPEC.toml --results docs/sweeps/SPEC.jsonl` (a rerun "
           "resumes them; `nnaccel sweep --report` redraws the tables and plots beside them); "
           "a synthesis sweep's throughput is its model workloads at the best seed's Fmax. "
           "See [docs/sweep.md](sweep.md).", ""]
    for name, sweep in sweeps.items():
        spec = SWEEPS / f"{name}.toml"
        if not spec.exists():
            continue
        out += [f"### {name}", ""]
        if name == "model":
            ok = sum(r["status"] == "ok" for r in sweep["records"])
            out += [f"`docs/sweeps/model.toml`: {ok} of {len(load_spec(spec).points)} "
                    f"cost-model points (all tables: [sweeps/model.md](sweeps/model.md)).", ""]
            out += model_markdown(sweep["records"])
        else:
            expected = sum(p.measure == "synth" for p in load_spec(spec).points)
            out += summary_markdown(f"docs/sweeps/{name}.toml", sweep["records"],
                                    sweep["context"], expected)
        plots = [n for n in plot_names(sweep["records"], name, sweep["context"])
                 if (SWEEPS / n).exists()]
        if plots:
            out += [""] + [f"![{n[:-4]}](sweeps/{n})" for n in plots]
        out.append("")
    workers = {n: sweeps.get(f"synth-workers-{n}") for n in (1, 2)}
    if all(workers.values()):
        walls = {n: wall_seconds(w["records"]) for n, w in workers.items()}
        tasks = {n: [r["seconds"] for r in w["records"] if r["point"]["measure"] == "synth"]
                 for n, w in workers.items()}
        out += ["### 1 against 2 local workers", "",
                f"`docs/sweeps/synth-workers.toml` ({len(tasks[1])} synthesis tasks) on a "
                f"LocalCluster: 1 worker {walls[1]:.0f} s, 2 workers {walls[2]:.0f} s, a "
                f"ratio of {walls[1] / walls[2]:.2f}. Longest-first list scheduling of each "
                f"run's own task times predicts {makespan(tasks[1], 1):.0f} s and "
                f"{makespan(tasks[2], 2):.0f} s: the estimates for more workers above rest "
                f"on the same model, which holds while tasks are independent and each worker "
                f"has a core of its own.", ""]
    return out[:-1] if out and out[-1] == "" else out


_SECTIONS = (
    ("systolic", "Systolic engine (suite `systolic`)", _systolic_md),
    ("eie", "EIE engine (suite `eie`)", _eie_md),
    ("eie_pes", "EIE PE-count sweep on the RTL (suite `eie_pes`)", _eie_pes_md),
    ("compression", "Compression front end (suite `compression`)", _compression_md),
    ("convs", "CNN conv layers against SCALE-Sim (suite `convs`)", _convs_md),
    ("methods", "Compression methods on the digits MLP (suite `methods`)", _methods_md),
    ("cnn_methods", "Compression methods on the digits CNN (suite `cnn_methods`)",
     _cnn_methods_md),
    ("cnn_budget", "The digits CNN within an accuracy budget (suite `cnn_budget`)",
     _cnn_budget_md),
    ("tflite", "Quantized TFLite models against LiteRT (suite `tflite`)", _tflite_md),
    ("winograd", "Winograd F(2×2, 3×3) against im2col (suite `winograd`)", _winograd_md),
    ("boards", "FPGA synthesis (suite `boards`)", _boards_md),
    ("sweeps", "Design-space sweeps (`nnaccel sweep`, docs/sweeps/)", _sweeps_md),
)


def render(records: dict) -> str:
    """The text of ``docs/results.md`` for ``records`` (as :func:`load` returns them)."""
    out = ["# Measured results", "",
           "Generated by `python -m sim.bench.results` (run by `make bench`) from the "
           "records committed in `docs/results/*.json` and `sim/bench/boards_record.json`; "
           "do not edit by hand. Measured on a shared 2-core machine; wall times depend on "
           "what else ran beside the bench.", "", "## Headline", "", headline(records)]
    for suite, title, section in _SECTIONS:
        out += ["", f"## {title}", ""]
        out += section(records[suite]) if suite in records else [NOT_MEASURED]
    return "\n".join(out) + "\n"


def headline(records: dict) -> str:
    """The README's table of headline results for ``records``."""
    rows = []
    sys_rec = records.get("systolic", {})
    big = [r for r in sys_rec.get("runs", []) if r["array"] == "16x16" and r["m"] == 512
           and r["k"] == 512 and r["n"] == 512]
    if big:
        r = big[0]
        rows.append(("Systolic 16×16, int8 GEMM 512×512×512 on the RTL (loads included)",
                     f"{_pct(r['utilization'])} MAC utilization, {_int(r['cycles'])} cycles, "
                     f"{r['mismatches']} wrong words"))
    else:
        rows.append(("Systolic 16×16, int8 GEMM 512×512×512", "not measured in this record"))
    eie = records.get("eie")
    if eie:
        ratios = [r["vs_eie"] for r in eie["layers"]]
        s = eie["summary"]
        rows.append(("EIE 64 PEs, EIE's nine benchmark layers on the RTL",
                     f"{min(ratios):.2f}–{max(ratios):.2f}× the paper's cycles (mean "
                     f"{sum(ratios) / len(ratios):.2f}×), load balance "
                     f"{_pct(s['mean_load_balance_efficiency'])}, "
                     f"{s['total_mismatches']} wrong words"))
    else:
        rows.append(("EIE 64 PEs, EIE's nine benchmark layers", "not measured in this record"))
    comp = records.get("compression")
    if comp:
        d = comp["digits"]
        for engine in ("eie", "systolic"):
            r = d[f"retrained_{engine}"]
            rows.append((f"Digits MLP 64-300-100-10 compressed for {_ENGINE_NAMES[engine]} "
                         f"({_pct(r['density'])} of weights kept, {r['bits']}-bit)",
                         f"{r['compression_ratio']:.1f}× smaller (engine image "
                         f"{r['image_compression_ratio']:.1f}×), "
                         f"{_pct(r['golden_accuracy'], 2)} accuracy on the golden model "
                         f"(float "
                         f"{_pct(d['float_accuracy'], 2)})"))
    else:
        rows.append(("Digits MLP compression", "not measured in this record"))
    cases = {c["name"]: c for c in records.get("boards", [])}
    for name, what in (("ecp5-systolic-8x8", "ECP5-85F (ULX3S): systolic 8×8"),
                       ("ecp5-eie-8pe", "ECP5-85F (ULX3S): EIE 8 PEs")):
        c = cases.get(name)
        if not c or not c.get("fits"):
            rows.append((what, "not measured in this record"))
            continue
        clock = next(k for k in c["fmax_mhz"] if not k.startswith("$PACKER"))
        r = c["resources"]
        rows.append((what, f"{c['fmax_mhz'][clock]:.1f} MHz (target "
                           f"{c['constraint_mhz'][clock]:.0f}), {_int(r['lut'])} LUT4, "
                           f"{_int(r['ff'])} FF, {r['dsp']} DSP, {r['bram']} block RAM"))
    lines = ["| what | measured |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def _readme_headline() -> str | None:
    text = README.read_text()
    start, end = HEADLINE_MARKERS
    if start not in text or end not in text.split(start, 1)[1]:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def check(records: dict | None = None) -> list[str]:
    """What is stale, each with how to refresh it (empty when both files are current)."""
    records = load() if records is None else records
    problems = []
    if not RESULTS_MD.exists() or RESULTS_MD.read_text() != render(records):
        problems.append("docs/results.md differs from the records: run "
                        "'.venv/bin/python -m sim.bench.results' to regenerate it")
    if _readme_headline() != headline(records):
        start, end = HEADLINE_MARKERS
        problems.append(f"README.md's headline table differs from the records: replace the "
                        f"lines between '{start}' and '{end}' with the output of "
                        f"'.venv/bin/python -m sim.bench.results --headline'")
    return problems


def write() -> Path:
    """Regenerate ``docs/results.md`` from the committed records."""
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(render(load()))
    return RESULTS_MD


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench.results",
                                     description="Render docs/results.md and the README's "
                                                 "headline table from the bench records.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true",
                       help="exit 1 if docs/results.md or the README's table is stale")
    group.add_argument("--headline", action="store_true",
                       help="print the README's headline table")
    args = parser.parse_args(argv)
    if args.headline:
        print(headline(load()))
        return 0
    if args.check:
        problems = check()
        for p in problems:
            print(f"stale: {p}", file=sys.stderr)
        return 1 if problems else 0
    print(f"wrote {write().relative_to(REPO)}")
    for p in check():
        print(f"stale: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
