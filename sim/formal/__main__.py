"""``python -m sim.formal [--fast] [--only NAME ...]``: run the proofs, one line each."""

import argparse
import signal
import sys
from pathlib import Path

from . import PROOFS, ToolMissing, run_proof, tool_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.formal", description=__doc__)
    parser.add_argument("--fast", action="store_true",
                        help="only the proofs make test runs (each well under a minute)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[p.name for p in PROOFS],
                        help="run these proofs only")
    parser.add_argument("--build", type=Path, default=Path("build/formal"),
                        help="where each proof's work directory goes (default build/formal)")
    args = parser.parse_args(argv)
    proofs = [p for p in PROOFS if (not args.fast or p.fast)
              and (args.only is None or p.name in args.only)]
    try:
        env = tool_path()
    except ToolMissing as error:
        print(f"sim.formal: error: {error}", file=sys.stderr)
        return 2
    failed = 0
    for proof in proofs:
        result = run_proof(proof, args.build, env)
        print(result.line(), flush=True)
        failed += not result.passed
    print(f"{len(proofs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    # A termination request unwinds through run_proof, which stops the solvers it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
