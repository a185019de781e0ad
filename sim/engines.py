"""The engines, one entry each: what the commands, the image writer and the backends look up.

An entry ties together what an engine is made of below the applications: its config class
and presets, its top-level component and module name, its host driver, its golden model
and its cost model. A third engine is one more entry here (and its own driver and golden
model), not a branch in every command.
"""

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from hw.eie import PRESETS as EIE_PRESETS
from hw.eie import EieConfig, EieTop
from hw.eie import driver as eie_driver
from hw.systolic import PRESETS as SYSTOLIC_PRESETS
from hw.systolic import SystolicConfig
from hw.systolic import driver as systolic_driver
from hw.systolic.top import SystolicTop

from .golden import eie as eie_golden
from .golden import systolic as systolic_golden

__all__ = ["Engine", "ENGINES", "engine", "engine_of"]


@dataclass(frozen=True)
class Engine:
    """One engine.

    Members
    -------
    name : str
    config : type
        Its frozen config class (the :class:`hw.config.EngineConfig` protocol).
    presets : dict
        Named configs.
    top : type
        The top-level component, ``top(config)``.
    top_name : str
        The top module's name in generated Verilog.
    driver : module
        Host driver: jobs or images to beats, result and counter beats back.
    golden : module
        Bit-exact NumPy model (``sim/golden``).
    cost : callable
        Cost model: cycles estimated without simulating.
    zero_codebook_entry : bool
        Weight sharing must keep codebook entry 0 for the pruned weights (the zero).
    """

    name: str
    config: type
    presets: dict
    top: type
    top_name: str
    driver: ModuleType
    golden: ModuleType
    cost: Callable
    zero_codebook_entry: bool


ENGINES = {
    "systolic": Engine("systolic", SystolicConfig, SYSTOLIC_PRESETS, SystolicTop, "systolic_top",
                       systolic_driver, systolic_golden, systolic_driver.model_cycles,
                       zero_codebook_entry=False),
    "eie": Engine("eie", EieConfig, EIE_PRESETS, EieTop, "eie_top", eie_driver, eie_golden,
                  eie_driver.work_cycles, zero_codebook_entry=True),
}


def engine(name: str) -> Engine:
    """The entry of engine ``name``; a one-line ``ValueError`` names the known ones."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; use one of {', '.join(sorted(ENGINES))}")
    return ENGINES[name]


def engine_of(config) -> Engine:
    """The entry whose config class ``config`` is."""
    for entry in ENGINES.values():
        if isinstance(config, entry.config):
            return entry
    raise ValueError(f"{config!r} is no engine's config")
