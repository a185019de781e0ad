"""``python -m sim.cli``: the ``nnaccel`` command (:mod:`nnaccel.cli`) under its older name,
which the Makefile's targets call."""

import sys

from nnaccel.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
