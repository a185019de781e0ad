"""``python -m sim.bench [SUITE ...]``: run the benchmark suites.

Each suite writes its full figures and plots into build/bench/; its committed record
(``docs/results/<suite>.json``, or ``sim/bench/boards_record.json`` for ``boards``) is
updated from them, and ``docs/results.md`` is regenerated from the records at the end
(:mod:`sim.bench.results`).
"""

import argparse
import importlib
import json
import sys
import time

from ..rtl import BUILD_ROOT
from . import results

SUITES = ["systolic", "eie", "eie_pes", "compression", "convs", "tflite", "methods", "cnn_methods",
          "cnn_budget", "winograd",
          "boards"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench")
    parser.add_argument("suites", nargs="*", default=SUITES, help=f"any of {SUITES}")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}: use any of {', '.join(SUITES)}")
    out_dir = BUILD_ROOT / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Suites not run this time keep their last figures.
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.suites:
        module = importlib.import_module(f"sim.bench.{name}")
        start, started = time.monotonic(), results.provenance()
        print(f"[bench] {name} ...", flush=True)
        summary[name] = module.main(out_dir)
        seconds = time.monotonic() - start
        kept = results.record(name, out_dir, seconds, started)
        print(f"[bench] {name} done in {seconds:.0f} s -> {out_dir / (name + '.json')}"
              + (f", record {kept.relative_to(results.REPO)}" if kept else ""), flush=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    print(f"[bench] wrote {results.write().relative_to(results.REPO)}", flush=True)
    for problem in results.check():
        print(f"[bench] stale: {problem}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
