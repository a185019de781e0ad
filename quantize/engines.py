"""The engines as the compression front end sees them, one entry each.

An entry adds to the engine's :class:`sim.engines.Engine` what compressing for it and
running its images take: the sizing options of ``nnaccel compress`` it owns, its config
for a model, its image writer, its manifest contract, its memory estimate and its run
on a backend. The code of each lives in the engine's module (:mod:`quantize.eie_engine`,
:mod:`quantize.systolic_engine`); a third engine is one more module and one more entry.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sim import engines as core

from . import eie_engine, systolic_engine

__all__ = ["ImageEngine", "ENGINES", "image_engine"]


@dataclass(frozen=True)
class ImageEngine:
    """One engine's compression and run entry.

    Members
    -------
    engine : sim.engines.Engine
        Config class, presets, driver, golden and cost models.
    options : dict
        ``nnaccel compress`` sizing options the engine takes (``--pes``, ``--rows``), with
        their defaults; the others are refused for it.
    check_options : callable
        ``check_options(args)`` raises a one-line ``ValueError`` for flags the engine fixes.
    config_for : callable
        ``config_for(compressed, inputs, spec, options, say)``: its config for the model.
    write_layers : callable
        ``write_layers(compressed, config, out, calibration)`` writes the layers' files:
        ``(layer specs, memory bytes, {"input": format, "output": format})``.
    check_layers : callable
        ``check_layers(manifest, config)``: the manifest's per-engine contract.
    memory : callable
        ``memory(layer spec, batch)``: bytes a golden run needs at that layer.
    run : callable
        ``run(image, quantized inputs, backend, progress)``: ``(raw, cycles, info)``.
    """

    engine: core.Engine
    options: dict
    check_options: Callable
    config_for: Callable
    write_layers: Callable
    check_layers: Callable
    memory: Callable
    run: Callable

    @property
    def name(self) -> str:
        return self.engine.name


def _entry(name: str, module) -> ImageEngine:
    return ImageEngine(core.engine(name), module.OPTIONS, module.check_options,
                       module.config_for, module.write_layers, module.check_layers,
                       module.memory, module.run)


ENGINES = {"eie": _entry("eie", eie_engine), "systolic": _entry("systolic", systolic_engine)}


def image_engine(name: str) -> ImageEngine:
    """The entry of engine ``name``; a one-line ``ValueError`` names the known ones."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    return ENGINES[name]
