"""A sweep's spec (TOML) and the points it stands for.

The format, with every key (docs/sweep.md has the full story)::

    description = "free text"
    measures = ["model", "rtl", "synth"]   # which to take per point
    boards = ["ulx3s", "icebreaker"]       # synth: where; report: whose clock
    clock_mhz = [100.0]                    # synth constraint(s); default: the board's own
    seeds = [1, 2]                         # synth: nextpnr seeds, one task each
    pnr_timeout_min = 60                   # synth: stop a seed's place and route after this

    [systolic]                             # axes: SystolicConfig fields, a value or a list
    rows = [4, 8, 16]
    cols = "rows"                          # square arrays: cols follows rows
    rounding = ["double", "single"]
    workloads = ["gemm:128x128x128", "conv:AlexNet"]

    [eie]                                  # axes: EieConfig fields
    pes = [4, 8]
    queue_depth = [2, 4, 8, 16]
    workloads = ["eie:all"]

Each engine section's axes multiply out to configs; memory depths not given are sized for
the section's workloads (:meth:`~hw.config.EngineConfig.fit`, the largest need over them),
so one config is one build that runs every workload of its section. ``model`` and ``rtl``
make one point per config and workload, ``synth`` one per config, board, clock and seed.

A bad spec raises ``ValueError`` in one line that names the key.
"""

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from boards.platforms import BOARDS
from hw.eie import EieConfig
from hw.systolic import SystolicConfig

from . import workloads as wl

__all__ = ["Point", "Sweep", "load_spec", "parse_spec", "MEASURES", "CONFIGS"]

MEASURES = ("model", "rtl", "synth")
CONFIGS = {"systolic": SystolicConfig, "eie": EieConfig}
_TOP_KEYS = ("description", "measures", "boards", "clock_mhz", "seeds", "pnr_timeout_min",
             *CONFIGS)


@dataclass(frozen=True)
class Point:
    """One measurement: ``measure`` of an ``engine`` config on a ``workload`` (model, rtl)
    or a ``board`` at ``clock_mhz`` (0: the board's own) with nextpnr ``seed`` (synth),
    whose place and route is stopped after ``pnr_timeout_min`` (``None``: no limit).

    ``axes`` are the config fields the spec sets; ``fit`` the workloads its memories are
    sized for; ``digest`` what those workloads' files hold (compressed images), so a point
    is measured anew when they change.
    """

    measure: str
    engine: str
    axes: tuple
    fit: tuple
    workload: str = ""
    board: str = ""
    clock_mhz: float = 0.0
    seed: int = 0
    digest: str = ""
    pnr_timeout_min: float | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["axes"] = dict(self.axes)
        d["fit"] = list(self.fit)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Point":
        return cls(**{**d, "axes": tuple(sorted(d["axes"].items())), "fit": tuple(d["fit"])})

    def ident(self) -> str:
        """The point as one canonical string (what it is, not which code measured it)."""
        d = self.to_dict()
        # The time limit is how a point is measured, not what it is: a build that finished
        # without a limit stays valid under one, so changing the limit reruns nothing that
        # finished (a point stopped at the limit failed, and failed points run again).
        del d["pnr_timeout_min"]
        return json.dumps(d, sort_keys=True)


@dataclass(frozen=True)
class Sweep:
    points: tuple
    boards: tuple
    clock_mhz: tuple
    description: str = ""


def load_spec(path) -> Sweep:
    """The sweep in the TOML file ``path``; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise OSError(f"{path}: {e.strerror or e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not TOML: {e}") from None
    try:
        return parse_spec(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _list(raw: dict, key: str, kind, default, where: str = "") -> list:
    value = raw.get(key, default)
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
            name = getattr(kind, "__name__", "number")
            raise ValueError(f"{where}{key} = {v!r}: expected {name} or a list of them")
    return values


def parse_spec(raw: dict) -> Sweep:
    """The sweep of a parsed TOML document (see the module docstring)."""
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (keys: {', '.join(_TOP_KEYS)})")
    measures = _list(raw, "measures", str, ["model"])
    for m in measures:
        if m not in MEASURES:
            raise ValueError(f"measures = {m!r}: use {', '.join(MEASURES)}")
    if not measures:
        raise ValueError("measures = []: give at least one of " + ", ".join(MEASURES))
    boards = _list(raw, "boards", str, [])
    for b in boards:
        if b not in BOARDS:
            raise ValueError(f"boards = {b!r}: use {', '.join(BOARDS)}")
    clocks = [float(c) for c in _list(raw, "clock_mhz", (int, float), [])]
    for c in clocks:
        if not 0 < c <= 1000:
            raise ValueError(f"clock_mhz = {c}: give a clock in (0, 1000] MHz")
    seeds = _list(raw, "seeds", int, [1])
    for s in seeds:
        if s < 0:
            raise ValueError(f"seeds = {s}: use non-negative nextpnr seeds")
    timeout = raw.get("pnr_timeout_min")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < math.inf):
        raise ValueError(f"pnr_timeout_min = {timeout!r}: give place and route's time limit "
                         f"per seed in minutes, a number more than 0")
    if "synth" in measures:
        if not boards:
            raise ValueError("measures has synth but boards is empty: name the boards")
        if not seeds:
            raise ValueError("seeds = []: synth needs at least one nextpnr seed")
    engines = [e for e in CONFIGS if e in raw]
    if not engines:
        raise ValueError(f"no engine section: add [{'] or ['.join(CONFIGS)}]")
    points = []
    for engine in engines:
        section = raw[engine]
        if not isinstance(section, dict):
            raise ValueError(f"{engine} = {section!r}: expected a [{engine}] table")
        points += _engine_points(engine, section, measures, boards, clocks or [0.0], seeds,
                                 None if timeout is None else float(timeout))
    if not points:
        raise ValueError("the spec's product is empty: no point to measure")
    return Sweep(tuple(points), tuple(boards), tuple(clocks), str(raw.get("description", "")))


def _engine_points(engine, section, measures, boards, clocks, seeds,
                   timeout=None) -> list[Point]:
    cls = CONFIGS[engine]
    fields = [f.name for f in dataclasses.fields(cls)]
    where = f"[{engine}] "
    unknown = sorted(set(section) - {*fields, "workloads"})
    if unknown:
        raise ValueError(f"{where}unknown axis {unknown[0]!r} (axes: {', '.join(fields)}, "
                         f"workloads)")
    loads = []
    for text in _list(section, "workloads", str, [], where):
        try:
            loads += [w for w in wl.expand(engine, text) if w not in loads]
        except ValueError as e:
            raise ValueError(f"{where}workloads: {e}") from None
    if not loads and any(m in measures for m in ("model", "rtl")):
        raise ValueError(f"{where}workloads = []: model and rtl measure workloads; give some")
    axes = {}
    for name in fields:
        if name not in section:
            continue
        if engine == "systolic" and name == "cols" and section[name] == "rows":
            continue
        kind = type(getattr(cls(), name))
        values = _list(section, name, kind, None, where)
        if not values:
            raise ValueError(f"{where}{name} = []: an empty axis leaves no point")
        axes[name] = values
    tie = engine == "systolic" and section.get("cols") == "rows"
    digest = hashlib.sha256("".join(wl.digest(w) for w in loads).encode()).hexdigest()[:16] \
        if any(w.startswith("image:") for w in loads) else ""
    names = list(axes)
    points = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(names, combo, strict=True))
        if tie:
            chosen["cols"] = chosen.get("rows", cls().rows)
        _check_config(engine, chosen, loads, where)
        key = tuple(sorted(chosen.items()))
        for measure in measures:
            if measure == "synth":
                points += [Point(measure, engine, key, tuple(loads), "", b, c, s, digest,
                                 timeout) for b in boards for c in clocks for s in seeds]
            else:
                points += [Point(measure, engine, key, tuple(loads), w, digest=digest)
                           for w in loads]
    return points


def _check_config(engine: str, axes: dict, loads: list, where: str) -> None:
    """Raise the config's own complaint about these axis values, naming them."""
    shown = ", ".join(f"{k} = {v!r}" for k, v in axes.items())
    try:
        if engine == "systolic":
            gemms = [g for w in loads for g in wl.gemms(w)]
            if gemms:
                config = SystolicConfig.fit(gemms, **axes)
                for gemm in gemms:
                    config.check_gemm(*gemm)
            else:
                SystolicConfig(**axes)
        else:
            # Depths are sized later (that needs the encoded layers); the accumulator grows
            # with them, so it is not what is checked here unless the spec sets it.
            EieConfig().replace(**{"acc_width": 64, **axes})
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}{shown}: {e}") from None
