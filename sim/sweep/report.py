"""Tables and plots of a sweep's results file (rerunnable: ``nnaccel sweep --report``).

Per model/rtl point and board: cycles, MACs per cycle, utilization and, at the board's
clock, latency (cycles / Fmax), throughput (GOP/s, two ops a MAC) and GOP/s per DSP and
per thousand LUTs. The clock is the best Fmax over the seeds synthesized for the same
config and board when the results hold one (``fmax_source = synth``), else the spec's
clock or the board's own target (``target``: no resources, no fit verdict). Synthesis
points get their own table: resources of the best seed, best and mean Fmax over seeds,
whether the design fits.

Files, beside the results unless told: ``STEM.csv``, ``STEM-synth.csv``, ``STEM.md``, and
with matplotlib ``STEM-size.png`` (cycles and utilization against array size or PE
count), ``STEM-pareto-BOARD.png`` (throughput against DSPs and LUTs, Pareto front) and
``STEM-fmax.png`` (Fmax against size).
"""

import csv
import json
import math
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from boards.platforms import BOARDS

from .store import ResultStore

__all__ = ["write_report", "perf_rows", "synth_rows", "largest_fitting", "makespan",
           "wall_seconds", "summary_markdown", "model_markdown", "plot_names", "fit_reason",
           "PERF_COLUMNS", "SYNTH_COLUMNS"]

PERF_COLUMNS = ["engine", "config", "workload", "measure", "status", "cycles", "macs",
                "macs_per_cycle", "utilization", "mismatches", "model_cycles", "board",
                "fmax_mhz", "fmax_source", "lut", "dsp", "bram", "fits", "latency_us",
                "gops", "gops_per_dsp", "gops_per_klut", "error"]
SYNTH_COLUMNS = ["engine", "config", "board", "status", "fits", "seeds", "seeds_fit",
                 "fmax_best_mhz", "fmax_mean_mhz", "lut", "ff", "dsp", "bram", "clock_met",
                 "synth_seconds", "error"]


def _label(engine: str, axes: dict) -> str:
    rest = {k: v for k, v in sorted(axes.items()) if k not in ("rows", "cols", "pes",
                                                              "queue_depth")}
    if engine == "systolic":
        base = f"{axes.get('rows', 8)}x{axes.get('cols', 8)}"
    else:
        base = f"{axes.get('pes', 64)} PEs q{axes.get('queue_depth', 8)}"
    return " ".join([base, *(f"{k}={v}" for k, v in rest.items())])


def _size(engine: str, config: dict) -> int:
    return config["rows"] * config["cols"] if engine == "systolic" else config["pes"]


def _config_id(engine: str, config: dict) -> str:
    return json.dumps([engine, config], sort_keys=True)


def synth_rows(records) -> list[dict]:
    """One row per synthesized config and board, over its seeds."""
    groups = defaultdict(list)
    for r in records:
        p = r["point"]
        if p["measure"] == "synth":
            groups[(p["engine"], json.dumps(p["axes"], sort_keys=True), json.dumps(p["fit"]),
                    p["board"], p["clock_mhz"])].append(r)
    rows = []
    for (engine, axes, _, board, _), recs in groups.items():
        ok = [r for r in recs if r["status"] == "ok"]
        placed = [r["result"] for r in ok if r["result"].get("fits")]
        row = {"engine": engine, "config": _label(engine, json.loads(axes)), "board": board,
               "status": "ok" if ok else "failed",
               "seeds": " ".join(str(r["point"]["seed"]) for r in recs),
               "error": "; ".join(sorted({r["error"] for r in recs if r.get("error")})),
               "_config": ok[0]["result"]["config"] if ok else None}
        if ok:
            row["fits"] = bool(placed) or not all(r["result"].get("fits") is False for r in ok)
            row["seeds_fit"] = " ".join(str(r["point"]["seed"]) for r in ok
                                        if r["result"].get("fits"))
            if not placed:
                row["error"] = row["error"] or ok[0]["result"].get("reason", "")
        # Why each seed that did not place failed: its error, or the does-not-fit reason.
        row["_why_not"] = {r["point"]["seed"]:
                           r.get("error") or (r["result"] or {}).get("reason", "")
                           for r in recs if r["status"] != "ok" or not r["result"].get("fits")}
        if placed:
            fmax = [x["fmax_mhz"] for x in placed if x.get("fmax_mhz")]
            best = max(placed, key=lambda x: x.get("fmax_mhz") or 0)
            res = best.get("resources", {})
            row.update(fmax_best_mhz=max(fmax) if fmax else None,
                       fmax_mean_mhz=sum(fmax) / len(fmax) if fmax else None,
                       lut=res.get("lut"), ff=res.get("ff"), dsp=res.get("dsp"),
                       bram=res.get("bram"), clock_met=best.get("clock_met"),
                       synth_seconds=sum(x.get("synth_seconds", 0) for x in placed))
        rows.append(row)
    return rows


def perf_rows(records, context: dict | None = None) -> list[dict]:
    """One row per model/rtl point and board (synthesized ones, then the spec's)."""
    context = context or {}
    synth = defaultdict(dict)
    for s in synth_rows(records):
        if s["_config"] is not None:
            synth[_config_id(s["engine"], s["_config"])][s["board"]] = s
    clocks = context.get("clock_mhz") or []
    rows = []
    for r in records:
        p = r["point"]
        if p["measure"] == "synth":
            continue
        res = r.get("result") or {}
        base = {"engine": p["engine"], "config": _label(p["engine"], p["axes"]),
                "workload": p["workload"], "measure": p["measure"], "status": r["status"],
                "error": r.get("error") or "", "_size": None}
        if r["status"] != "ok":
            rows.append(base)
            continue
        base.update({k: res.get(k) for k in ("cycles", "macs", "macs_per_cycle",
                                              "utilization", "mismatches", "model_cycles")})
        base["_size"] = _size(p["engine"], res["config"])
        built = synth.get(_config_id(p["engine"], res["config"]), {})
        boards = list(built) + [b for b in context.get("boards", []) if b not in built]
        if not boards:
            rows.append({**base, **({"board": "-", "fmax_mhz": clocks[0],
                                     "fmax_source": "target"} if clocks else {})})
        for b in boards:
            row = {**base, "board": b}
            if b in built:
                s = built[b]
                row.update(fmax_mhz=s.get("fmax_best_mhz"), fmax_source="synth",
                           lut=s.get("lut"), dsp=s.get("dsp"), bram=s.get("bram"),
                           fits=s.get("fits"))
            else:
                row.update(fmax_mhz=clocks[0] if clocks else BOARDS[b].clock_mhz,
                           fmax_source="target")
            rows.append(row)
    for row in rows:
        _derive(row)
    return rows


def largest_fitting(records, context: dict | None = None) -> list[dict]:
    """Per board and engine, the largest synthesized config that fits (array size or PE
    count), with its best-seed row of :func:`synth_rows` and its :func:`perf_rows` on that
    board at that Fmax (one per workload); the largest config that did not fit beside it."""
    synth = [s for s in synth_rows(records) if s["_config"] is not None]
    perf = perf_rows(records, context)
    out = []
    for board, engine in sorted({(s["board"], s["engine"]) for s in synth}):
        mine = [s for s in synth if (s["board"], s["engine"]) == (board, engine)]
        fits = [s for s in mine if s.get("fits")]
        best = max(fits, key=lambda s: _size(engine, s["_config"])) if fits else None
        over = [s for s in mine if s.get("fits") is False
                and (best is None or _size(engine, s["_config"]) > _size(engine, best["_config"]))]
        first_over = min(over, key=lambda s: _size(engine, s["_config"])) if over else None
        runs = [] if best is None else [
            r for r in perf if r.get("board") == board and r["engine"] == engine
            and r["config"] == best["config"] and r.get("fmax_source") == "synth"]
        out.append({"board": board, "engine": engine, "largest": best, "perf": runs,
                    "next_too_large": first_over})
    return out


def makespan(seconds, workers: int) -> float:
    """Wall time of tasks taking ``seconds`` on ``workers`` identical workers, longest
    first onto the least loaded worker (list scheduling, as a cluster hands out tasks)."""
    loads = [0.0] * max(1, workers)
    for t in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += t
    return max(loads)


def wall_seconds(records) -> float | None:
    """First task's start to last task's end over point records (each record's ``finished``
    time less its ``seconds``), to the second."""
    spans = []
    for r in records:
        if r.get("finished") and r.get("seconds") is not None:
            end = datetime.fromisoformat(r["finished"]).timestamp()
            spans.append((end - r["seconds"], end))
    if not spans:
        return None
    return max(e for _, e in spans) - min(s for s, _ in spans)


def _derive(row: dict) -> None:
    f, cycles = row.get("fmax_mhz"), row.get("cycles")
    if not f or not cycles or row.get("fits") is False:
        return
    row["latency_us"] = cycles / f
    row["gops"] = 2 * row["macs"] / row["latency_us"] / 1e3
    if row.get("dsp"):
        row["gops_per_dsp"] = row["gops"] / row["dsp"]
    if row.get("lut"):
        row["gops_per_klut"] = row["gops"] / (row["lut"] / 1000)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0 or 0.01 <= abs(v) < 1e6:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
        return f"{v:.3e}"
    return str(v)


def _markdown(rows, columns) -> str:
    used = [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]
    lines = ["| " + " | ".join(used) + " |", "|" + "---|" * len(used)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "/") for c in used) + " |")
    return "\n".join(lines)


def _csv(path: Path, rows, columns) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_report(results, out_dir=None, plots: bool = True) -> dict:
    """Write the tables (and plots) of the results file ``results``; return the paths
    written and counts (``{"files": [...], "points": n, "failed": n, "note": str}``)."""
    results = Path(results)
    store = ResultStore(results)
    if not results.exists():
        raise OSError(f"{results}: no such results file")
    records = store.latest()
    if not records:
        raise ValueError(f"{results}: no point records (is it a sweep's results file?)")
    out_dir = Path(out_dir) if out_dir else results.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = results.stem
    perf = perf_rows(records, store.context())
    synth = synth_rows(records)
    files = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    _csv(files[0], perf, PERF_COLUMNS)
    if synth:
        files.append(out_dir / f"{stem}-synth.csv")
        _csv(files[-1], synth, SYNTH_COLUMNS)
    failed = sum(r["status"] != "ok" for r in records)
    md = [f"# Sweep results: {results.name}", "",
          f"{len(records)} points, {failed} failed. Generated by `nnaccel sweep --report "
          f"{results}`.", ""]
    if perf:
        md += ["## Performance", "", _markdown(perf, PERF_COLUMNS), ""]
    if synth:
        md += ["## Synthesis", "", _markdown(synth, SYNTH_COLUMNS), ""]
    files[1].write_text("\n".join(md))
    note = ""
    if plots:
        try:
            import matplotlib
        except ModuleNotFoundError:
            note = "matplotlib is not installed: tables only"
        else:
            matplotlib.use("Agg")
            files += _plots(out_dir, stem, perf, synth)
    return {"files": [str(f) for f in files], "points": len(records), "failed": failed,
            "note": note}


def _plot_plan(perf, synth) -> list[tuple[str, object, tuple]]:
    """The plots a report draws: ``(file suffix, drawing function, its data)`` each."""
    plan = []
    engines = sorted({r["engine"] for r in perf if r.get("cycles")})
    if engines:
        plan.append(("size", _draw_size, (perf, engines)))
    for board in sorted({r["board"] for r in perf if r.get("fmax_source") == "synth"}):
        rows = [r for r in perf if r.get("board") == board and r.get("gops")
                and r.get("fmax_source") == "synth"]
        if rows:
            plan.append((f"pareto-{board}", _draw_pareto, (board, rows)))
    placed = [s for s in synth if s.get("fmax_best_mhz")]
    if placed:
        plan.append(("fmax", _draw_fmax, (placed,)))
    return plan


def _plots(out_dir: Path, stem: str, perf, synth) -> list[Path]:
    import matplotlib.pyplot as plt
    written = []
    for suffix, draw, data in _plot_plan(perf, synth):
        fig = draw(plt, *data)
        fig.tight_layout()
        written.append(out_dir / f"{stem}-{suffix}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def _draw_size(plt, perf, engines):
    fig, axes = plt.subplots(len(engines), 2, figsize=(11, 4 * len(engines)), squeeze=False)
    for (ax_c, ax_u), engine in zip(axes, engines, strict=True):
        _size_plot(ax_c, ax_u, engine, [r for r in perf if r["engine"] == engine
                                        and r.get("cycles")])
    return fig


def _draw_pareto(plt, board, rows):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, name in ((axes[0], "dsp", "DSPs"), (axes[1], "lut", "LUTs")):
        _pareto(ax, rows, key, name)
    axes[0].set_ylabel("GOP/s (geometric mean over the workloads)")
    fig.suptitle(f"{board}: throughput against resources (best seed's Fmax)")
    return fig


def _draw_fmax(plt, placed):
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = defaultdict(list)
    for s in placed:
        groups[(s["engine"], s["board"])].append(
            (_size(s["engine"], s["_config"]), s["fmax_best_mhz"], s["fmax_mean_mhz"]))
    for (engine, board), pts in sorted(groups.items()):
        pts.sort()
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-",
                        label=f"{engine} on {board}, best seed")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], "x--", c=line.get_color(),
                label=f"{engine} on {board}, mean")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MACs per cycle (systolic rows x cols) or EIE PEs")
    ax.set_ylabel("Fmax (MHz)")
    ax.legend(fontsize=7)
    return fig


def _size_plot(ax_c, ax_u, engine: str, rows) -> None:
    # One row per point: the board crossing repeats them.
    seen, points = set(), []
    for r in rows:
        k = (r["config"], r["workload"], r["measure"])
        if k not in seen:
            seen.add(k)
            points.append(r)
    best = defaultdict(dict)
    for r in points:
        cur = best[r["workload"]].get(r["_size"])
        best[r["workload"]][r["_size"]] = min(cur, r["cycles"]) if cur else r["cycles"]
    for workload, by_size in sorted(best.items()):
        sizes = sorted(by_size)
        ax_c.plot(sizes, [by_size[s] for s in sizes], "o-", ms=3, label=workload)
    variants = defaultdict(lambda: defaultdict(list))
    for r in points:
        variant = " ".join(r["config"].split(" ")[2:] if engine == "eie"
                           else r["config"].split(" ")[1:]) or "all"
        variants[variant][r["_size"]].append(r["utilization"])
    for variant, by_size in sorted(variants.items(), key=lambda kv: _natural(kv[0])):
        sizes = sorted(by_size)
        ax_u.plot(sizes, [100 * sum(by_size[s]) / len(by_size[s]) for s in sizes], "o-",
                  ms=3, label=variant)
    unit = "MACs (rows x cols)" if engine == "systolic" else "PEs"
    for ax in (ax_c, ax_u):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{engine}: {unit}")
    ax_c.set_yscale("log")
    ax_c.set_ylabel("cycles (best config of each size)")
    ax_u.set_ylabel("utilization % (mean over workloads)")
    ax_u.set_ylim(0, 105)
    ax_c.legend(fontsize=6, ncol=2)
    ax_u.legend(fontsize=7)


def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in text.replace("q", " ").split()]


def _pareto(ax, rows, key: str, name: str) -> None:
    by_config = defaultdict(list)
    for r in rows:
        if r.get(key):
            by_config[(r["engine"], r["config"], r[key])].append(r["gops"])
    pts = [(res, math.exp(sum(map(math.log, g)) / len(g)), engine, config)
           for (engine, config, res), g in by_config.items()]
    for engine in sorted({p[2] for p in pts}):
        mine = [p for p in pts if p[2] == engine]
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], label=engine, s=18)
        for p in mine:
            ax.annotate(p[3], (p[0], p[1]), fontsize=6)
    front, top = [], -1.0
    for p in sorted(pts, key=lambda p: (p[0], -p[1])):
        if p[1] > top:
            front.append(p)
            top = p[1]
    ax.step([p[0] for p in front], [p[1] for p in front], "k--", where="post", lw=0.8,
            label="Pareto front")
    ax.set_xlabel(name)
    ax.legend(fontsize=7)


def summary_markdown(spec: str, records, context: dict | None = None,
                     expected: int | None = None) -> list[str]:
    """Markdown lines for one synthesis sweep in ``docs/results.md``: per config its
    resources and Fmax over the seeds run, the largest config per engine that fits with its
    throughput, and the measured task times with what they predict on more workers.
    ``expected``: the spec's synthesis task count (to say how much has run)."""
    synth_recs = [r for r in records if r["point"]["measure"] == "synth"]
    done = [r for r in synth_recs if r["status"] == "ok"]
    out = [f"`{spec}`: {len(done)}"
           + (f" of {expected}" if expected is not None else "")
           + " synthesis tasks finished"
           + (f", {len(synth_recs) - len(done)} failed" if len(synth_recs) > len(done) else "")
           + ". Fmax: best and mean over the seeds run; resources of the best seed.", "",
           "| engine | config | seeds | LUT | FF | DSP | BRAM | Fmax best MHz | Fmax mean MHz "
           "| fits |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = synth_rows(records)
    shared = {}                      # axes every config of an engine has: said once, above
    for s in rows:
        words = {w for w in s["config"].split()[1:] if "=" in w}
        shared[s["engine"]] = shared.get(s["engine"], words) & words

    def name(engine, config):
        return " ".join(w for w in config.split() if w not in shared.get(engine, ()))

    for engine, words in sorted(shared.items()):
        if words:
            out.insert(1, f"Every {engine} config: {', '.join(sorted(words))}.")
    for s in sorted(rows, key=lambda s: (s["engine"], s["_config"] is None,
                                         _size(s["engine"], s["_config"] or {"pes": 0}),
                                         s["config"])):
        fits = {True: "yes", False: "no"}.get(s.get("fits"), s["status"])
        if s.get("fits") is True and s["_why_not"]:   # placed by some seeds, not all
            why = defaultdict(list)
            for seed, error in s["_why_not"].items():
                why[fit_reason(error) if error else ""].append(str(seed))
            fits += f" (seed {s['seeds_fit']}; " + "; ".join(
                f"not seed {' '.join(seeds)}" + (f": {reason}" if reason else "")
                for reason, seeds in why.items()) + ")"
        if s.get("fits") is not True and s.get("error"):
            fits += f": {fit_reason(s['error'])}"
        cells = [s["engine"], name(s["engine"], s["config"]), s["seeds"],
                 *(_fmt(s.get(k)) for k in ("lut", "ff", "dsp", "bram", "fmax_best_mhz",
                                            "fmax_mean_mhz")), fits]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    so_far = " so far" if expected is not None and len(synth_recs) < expected else ""
    for f in largest_fitting(records, context):
        best = f["largest"]
        if best is None:
            out.append(f"- {f['board']}, {f['engine']}: no config synthesized{so_far} fits.")
            continue
        runs = "; ".join(f"{r['workload']} {r['gops']:.2f} GOP/s "
                         f"({r['utilization'] * 100:.1f} % of peak)"
                         for r in f["perf"] if r.get("gops"))
        nxt = f["next_too_large"]
        out.append(f"- {f['board']}, {f['engine']}: the largest that fits{so_far} is "
                   f"**{name(f['engine'], best['config'])}**"
                   f" at {best['fmax_best_mhz']:.1f} MHz"
                   + (f": {runs}" if runs else "")
                   + (f". {name(f['engine'], nxt['config'])} does not fit" if nxt else "")
                   + ".")
    seconds = [r["seconds"] for r in done if r.get("seconds")]
    if seconds:
        total = sum(seconds)
        est = ", ".join(f"{n} worker{'s' if n > 1 else ''} {makespan(seconds, n) / 3600:.2f} h"
                        for n in (1, 2, 32))
        out += ["", f"Tasks finished: {len(seconds)}, {total / 3600:.2f} h of task time (mean "
                    f"{total / len(seconds) / 60:.1f} min, longest {max(seconds) / 60:.1f} "
                    f"min). Longest-first list scheduling of these measured times: {est} "
                    f"(32 workers are bounded by the longest task)."]
    return out


def fit_reason(error: str) -> str:
    """The short reason of a failed synthesis for a table cell: the resources of a
    does-not-fit error ("DSP (MULT18X18D) 193/156"), how far a timed-out router got, or the
    error itself, each without the config, advice and log path around it."""
    m = re.search(r"does not fit the [^:]+: (.*?)(?: — .*)?$", error)
    if m:
        return m.group(1)
    m = re.search(r"was not placed and routed on the \S+ (within [^:]+: .*?)(?: — .*)?$", error)
    if m:
        return f"not routed {m.group(1)}"
    return error.split("; log: ")[0].split(" — ")[0].replace("|", "/")


def plot_names(records, stem: str, context: dict | None = None) -> list[str]:
    """File names of the plots :func:`write_report` draws for ``records`` of results file
    ``STEM.jsonl``, without drawing them."""
    return [f"{stem}-{suffix}.png" for suffix, _, _ in
            _plot_plan(perf_rows(records, context), synth_rows(records))]


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.1f} %"


def model_markdown(records) -> list[str]:
    """Markdown lines summing up a cost-model sweep: systolic utilization per array and
    workload; EIE utilization per PE count and queue depth over the workloads (their mean),
    with the cycles of all workloads at the deepest queue and their work bound (the
    busiest PE's MACs, each layer)."""
    ok = [r for r in records if r["status"] == "ok" and r["point"]["measure"] == "model"]
    out = []
    sys_rows = [r for r in ok if r["point"]["engine"] == "systolic"]
    if sys_rows:
        loads = list(dict.fromkeys(r["point"]["workload"] for r in sys_rows))
        util = {(_label("systolic", r["point"]["axes"]), r["point"]["workload"]):
                r["result"]["utilization"] for r in sys_rows}
        size = {_label("systolic", r["point"]["axes"]): _size("systolic", r["result"]["config"])
                for r in sys_rows}
        arrays = sorted(size, key=lambda a: (size[a], a))
        out += ["Systolic, utilization (useful MACs / (rows × cols × cycles); loads, fill "
                "and drain included):", "",
                "| array | " + " | ".join(loads) + " |", "|---|" + "---|" * len(loads)]
        out += ["| " + a + " | " + " | ".join(_pct(util.get((a, w))) for w in loads) + " |"
                for a in arrays]
        out.append("")
    eie = [r for r in ok if r["point"]["engine"] == "eie"]
    if eie:
        by = defaultdict(list)
        for r in eie:
            by[(r["point"]["axes"]["pes"], r["point"]["axes"].get("queue_depth"))].append(r)
        depths = sorted({q for _, q in by}, key=lambda q: (q is None, q))
        deep = depths[-1]
        loads = {r["point"]["workload"] for r in eie}
        out += [f"EIE, mean utilization (useful MACs / (PEs × cycles)) over "
                f"{len(loads)} workload{'s' * (len(loads) > 1)}:", "",
                "| PEs | " + " | ".join(f"q={q}" for q in depths)
                + f" | cycles, all workloads, q={deep} | work bound |",
                "|---|" + "---|" * (len(depths) + 2)]
        for pes in sorted({p for p, _ in by}):
            cells = []
            for q in depths:
                rs = by.get((pes, q), [])
                cells.append(_pct(sum(r["result"]["utilization"] for r in rs) / len(rs))
                             if rs else "")
            rs = by.get((pes, deep), [])
            work = [r["result"].get("work_cycles") for r in rs]
            cells += [f"{sum(r['result']['cycles'] for r in rs):,}" if rs else "",
                      f"{sum(work):,}" if rs and None not in work else ""]
            out.append(f"| {pes} | " + " | ".join(cells) + " |")
        out.append("")
    return out[:-1] if out and out[-1] == "" else out
