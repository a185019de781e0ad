"""``python -m sim.soak``: a million random vectors per engine on the RTL, every word checked.

Each engine's vectors are split over its configs (:data:`sim.soak_systolic.SHARES`,
:data:`sim.soak_eie.SHARES`) and into batches; a batch is one Verilator simulation of the
engine's cocotb testbench with random stalls on every stream, and its seed (derived from
``--seed``, the engine and the batch number) fixes everything in it, so
``--batch B`` with the same ``--vectors`` and ``--seed`` replays batch ``B`` exactly.
The batches of both engines share a pool of ``--jobs`` worker processes (default 2),
the systolic engine's (the shorter soak) first.

Progress goes to stderr after every batch; the summary (vectors, output words compared,
mismatching words, simulated cycles, wall seconds, cycles/s per engine) to stdout and as
JSON to ``build/soak/soak.json`` (rewritten after every batch, so a stopped soak leaves
its figures). ``--max-minutes`` starts no batch after that time; the report then says
how many vectors ran (``complete``: false). The exit status is 1 if any word mismatched, a
counter disagreed or a simulation failed; the first mismatch is printed with its batch,
seed and indices.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from sim import soak_eie, soak_systolic
from sim.rtl import BUILD_ROOT, REPO

__all__ = ["ENGINES", "plan", "run_one", "soak", "main"]

#: Engine → (configs, shares of the vectors, vectors per batch, batch runner).
ENGINES = {
    "systolic": (soak_systolic.CONFIGS, soak_systolic.SHARES, soak_systolic.BATCH_VECTORS,
                 soak_systolic.run_batch),
    "eie": (soak_eie.CONFIGS, soak_eie.SHARES, soak_eie.BATCH_VECTORS, soak_eie.run_batch),
}
SOAK_DIR = BUILD_ROOT / "soak"


def plan(engine: str, vectors: int, seed: int) -> list[dict]:
    """The batches of a soak: number, config name, vector count and seed, configs taking
    turns so that every config is covered from the start."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {', '.join(ENGINES)} or both")
    if vectors < 1:
        raise ValueError(f"--vectors {vectors}: use at least 1")
    configs, shares, per_batch, _ = ENGINES[engine]
    counts = {name: int(vectors * share) for name, share in shares.items()}
    counts[next(iter(counts))] += vectors - sum(counts.values())
    queues = {name: [min(per_batch, count - start) for start in range(0, count, per_batch)]
              for name, count in counts.items()}
    batches = []
    while any(queues.values()):
        for name, queue in queues.items():
            if queue:
                number = len(batches)
                state = np.random.SeedSequence([seed, list(ENGINES).index(engine), number])
                batches.append({"batch": number, "config": name, "vectors": queue.pop(0),
                                "seed": int(state.generate_state(1)[0])})
    return batches


def _replay(engine: str, vectors: int, seed: int, batch: dict) -> str:
    return (f"python -m sim.soak --engine {engine} --vectors {vectors} --seed {seed} "
            f"--batch {batch['batch']}")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_one(engine: str, batch: dict) -> dict:
    """Run one batch (in a worker process); its result with wall and CPU seconds (the
    simulator's included). A failed or hung simulation comes back as a failure."""
    configs, _, _, run_batch = ENGINES[engine]
    wall, cpu = time.monotonic(), _cpu()
    try:
        got = run_batch(configs[batch["config"]], batch["vectors"], batch["seed"],
                        SOAK_DIR / "mismatch" / engine)
    except Exception as e:                          # recorded as a failure, never lost
        got = {"vectors": 0, "words": 0, "mismatches": 0, "cycles": 0, "first": None,
               "failures": [f"batch failed: {type(e).__name__}: {e}"]}
    got.update(wall_seconds=time.monotonic() - wall, cpu_seconds=_cpu() - cpu)
    return got


def _empty(engine: str, batches: list[dict]) -> dict:
    zero = {"vectors": 0, "words": 0, "mismatches": 0, "cycles": 0, "cpu_seconds": 0.0}
    return {"engine": engine, **zero, "wall_seconds": 0.0, "failures": [],
            "first_mismatch": None,
            "batches": len(batches), "batches_done": 0, "builds": [],
            "target_vectors": sum(b["vectors"] for b in batches),
            "configs": {name: dict(zero) for name in ENGINES[engine][0]
                        if any(b["config"] == name for b in batches)}}


def _add(summary: dict, batch: dict, got: dict, replay: str) -> None:
    name = batch["config"]
    if got["vectors"] != batch["vectors"]:
        summary["failures"].append(f"batch {batch['batch']} ({name}): compared "
                                   f"{got['vectors']} vectors of {batch['vectors']}; "
                                   f"replay: {replay}")
    for key in ("vectors", "words", "mismatches", "cycles", "cpu_seconds"):
        summary[key] += got[key]
        summary["configs"][name][key] += got[key]
    summary["failures"] += [f"batch {batch['batch']} ({name}): {f}; replay: {replay}"
                            for f in got["failures"]]
    if got["first"] is not None and summary["first_mismatch"] is None:
        summary["first_mismatch"] = {"batch": batch["batch"], "config": name,
                                     "batch_seed": batch["seed"], "replay": replay,
                                     **got["first"]}
    summary["batches_done"] += 1
    if got.get("build") and got["build"] not in summary["builds"]:
        summary["builds"].append(got["build"])        # the Verilator models that ran


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _report(summaries: dict, seed: int, vectors: int, only, jobs: int, wall: float,
            stopped: bool) -> dict:
    for s in summaries.values():
        wall_e, cpu = s["wall_seconds"], s["cpu_seconds"]
        s.update(cycles_per_second=round(s["cycles"] / wall_e) if wall_e else 0,
                 cycles_per_cpu_second=round(s["cycles"] / cpu) if cpu else 0,
                 vectors_per_second=round(s["vectors"] / wall_e, 1) if wall_e else 0,
                 complete=s["vectors"] == s["target_vectors"],
                 ok=not s["mismatches"] and not s["failures"])
    return {"seed": seed, "vectors_per_engine": vectors, "batch": only, "jobs": jobs,
            "commit": _commit(), "wall_seconds": round(wall, 1), "stopped_by_time_limit": stopped,
            "complete": all(s["complete"] for s in summaries.values()),
            "ok": all(s["ok"] for s in summaries.values()), "engines": summaries}


def soak(engines: list[str], vectors: int, seed: int = 1,
         only: int | tuple[int, int] | None = None,
         jobs: int = 2, max_minutes: float | None = None, json_path: Path | None = None) -> dict:
    """Soak ``engines``: every batch of each (or only batch ``only``, or the batches
    ``only[0]`` to ``only[1]``: a replay, or the rest of a stopped soak) on a pool of ``jobs``
    worker processes; return the report (also written to ``json_path`` after every batch).

    With ``max_minutes`` no batch starts after that time, and the report says how many
    vectors ran (``complete`` false if not all).
    """
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: use at least 1")
    if max_minutes is not None and max_minutes <= 0:
        raise ValueError(f"--max-minutes {max_minutes}: use a positive number")
    plans = {engine: plan(engine, vectors, seed) for engine in engines}
    for engine, batches in plans.items():
        if only is not None:
            first, last = (only, only) if isinstance(only, int) else only
            if not 0 <= first <= last < len(batches):
                raise ValueError(f"--batch {first}-{last}: the {engine} soak has batches 0 "
                                 f"to {len(batches) - 1}")
            plans[engine] = batches[first:last + 1]
    os.environ.setdefault("NNACCEL_QUIET", "1")     # simulator logs to files, not stdout
    summaries = {engine: _empty(engine, batches) for engine, batches in plans.items()}
    # Engines in order (the short systolic soak first), popped from the end.
    tasks = [(engine, batch) for engine, batches in plans.items() for batch in batches][::-1]
    start = time.monotonic()
    deadline = None if max_minutes is None else start + 60 * max_minutes
    stopped = False
    report = _report(summaries, seed, vectors, only, jobs, 0.0, stopped)
    with ProcessPoolExecutor(min(jobs, len(tasks))) as pool:
        running = {}
        while tasks or running:
            while tasks and len(running) < jobs:
                if deadline is not None and time.monotonic() > deadline:
                    stopped, tasks = True, []
                    break
                engine, batch = tasks.pop()
                running[pool.submit(run_one, engine, batch)] = (engine, batch)
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                engine, batch = running.pop(future)
                s = summaries[engine]
                _add(s, batch, future.result(), _replay(engine, vectors, seed, batch))
                elapsed = time.monotonic() - start
                s["wall_seconds"] = round(elapsed, 1)
                left = s["target_vectors"] - s["vectors"]
                eta = f"{elapsed / s['vectors'] * left:.0f} s" if s["vectors"] else "?"
                print(f"soak {engine}: batch {s['batches_done']}/{s['batches']} "
                      f"({batch['config']}) {s['vectors']}/{s['target_vectors']} vectors, "
                      f"{s['mismatches']} mismatches, {elapsed:.0f} s elapsed, ETA {eta}",
                      file=sys.stderr, flush=True)
                report = _report(summaries, seed, vectors, only, jobs, elapsed, stopped)
                if json_path is not None:
                    json_path.parent.mkdir(parents=True, exist_ok=True)
                    json_path.write_text(json.dumps(report, indent=2) + "\n")
    report = _report(summaries, seed, vectors, only, jobs, time.monotonic() - start, stopped)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _print_summary(report: dict) -> None:
    print(f"soak seed {report['seed']}, {report['wall_seconds']:.0f} s wall in all")
    for name, r in report["engines"].items():
        if not r["complete"]:
            print(f"  {name}: INCOMPLETE, {r['vectors']} of {r['target_vectors']} vectors ran"
                  + (" (time limit)" if report["stopped_by_time_limit"] else ""))
        print(f"  {name}: {r['vectors']} vectors, {r['words']} output words compared, "
              f"{r['mismatches']} mismatching, {r['cycles']} simulated cycles in "
              f"{r['wall_seconds']:.0f} s wall ({r['cycles_per_second']} cycles/s, "
              f"{r['vectors_per_second']} vectors/s), {r['cpu_seconds']:.0f} CPU s "
              f"({r['cycles_per_cpu_second']} cycles per CPU second)")
        for config, c in sorted(r["configs"].items()):
            print(f"    {config}: {c['vectors']} vectors, {c['words']} words, "
                  f"{c['mismatches']} mismatching, {c['cycles']} cycles")
        if r["first_mismatch"]:
            print(f"  {name} FIRST MISMATCH: {json.dumps(r['first_mismatch'])}")
        for failure in r["failures"][:10]:
            print(f"  {name} FAILURE: {failure}")


def _batches(text: str) -> int | tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        return int(first) if not last else (int(first), int(last))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a batch number or a range "
                                         f"like 3-7") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.soak", description=__doc__.split(
        "\n")[0].removeprefix("``python -m sim.soak``: "))
    parser.add_argument("--vectors", type=int, default=1_000_000,
                        help="vectors per engine (default 1000000)")
    parser.add_argument("--engine", choices=["systolic", "eie", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=_batches, default=None, metavar="B[-C]",
                        help="run only batch B (a replay), or batches B to C")
    parser.add_argument("--jobs", type=int, default=2,
                        help="simulations at a time (default 2)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no batch after this many minutes (default: no limit)")
    parser.add_argument("--json", type=Path, default=SOAK_DIR / "soak.json",
                        help="where to write the report (default build/soak/soak.json)")
    args = parser.parse_args(argv)
    engines = list(ENGINES) if args.engine == "both" else [args.engine]
    try:
        report = soak(engines, args.vectors, args.seed, args.batch, args.jobs,
                      args.max_minutes, args.json)
    except (ValueError, OSError) as e:
        print(f"sim.soak: error: {e}", file=sys.stderr)
        return 2
    _print_summary(report)
    print(f"report in {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
