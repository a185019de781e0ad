"""The engines a board can carry: config from arguments, adapter, and host-side job runner.

Each entry knows how to make its configuration from CLI-style options, how to build its
bus adapter (see :mod:`boards.bus`) and how to run one job through a
:class:`boards.host.BoardClient` — the last is the same code for a real board and for the
simulated one.
"""

import struct
from dataclasses import dataclass

import numpy as np

from .protocol import LinkError

__all__ = ["ENGINES", "engine_config", "make_adapter", "run_job", "config_to_dict"]

ENGINES = ("mac", "systolic", "eie")


@dataclass(frozen=True)
class MacConfig:
    """Shape of the reference :class:`boards.mac_engine.MacEngine`."""
    rows: int = 8
    cols: int = 8

    def __post_init__(self):
        for name in ("rows", "cols"):
            if not 1 <= getattr(self, name) <= 4096:
                raise ValueError(f"mac engine {name} must be 1..4096")


def _check(engine: str):
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")


def engine_config(engine: str, options: dict):
    """The engine's frozen config from ``options`` (None values are left at defaults)."""
    _check(engine)
    options = {k: v for k, v in options.items() if v is not None}
    if engine == "mac":
        return MacConfig(**{k: options[k] for k in ("rows", "cols") if k in options})
    if engine == "systolic":
        from hw.systolic.config import PRESETS, SystolicConfig
        preset = options.pop("preset", None)
        if preset and preset not in PRESETS:
            raise ValueError(f"unknown systolic preset {preset!r}: use one of {list(PRESETS)}")
        base = PRESETS[preset] if preset else SystolicConfig()
        fields = {k: options[k] for k in ("rows", "cols", "act_depth", "weight_depth",
                                          "acc_depth", "param_depth", "rounding")
                  if k in options}
        return base.replace(**fields)
    try:
        from hw.eie.config import EieConfig
    except ImportError:
        raise ValueError("the eie engine is not available in this checkout") from None
    fields = {k: options[k] for k in ("pes",) if k in options}
    return EieConfig(**fields)


def config_to_dict(config) -> dict:
    import dataclasses
    return dataclasses.asdict(config)


def make_adapter(engine: str, config):
    _check(engine)
    if engine == "mac":
        from .mac_engine import MacEngine
        return MacEngine(config.rows, config.cols)
    if engine == "systolic":
        from .systolic_adapter import SystolicAdapter
        return SystolicAdapter(config)
    raise ValueError(f"the {engine} engine has no board adapter yet")


def _pack_int8(values) -> list[int]:
    raw = np.asarray(values, dtype=np.int8).tobytes()
    raw += bytes(-len(raw) % 4)
    return list(struct.unpack(f"<{len(raw) // 4}I", raw))


def _split(payload: int, stride_log2: int) -> list[int]:
    return [(payload >> (32 * j)) & 0xFFFFFFFF for j in range(1 << stride_log2)]


def run_job(engine: str, config, client, arrays: dict) -> dict:
    """Load ``arrays`` (the engine's job), run, read back. Returns outputs, cycles, counters.

    ``mac``: ``weights`` int8 (rows × cols), ``x`` int8 (cols) → ``y`` int32.
    ``systolic``: the fields of :class:`sim.systolic.GemmJob` → ``y`` int8 (M × N).
    """
    _check(engine)
    info = client.info()
    if engine == "mac":
        if info[2:5] != [1, config.rows, config.cols]:
            raise LinkError(f"the board carries engine/config {info[2:]}, not mac "
                            f"{config.rows}x{config.cols}")
        client.write(1, 0, _pack_int8(np.asarray(arrays["weights"]).ravel()))
        client.write(2, 0, _pack_int8(arrays["x"]))
        cycles = client.run()
        y = np.array(client.read(3, 0, config.rows), dtype=np.uint32).view(np.int32)
        return {"y": y, "cycles": cycles, "counters": client.counters()}
    if engine == "systolic":
        from sim.systolic import GemmJob, pack, unpack

        from .systolic_adapter import SYSTOLIC_COUNTERS, SYSTOLIC_SPACES, SystolicAdapter
        adapter = SystolicAdapter(config)
        if info[2:] != list(adapter.info):
            raise LinkError(f"the board carries engine/config {info[2:]}, not systolic "
                            f"{list(adapter.info)}")
        job = GemmJob(**arrays)
        m, _, n = job.shape
        packed = pack(config, job)
        if packed.result_words > adapter.spaces[4].depth >> adapter.stride_log2("results"):
            raise ValueError(f"the GEMM makes {packed.result_words} result words but the "
                             f"board buffers {config.acc_depth}: split N")
        for name, beats in (("act", packed.act), ("weight", packed.weight),
                            ("param", packed.param), ("command", [packed.command])):
            stride = adapter.stride_log2(name)
            words = [w for beat in beats for w in _split(beat, stride)]
            client.write(SYSTOLIC_SPACES[name], 0, words)
        cycles = client.run()
        counters = dict(zip(SYSTOLIC_COUNTERS, client.counters(), strict=True))
        if counters["flags"]:
            raise LinkError(f"the engine rejected the GEMM or overflowed (flags "
                            f"{counters['flags']})")
        stride = adapter.stride_log2("results")
        raw = client.read(SYSTOLIC_SPACES["results"], 0, packed.result_words << stride)
        beats = [sum(raw[i * (1 << stride) + j] << (32 * j) for j in range(1 << stride))
                 for i in range(packed.result_words)]
        last = 1 << (8 * config.cols)
        beats[-1] |= last    # the buffer keeps data only; the engine ended on 'last'
        return {"y": unpack(config, beats, m, n), "cycles": cycles, "counters": counters}
    raise ValueError(f"the {engine} engine has no board driver yet")
