"""The three backends an image runs on, behind one interface.

Each backend is a transport for the engines' drivers (:mod:`hw.systolic.driver`,
:mod:`hw.eie.driver`): it takes driver-level work and gives back what the engine computed.

* :class:`Golden`: the NumPy models of ``sim/golden`` (no cycles);
* :class:`Verilator`: the generated RTL under Verilator (:mod:`sim.systolic`,
  :mod:`sim.eie`), one simulation per call;
* :class:`Board`: an FPGA board over its UART host link (:class:`boards.host.BoardClient`),
  the EIE image loaded once and each later input loading its activations only.

``gemms(config, jobs, label)`` runs systolic GEMM jobs (``chunked``: each must fit the
engine's buffers); ``eie(layers, image, inputs)`` runs EIE inputs through a built image
(``layers``: the specs the golden model reads). Both return one result per job or input,
``cycles`` ``None`` on the golden model. ``builds``: the backend elaborates the engine.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from boards.engines import run_job
from hw.eie import csc
from hw.eie import driver as eie_driver
from hw.systolic.driver import GemmJob
from sim import eie as eie_rtl
from sim import systolic as systolic_rtl
from sim.golden import eie as eie_golden
from sim.golden import systolic as systolic_golden

__all__ = ["Golden", "Verilator", "Board", "backend", "dense_layers"]


def dense_layers(layers) -> list[dict]:
    """EIE layer specs (``csc``, ``codebook``, ``bias``, ``relu``) as the golden model reads
    them: dense codebook-index matrices."""
    return [{"weights": csc.decode(spec["csc"]), "codebook": spec["codebook"],
             "bias": spec["bias"], "relu": spec["relu"]} for spec in layers]


@dataclass
class Golden:
    """The golden models: bit-exact, untimed."""

    name: str = "golden"
    timed: bool = False
    builds: bool = False
    chunked: bool = False       # no buffers: a layer's whole batch is one job

    def gemms(self, config, jobs: list[GemmJob], label: str, progress=None) -> list[dict]:
        return [{"output": systolic_golden.gemm(
                    job.a, job.w, job.bias, job.multiplier, job.shift, job.input_zero_point,
                    job.output_zero_point, job.act_min, job.act_max, rounding=config.rounding,
                    lut=job.lut),
                 "cycles": None} for job in jobs]

    def eie(self, layers, image, inputs, progress=None) -> list[dict]:
        dense = dense_layers(layers)
        return [{"outputs": eie_golden.run(dense, x, image.config)[-1], "cycles": None}
                for x in inputs]


@dataclass
class Verilator:
    """The generated RTL under Verilator: cycle-accurate, one simulation per call.

    ``stall`` is the probability (``0 <= stall < 1``) that a systolic stream source idles
    or the result sink refuses in any cycle, as the engine tests drive it; ``seed`` makes
    the pattern repeatable, and each later :meth:`gemms` call draws from ``seed + calls``
    so that the layers of a graph do not all stall alike. Measured cycles then include
    the stalls.
    """

    name: str = "rtl"
    timed: bool = True
    builds: bool = True
    chunked: bool = True        # jobs that fit the engine's buffers
    stall: float = 0.0
    seed: int = 0
    calls: int = field(default=0, compare=False)

    def __post_init__(self):
        if not 0.0 <= self.stall < 1.0:
            raise ValueError(f"stall probability {self.stall}: use 0 <= p < 1")

    def gemms(self, config, jobs: list[GemmJob], label: str, progress=None) -> list[dict]:
        if progress:
            progress(f"{label} GEMM on RTL ({len(jobs)} jobs"
                     + (f", stall {self.stall}" if self.stall else "") + ")")
        runs = systolic_rtl.run_jobs(config, jobs, stall=self.stall,
                                     seed=self.seed + self.calls)
        self.calls += 1
        return [{"output": np.asarray(r.output), "cycles": int(r.cycles)} for r in runs]

    def eie(self, layers, image, inputs, progress=None) -> list[dict]:
        if progress:
            progress(f"EIE RTL: {len(inputs)} inputs, {image.config.pes} PEs, one Verilator run")
        results = eie_rtl.run_rtl_cases(image.config, [{"image": image, "activations": x}
                                                       for x in inputs])
        return [{"outputs": r["outputs"], "cycles": int(r["cycles"])} for r in results]


@dataclass
class Board:
    """A board over its UART host link; ``client`` is a :class:`boards.host.BoardClient`
    (a serial port, or the simulated board's cocotb transport)."""

    client: object
    name: str = "board"
    timed: bool = True
    builds: bool = False
    chunked: bool = True

    def gemms(self, config, jobs: list[GemmJob], label: str, progress=None) -> list[dict]:
        out = []
        for job in jobs:
            result = run_job("systolic", config, self.client, job.arrays())
            out.append({"output": np.asarray(result["y"]), "cycles": int(result["cycles"])})
        if progress:
            progress(f"{label} in {sum(r['cycles'] for r in out)} cycles")
        return out

    def eie(self, layers, image, inputs, progress=None) -> list[dict]:
        """The image's memories go to the board with the first input; later inputs load
        their activations only (the engine keeps its memories between runs)."""
        program = eie_driver.layer_program(image)
        out = []
        for number, x in enumerate(inputs):
            beats = (eie_driver.load_beats(image, x) if number == 0
                     else eie_driver.act_beats(image, x))
            result = run_job("eie", image.config, self.client,
                             {"program": program, "beats": beats})
            out.append({"outputs": result["y"], "cycles": int(result["cycles"]),
                        "layer_cycles": result["layer_cycles"]})
            if progress:
                progress(f"input {number + 1}/{len(inputs)}: {result['cycles']} cycles")
        return out


def backend(engine, stall: float = 0.0, seed: int = 0) -> object:
    """``"golden"``, ``"rtl"`` or a backend object, as a backend object.

    ``stall`` > 0 (random idle and backpressure cycles, ``seed`` for their pattern) applies
    to a Verilator backend only: the golden model has no handshakes and a board's link
    paces itself.
    """
    if isinstance(engine, str):
        if engine == "golden":
            engine = Golden()
        elif engine == "rtl":
            return Verilator(stall=stall, seed=seed)
        else:
            raise ValueError(f"--engine {engine!r}: use golden or rtl")
    if stall:
        if not isinstance(engine, Verilator):
            raise ValueError(f"stall={stall}: random stalls apply to the rtl backend only, "
                             f"not {engine.name}")
        return dataclasses.replace(engine, stall=stall, seed=seed, calls=0)
    return engine
