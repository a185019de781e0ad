"""Design-space sweeps: engine configs × workloads × boards, measured on a Dask cluster.

``nnaccel sweep SPEC.toml`` (:mod:`nnaccel.commands.sweep`) reads a spec
(:mod:`sim.sweep.spec`), runs each point's measure — cost model, Verilator run or one
synthesis — as one task (:mod:`sim.sweep.runner`, :mod:`sim.sweep.measures`), keeps every
finished point in a results file (:mod:`sim.sweep.store`) and writes tables and plots
(:mod:`sim.sweep.report`). docs/sweep.md describes the spec and the outputs.
"""
