"""Systolic engine figures: utilization, scaling, model accuracy, Verilator speed."""

import json
import os
import time

import numpy as np

from hw.systolic import PRESETS
from sim.systolic import model_cycles, random_job, rtl_build, run_jobs

__all__ = ["main"]


def _run(cfg, m, k, n, seed=0):
    job = random_job(np.random.default_rng(seed), m, k, n)
    start = time.monotonic()
    run = run_jobs(cfg, [job])[0]
    wall = time.monotonic() - start
    mismatches = int((run.output != job.golden(cfg.rounding)).sum())
    macs = m * k * n
    return {
        "array": f"{cfg.rows}x{cfg.cols}", "m": m, "k": k, "n": n, "cycles": run.cycles,
        "useful_macs": macs, "utilization": macs / (cfg.macs * run.cycles),
        "mismatches": mismatches, "model_cycles": model_cycles(cfg, m, k, n),
        "counters": run.counters, "wall_seconds": wall,
        "sim_cycles_per_second": run.cycles / wall,
    }


def main(out_dir):
    figures = {"builds": {}, "runs": []}
    cases = [("16x16", 512, 512, 512)]
    cases += [("16x16", m, 512, 512) for m in (1, 8, 32, 128)]
    cases += [("16x16", 100, 300, 70), ("8x8", 128, 128, 128), ("8x8", 37, 100, 45),
              ("32x32", 512, 512, 512)]
    # NNACCEL_SYSTOLIC_ARRAYS=8x8,16x16 runs the cases of some arrays only.
    chosen = os.environ.get("NNACCEL_SYSTOLIC_ARRAYS", "")
    if chosen:
        unknown = set(chosen.split(",")) - {c[0] for c in cases}
        if unknown:
            raise ValueError(f"NNACCEL_SYSTOLIC_ARRAYS: unknown {sorted(unknown)}; use "
                             f"{sorted({c[0] for c in cases})}")
        cases = [c for c in cases if c[0] in chosen.split(",")]
    for name, m, k, n in cases:
        if name not in figures["builds"]:
            build = rtl_build(PRESETS[name])
            figures["builds"][name] = {"build_seconds": round(build.build_seconds, 1),
                                       "cached": build.cached}
            print(f"  {name}: Verilator build {build.build_seconds:.0f} s"
                  f"{' (cached)' if build.cached else ''}", flush=True)
        r = _run(PRESETS[name], m, k, n)
        figures["runs"].append(r)
        print(f"  {name} {m}x{k}x{n}: {r['cycles']} cycles, utilization "
              f"{100 * r['utilization']:.1f} %, {r['mismatches']} mismatches, "
              f"{r['sim_cycles_per_second']:.0f} cycles/s", flush=True)
        (out_dir / "systolic.json").write_text(json.dumps(figures, indent=2))
    by = {(r["array"], r["m"], r["k"], r["n"]): r for r in figures["runs"]}
    if ("16x16", 512, 512, 512) not in by or ("32x32", 512, 512, 512) not in by:
        return {"runs": len(figures["runs"])}
    u16 = by[("16x16", 512, 512, 512)]
    u32 = by[("32x32", 512, 512, 512)]
    figures["headline"] = {
        "utilization_16x16_512cubed": u16["utilization"],
        "speedup_32x32_over_16x16": u16["cycles"] / u32["cycles"],
        "model_error_max": max(abs(r["model_cycles"] - r["cycles"]) / r["cycles"]
                               for r in figures["runs"]),
        "tpu_reference": {"best_production_utilization": 0.782, "mean": 0.23},
    }
    (out_dir / "systolic.json").write_text(json.dumps(figures, indent=2))
    _plot(figures, out_dir)
    return figures["headline"]


def _plot(figures, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [r for r in figures["runs"] if r["array"] == "16x16" and r["k"] == 512
            and r["n"] == 512]
    runs.sort(key=lambda r: r["m"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx([r["m"] for r in runs], [100 * r["utilization"] for r in runs], "o-",
                label="nnaccel 16x16 (RTL, loads included)")
    ax.axhline(78.2, ls="--", c="gray", label="TPU v1 best production net")
    ax.axhline(23, ls=":", c="gray", label="TPU v1 mean")
    ax.set_xlabel("M (batch rows), K = N = 512")
    ax.set_ylabel("utilization %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "systolic_utilization.png", dpi=120)
    plt.close(fig)
