"""The engines a board can carry: config from arguments, adapter, and host-side job runner.

Each entry (:class:`BoardEngine`) knows how to make its configuration from CLI-style
options, how to build its bus adapter (see :mod:`boards.bus`), how to run one job through a
:class:`boards.host.BoardClient` — the same code for a real board and for the simulated
one — and how to name its options in a results table. A third engine is one more entry.
"""

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from hw.eie import driver as eie_driver
from hw.systolic import driver as systolic_driver
from sim import engines

from .eie_adapter import EIE_SPACES, EieAdapter
from .mac_engine import MacEngine
from .protocol import LinkError
from .systolic_adapter import SYSTOLIC_COUNTERS, SYSTOLIC_SPACES, SystolicAdapter

__all__ = ["BoardEngine", "ENGINES", "BOARD_CONFIGS", "engine_config", "make_adapter",
           "run_job", "config_to_dict"]


@dataclass(frozen=True)
class MacConfig:
    """Shape of the reference :class:`boards.mac_engine.MacEngine`."""
    rows: int = 8
    cols: int = 8

    def __post_init__(self):
        for name in ("rows", "cols"):
            if not 1 <= getattr(self, name) <= 4096:
                raise ValueError(f"mac engine {name} must be 1..4096")


@dataclass(frozen=True)
class BoardEngine:
    """One engine a board can carry.

    Members
    -------
    name : str
    config : callable
        ``config(options)``: its frozen config from CLI-style options (no None values).
    adapter : callable
        ``adapter(config)``: the bus adapter the board's core drives.
    run : callable
        ``run(config, client, info, arrays)``: one job on a board whose INFO reply is
        ``info``; outputs, cycles and counters (:func:`run_job`).
    describe : callable
        ``describe(options)``: the options in a few words, for results tables.
    """

    name: str
    config: Callable
    adapter: Callable
    run: Callable
    describe: Callable


def _entry(engine: str) -> BoardEngine:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    return ENGINES[engine]


def engine_config(engine: str, options: dict):
    """The engine's frozen config from ``options`` (None values are left at defaults)."""
    entry = _entry(engine)
    return entry.config({k: v for k, v in options.items() if v is not None})


def _mac_config(options: dict) -> MacConfig:
    return MacConfig(**{k: options[k] for k in ("rows", "cols") if k in options})


def _core_config(engine: str, board_defaults: dict, options: dict):
    """A config of a :mod:`sim.engines` engine: a preset, or ``board_defaults`` (fields a
    board's engine takes unless an option says otherwise) updated by the options."""
    entry = engines.engine(engine)
    options = dict(options)
    preset = options.pop("preset", None)
    if preset and preset not in entry.presets:
        raise ValueError(f"unknown {engine} preset {preset!r}: use one of "
                         f"{list(entry.presets)}")
    fields = dict(board_defaults) if not preset else {}
    known = {f.name for f in dataclasses.fields(entry.config)}
    fields.update({k: v for k, v in options.items() if k in known})
    base = entry.presets[preset] if preset else entry.config()
    return base.replace(**fields)


#: Memories small enough for the iCE40UP5K's 30 block RAMs.
ICE40_SYSTOLIC = {"act_depth": 256, "weight_depth": 256, "acc_depth": 64, "param_depth": 8}
ICE40_EIE = {"spmat_depth": 256, "ptr_depth": 512, "act_depth": 32, "bias_depth": 32}
_ICE40_EIE_8BIT = ICE40_EIE | {"pes": 1, "act_width": 8, "act_frac": 4, "weight_width": 8,
                               "weight_frac": 6}

#: Engine configs that fit a small FPGA, by name: ``(engine, options for engine_config)``.
BOARD_CONFIGS = {
    "ice40-systolic-1x1": ("systolic", ICE40_SYSTOLIC | {"rows": 1, "cols": 1}),
    "ice40-systolic-1x2": ("systolic", ICE40_SYSTOLIC | {"rows": 1, "cols": 2}),
    # 25 bits hold every sum of K <= 256 int8 products (the 1x1 buffers' largest K).
    "ice40-systolic-1x1-acc25": ("systolic", ICE40_SYSTOLIC | {"rows": 1, "cols": 1,
                                                               "acc_width": 25}),
    "ice40-eie-1pe": ("eie", ICE40_EIE | {"pes": 1}),
    "ice40-eie-1pe-8bit": ("eie", _ICE40_EIE_8BIT | {"acc_width": 24}),
    "ice40-eie-1pe-8bit-q4": ("eie", _ICE40_EIE_8BIT | {"acc_width": 24, "queue_depth": 4}),
    # Smaller still, for room beside the pipelined PE on the iCE40UP5K: 32-bit sparse-matrix
    # words (4 entries), one codebook slot, a 16-bit accumulator and a 2-deep queue.
    "ice40-eie-1pe-small": ("eie", _ICE40_EIE_8BIT | {"acc_width": 16, "queue_depth": 2,
                                                      "word_bits": 32, "max_layers": 1}),
}

#: EIE memories sized for an FPGA (the engine's own defaults are EIE's 64-PE ASIC sizes):
#: 1024 64-bit sparse-matrix words (8192 entries), 2048 pointers, 64 activations and 128
#: biases per PE.
EIE_BOARD_DEFAULTS = {"pes": 8, "spmat_depth": 1024, "ptr_depth": 2048, "act_depth": 64,
                      "bias_depth": 128}


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def make_adapter(engine: str, config):
    """The bus adapter of ``engine`` for ``config``."""
    return _entry(engine).adapter(config)


def _pack_int8(values) -> list[int]:
    raw = np.asarray(values, dtype=np.int8).tobytes()
    raw += bytes(-len(raw) % 4)
    return list(struct.unpack(f"<{len(raw) // 4}I", raw))


def _split(payload: int, stride_log2: int) -> list[int]:
    return [(payload >> (32 * j)) & 0xFFFFFFFF for j in range(1 << stride_log2)]


def run_job(engine: str, config, client, arrays: dict) -> dict:
    """Load ``arrays`` (the engine's job), run, read back. Returns outputs, cycles, counters.

    ``mac``: ``weights`` int8 (rows × cols), ``x`` int8 (cols) → ``y`` int32.
    ``systolic``: the fields of :class:`hw.systolic.driver.GemmJob` → ``y`` int8 (M × N).
    ``eie``: ``beats`` (``i_load`` payloads) and ``program`` (per layer, as
    :func:`hw.eie.driver.layer_program` makes it) → the last emitted layer's outputs.
    """
    entry = _entry(engine)
    return entry.run(config, client, client.info(), arrays)


def _run_mac(config, client, info, arrays) -> dict:
    if info[2:5] != [1, config.rows, config.cols]:
        raise LinkError(f"the board carries engine/config {info[2:]}, not mac "
                        f"{config.rows}x{config.cols}")
    client.write(1, 0, _pack_int8(np.asarray(arrays["weights"]).ravel()))
    client.write(2, 0, _pack_int8(arrays["x"]))
    cycles = client.run()
    y = np.array(client.read(3, 0, config.rows), dtype=np.uint32).view(np.int32)
    return {"y": y, "cycles": cycles, "counters": client.counters()}


def _run_systolic(config, client, info, arrays) -> dict:
    """A GEMM in as many runs as the board's result buffer needs (N split in pieces of
    whole N tiles); cycles and counters add up over the runs."""
    adapter = SystolicAdapter(config)
    if info[2:] != list(adapter.info):
        raise LinkError(f"the board carries engine/config {info[2:]}, not systolic "
                        f"{list(adapter.info)}")
    job = systolic_driver.GemmJob(**arrays)
    m, _, n = job.shape
    results = next(sp for sp in adapter.spaces if sp.id == SYSTOLIC_SPACES["results"])
    out_beats = results.depth >> adapter.stride_log2("results")
    if m > out_beats:
        raise ValueError(f"the GEMM has M={m} rows but the board buffers {out_beats} result "
                         f"rows: split M")
    n_per_run = out_beats // m * config.cols
    outputs, cycles, total = [], 0, dict.fromkeys(SYSTOLIC_COUNTERS, 0)
    for n0 in range(0, n, n_per_run):
        part = slice(n0, min(n, n0 + n_per_run))
        sub = systolic_driver.GemmJob(job.a, job.w[:, part], job.bias[part], job.multiplier[part],
                      job.shift[part], job.input_zero_point, job.output_zero_point,
                      job.act_min, job.act_max)
        packed = systolic_driver.pack(config, sub)
        for name, beats in (("act", packed.act), ("weight", packed.weight),
                            ("param", packed.param), ("command", [packed.command])):
            stride = adapter.stride_log2(name)
            client.write(SYSTOLIC_SPACES[name], 0,
                         [w for beat in beats for w in _split(beat, stride)])
        cycles += client.run()
        words = client.counters()
        if len(words) != len(SYSTOLIC_COUNTERS):
            raise LinkError(f"the board has {len(words)} counters, not the systolic "
                            f"adapter's {len(SYSTOLIC_COUNTERS)}: its image is wrong")
        counters = dict(zip(SYSTOLIC_COUNTERS, words, strict=True))
        if counters["flags"]:
            raise LinkError(f"the engine rejected the GEMM or overflowed (flags "
                            f"{counters['flags']})")
        for key in total:
            total[key] += counters[key]
        stride = adapter.stride_log2("results")
        raw = client.read(SYSTOLIC_SPACES["results"], 0, packed.result_words << stride)
        beats = [sum(raw[i * (1 << stride) + j] << (32 * j) for j in range(1 << stride))
                 for i in range(packed.result_words)]
        beats[-1] |= 1 << (8 * config.cols)   # the buffer keeps data; the run ended on 'last'
        outputs.append(systolic_driver.unpack(config, beats, m, part.stop - part.start))
    return {"y": np.concatenate(outputs, axis=1), "cycles": cycles, "counters": total,
            "runs": len(outputs)}


def _run_eie(config, client, info, arrays) -> dict:
    """An EIE job: ``beats`` (``i_load`` payloads) and ``program`` (per layer its command
    ``payload``, ``emit``, ``rows`` and ``out_features``, :func:`hw.eie.driver.layer_program`).
    Returns the last emitted layer's outputs as ``y``, every emitted layer, the cycles of
    every layer's RUN and their sum, and counter deltas."""
    adapter = EieAdapter(config)
    if info[2:] != list(adapter.info):
        raise LinkError(f"the board carries engine/config {info[2:]}, not eie "
                        f"{list(adapter.info)}")
    stride = adapter.stride_log2("load")
    # Beats per WRITE frame; a beat wider than a frame goes out over several (the client
    # splits it at consecutive addresses, which is how the space assembles it).
    per_frame = max(1, ((info[1] - 4) // 4) >> stride)
    beats = list(arrays["beats"])
    for start in range(0, len(beats), per_frame):
        words = [w for b in beats[start:start + per_frame] for w in _split(b, stride)]
        client.write(EIE_SPACES["load"], 0, words)
    n_counters = adapter.spaces[-1].depth

    def counters() -> int:
        words = client.read_counters(n_counters)
        return sum(w << (32 * k) for k, w in enumerate(words))

    before = counters()
    emitted, layer_cycles = [], []
    c_stride = adapter.stride_log2("command")
    r_stride = adapter.stride_log2("results")
    for step in arrays["program"]:
        client.write(EIE_SPACES["command"], 0, _split(step["payload"], c_stride))
        layer_cycles.append(client.run())
        if step["emit"]:
            rows = int(step["rows"])
            raw = client.read(EIE_SPACES["results"], 0, rows << r_stride)
            beats = [sum(raw[(r << r_stride) + j] << (32 * j) for j in range(1 << r_stride))
                     for r in range(rows)]
            emitted.append(eie_driver.parse_results(config, beats, int(step["out_features"])))
    delta = eie_driver.counter_delta(config, before, counters())
    return {"y": emitted[-1] if emitted else [], "emitted": emitted,
            "cycles": sum(layer_cycles), "layer_cycles": layer_cycles, "counters": delta}


def _describe_array(options: dict) -> str:
    acc = f", {options['acc_width']}-bit accumulator" if "acc_width" in options else ""
    return f"{options['rows']}×{options['cols']}{acc}"


def _describe_eie(options: dict) -> str:
    o = options
    widths = f", {o['act_width']}-bit" if "act_width" in o else ""
    queue = f", queue depth {o['queue_depth']}" if "queue_depth" in o else ""
    acc = f", {o['acc_width']}-bit accumulator" if "acc_width" in o else ""
    words = f", {o['word_bits']}-bit words" if "word_bits" in o else ""
    slots = f", {o['max_layers']} layer slot" if "max_layers" in o else ""
    return f"{o['pes']} PE{'s' if o['pes'] > 1 else ''}{widths}{acc}{queue}{words}{slots}"


def _mac_adapter(config: MacConfig) -> MacEngine:
    return MacEngine(config.rows, config.cols)


#: The engines a board can carry, by name.
ENGINES = {
    "mac": BoardEngine("mac", _mac_config, _mac_adapter, _run_mac, _describe_array),
    "systolic": BoardEngine("systolic", partial(_core_config, "systolic", {}), SystolicAdapter,
                            _run_systolic, _describe_array),
    "eie": BoardEngine("eie", partial(_core_config, "eie", EIE_BOARD_DEFAULTS), EieAdapter,
                       _run_eie, _describe_eie),
}
