"""``python -m sim.bench [SUITE ...]``: run the benchmark suites, figures into build/bench/."""

import argparse
import importlib
import json
import sys
import time

from ..rtl import BUILD_ROOT

SUITES = ["systolic", "eie", "eie_pes", "compression", "boards"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench")
    parser.add_argument("suites", nargs="*", default=SUITES, help=f"any of {SUITES}")
    args = parser.parse_args(argv)
    out_dir = BUILD_ROOT / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Suites not run this time keep their last figures.
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.suites:
        try:
            module = importlib.import_module(f"sim.bench.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"sim.bench.{name}":
                raise
            print(f"[bench] {name}: no suite yet, skipped", flush=True)
            continue
        start = time.monotonic()
        print(f"[bench] {name} ...", flush=True)
        summary[name] = module.main(out_dir)
        print(f"[bench] {name} done in {time.monotonic() - start:.0f} s -> "
              f"{out_dir / (name + '.json')}", flush=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
