"""The ``nnaccel`` command: a thin dispatcher over the packages.

Each package that offers commands has a ``commands`` module with
``register(subparsers)``; every subcommand's function lives in its package and is only
called from here. User errors (``ValueError``, ``OSError``) end as one line on stderr and
exit status 2; ``NNACCEL_DEBUG=1`` shows the traceback instead.
"""

import argparse
import importlib
import os
import sys

from quantize.atomic import release_signals
from sim import budget

__all__ = ["main", "COMMAND_MODULES"]

#: In data-flow order: compression front end, engines, simulation, boards.
COMMAND_MODULES = ["quantize.commands", "nnaccel.commands.verilog", "nnaccel.commands.gemm",
                   "nnaccel.commands.spmv", "nnaccel.commands.board", "nnaccel.commands.sweep"]


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end in one line too (argparse would print the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnaccel",
        description="Generate, simulate and feed EIE-style sparse and TPU-style systolic "
                    "neural-network accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        budget.set_limit(getattr(args, "max_memory", None))    # every command starts afresh
        status = int(args.func(args) or 0)
    except (ValueError, OSError) as e:
        if os.environ.get("NNACCEL_DEBUG"):
            raise
        print(f"nnaccel: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nnaccel: interrupted", file=sys.stderr)
        return 130
    finally:
        late = release_signals()
    if late:
        print("nnaccel: interrupt ignored: the output was already complete", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
