"""``nnaccel sweep``: a design-space sweep on Dask, or the report of one (docs/sweep.md)."""

import sys
from pathlib import Path

from sim.rtl import BUILD_ROOT
from sim.sweep.report import write_report
from sim.sweep.runner import run_sweep
from sim.sweep.spec import load_spec

__all__ = ["register"]


def _sweep(args):
    if args.report:
        if args.spec:
            raise ValueError("give a SPEC to run or --report RESULTS to redraw, not both")
        return _report(Path(args.report), args.out_dir, not args.no_plots)
    if not args.spec:
        raise ValueError("give a sweep SPEC (TOML; see docs/sweep.md) or --report RESULTS")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: give 1 or more worker processes")
    if args.scheduler and (args.serial or args.workers):
        raise ValueError("--scheduler sends the sweep to a running cluster: drop --serial "
                         "and --workers (the cluster has its own)")
    spec = Path(args.spec)
    sweep = load_spec(spec)
    results = Path(args.results or BUILD_ROOT / "sweep" / f"{spec.stem}.jsonl")
    run = run_sweep(sweep.points, results, scheduler=args.scheduler, workers=args.workers,
                    serial=args.serial, progress=sys.stderr,
                    context={"spec": str(spec), "boards": list(sweep.boards),
                             "clock_mhz": list(sweep.clock_mhz)})
    print(f"{run.total} points: {run.skipped} already in {results}, {run.ran} run "
          f"({run.failed} failed) in {run.seconds:.1f} s")
    status = _report(results, args.out_dir, not args.no_plots)
    return 1 if run.failed else status


def _report(results: Path, out_dir, plots: bool) -> int:
    written = write_report(results, out_dir, plots=plots)
    if written["note"]:
        print(f"nnaccel sweep: {written['note']}", file=sys.stderr)
    print(f"{written['points']} points ({written['failed']} failed) -> "
          + ", ".join(written["files"]))
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "sweep", help="measure a design space (configs x workloads x boards) on Dask",
        description="Run every point of a sweep spec (TOML, docs/sweep.md) as a Dask task "
                    "(cost model, Verilator run or one synthesis), keep each finished point "
                    "in a results file (a rerun skips them), and write CSV, Markdown and "
                    "plots. --report RESULTS redraws those without running anything.")
    p.add_argument("spec", nargs="?", help="sweep spec (TOML)")
    p.add_argument("--report", metavar="RESULTS", help="only write the tables and plots of "
                                                       "a results file")
    p.add_argument("--results", help="results file (JSON lines; default "
                                     "build/sweep/SPEC-NAME.jsonl)")
    p.add_argument("--out-dir", help="tables and plots go here (default: beside the results)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://HOST:8786 (default: a local "
                        "cluster on this machine)")
    p.add_argument("--workers", type=int,
                   help="local cluster worker processes (default: one per core)")
    p.add_argument("--serial", action="store_true",
                   help="run the points one after another in this process (no Dask)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=_sweep)
