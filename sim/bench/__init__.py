"""Benchmarks: ``make bench`` runs every module listed in :data:`sim.bench.__main__.SUITES`.

Each suite module has ``main(out_dir: pathlib.Path) -> dict``; it writes
``out_dir/<suite>.json`` (and PNG plots) and returns the same figures.
"""
