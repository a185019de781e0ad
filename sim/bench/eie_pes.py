"""Benchmark suite ``eie_pes``: EIE's PE-count sweep (its Fig. 11) on the RTL engine.

The nine benchmark layers of suite ``eie`` run on engines of 1, 2, 4, ..., 64 PEs, queue
depth 8, one Verilator build per PE count (memories sized for the largest layer), every
output word checked against the golden model. Reports cycles, speed-up over one PE and
load-balance efficiency per layer and PE count, next to the work bound from the images.
The 64-PE point reuses suite ``eie``'s build (64-deep queues capped at 8, which behaves
as an 8-deep queue).

``NNACCEL_EIE_PES=1,2,4`` runs some of the PE counts only.
"""

import json
import os
import time

import numpy as np

from sim.bench.eie import (
    BENCH_CONFIG,
    EIE_LAYERS,
    PE_COUNTS,
    _layers,
    _prepare,
    _row,
    _run,
    _sweep_config,
)

__all__ = ["main"]


def _pe_counts() -> list[int]:
    chosen = os.environ.get("NNACCEL_EIE_PES", "")
    if not chosen:
        return list(PE_COUNTS)
    try:
        counts = sorted({int(x) for x in chosen.split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"NNACCEL_EIE_PES={chosen!r}: give PE counts like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"NNACCEL_EIE_PES={chosen!r}: give PE counts of at least 1")
    return counts


def main(out_dir) -> dict:
    names = list(EIE_LAYERS)
    path = out_dir / "eie_pes.json"
    result = {"pe_counts": [], "runs": {}}
    layers = _layers(BENCH_CONFIG)          # the same matrices at every PE count
    for pes in _pe_counts():
        start = time.monotonic()
        if pes == BENCH_CONFIG.pes:
            config, limit = BENCH_CONFIG, 8
        else:
            config, limit = _sweep_config(pes, layers, names), None
        prepared = _prepare(config, layers)
        runs = _run(config, prepared, names, queue_limit=limit)
        rows = {n: _row(n, prepared[n], runs[n]) for n in names}
        result["pe_counts"].append(pes)
        result["runs"][str(pes)] = {
            "config": {"pes": config.pes, "queue_depth": limit or config.queue_depth,
                       "spmat_depth": config.spmat_depth, "ptr_depth": config.ptr_depth,
                       "act_depth": config.act_depth},
            "build_seconds": round(runs[names[0]]["build_seconds"], 1),
            "wall_seconds": round(time.monotonic() - start, 1),
            "layers": rows,
        }
        print(f"[eie_pes] {pes} PEs: " + ", ".join(
            f"{n} {rows[n]['cycles']} ({rows[n]['load_balance_efficiency']:.3f})"
            for n in names), flush=True)
        path.write_text(json.dumps(result, indent=1))
    counts = result["pe_counts"]
    one = str(counts[0])
    speedup = {n: {str(p): round(result["runs"][one]["layers"][n]["cycles"] * counts[0]
                                 / result["runs"][str(p)]["layers"][n]["cycles"], 3)
                   for p in counts} for n in names}
    result["speedup_over_first"] = speedup
    result["summary"] = {
        "pe_counts": counts,
        "total_mismatches": sum(r["mismatches"] for run in result["runs"].values()
                                for r in run["layers"].values()),
        "mean_speedup_at_max": round(float(np.mean(
            [speedup[n][str(counts[-1])] for n in names])), 2),
        "mean_load_balance_efficiency": {
            str(p): round(float(np.mean([result["runs"][str(p)]["layers"][n]
                                         ["load_balance_efficiency"] for n in names])), 4)
            for p in counts},
    }
    path.write_text(json.dumps(result, indent=1))
    _plot(out_dir, result)
    print(json.dumps(result["summary"], indent=1), flush=True)
    return result["summary"]


def _plot(out_dir, result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    counts = result["pe_counts"]
    if len(counts) < 2:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n, per in result["speedup_over_first"].items():
        axes[0].plot(counts, [per[str(p)] for p in counts], marker="o", label=n)
    axes[0].plot(counts, [p / counts[0] for p in counts], "k:", label="linear")
    axes[0].set_xscale("log", base=2)
    axes[0].set_yscale("log", base=2)
    axes[0].set_xlabel("PEs")
    first = f"{counts[0]} PE" + ("s" if counts[0] > 1 else "")
    axes[0].set_title(f"speed-up over {first}, RTL cycles (cf. EIE Fig. 11)", fontsize=9)
    axes[0].legend(fontsize=7)
    for n in EIE_LAYERS:
        axes[1].plot(counts, [result["runs"][str(p)]["layers"][n]["load_balance_efficiency"]
                              for p in counts], marker="o", label=n)
    axes[1].set_xscale("log", base=2)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("PEs")
    axes[1].set_title("load-balance efficiency (busiest PE), queue depth 8", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "eie_pe_sweep_rtl.png", dpi=120)
    plt.close(fig)
