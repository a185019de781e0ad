"""nnaccel's applications' front door: the ``nnaccel`` command (:mod:`nnaccel.cli`).

The packages run one way (checked by ``make lint``, import-linter):
``hw`` (configs, layouts, drivers, gateware) ← backends (``sim.golden``, Verilator in
``sim``, boards over UART in ``boards``) ← applications (``quantize``, ``sim.bench``,
``sim.demo``, ``nnaccel``).
"""
