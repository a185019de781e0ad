"""Synthesis, place and route and packing with the yowasp flow; the report it yields.

:func:`synthesize` builds a board's top level with one engine and reads back what the
tools measured: cell use from Yosys' statistics and nextpnr's utilisation, the achieved
Fmax of every clock from nextpnr's ``--report`` JSON, and its critical paths. A design
that does not fit raises ``ValueError`` naming the overflowing resource.

Placement is where the Fmax of a large ECP5 design is won or lost, and nextpnr's result
moves by 10–20 % with its seed alone. With several ``seeds`` the netlist is synthesized
once, placed and routed once per seed (``jobs`` at a time, each in ``seed-N/`` of the
build directory), and the build keeps the seed whose worst clock does best: its report,
timing log and bitstream are copied into the build directory; every seed's Fmax is in
:attr:`SynthReport.seed_fmax`.

A congested design can keep nextpnr's router busy for hours without converging, so a build
may bound each place-and-route run (``pnr_timeout``): a run still going then is killed and
the build fails with one line naming how far the router got (:func:`parse_router_state`).
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hw.synthesis import NO_COLLISION as NO_COLLISION_ATTR

from .engines import config_to_dict, make_adapter
from .platforms import Board, board, use_yowasp_tools
from .top import BoardTop
from .vivado import lint_tree

__all__ = ["SynthReport", "synthesize", "read_results", "parse_overflow", "parse_yosys_cells",
           "absorb_ram_output_registers", "parse_seeds", "best_seed", "parse_router_state",
           "router_progress", "FAMILY_CELLS"]

#: Per family: Yosys cell names counted as LUTs, FFs, DSPs, block RAMs, LUT RAM.
FAMILY_CELLS = {
    "ecp5": {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D", "ALU54B"),
             "bram": ("DP16KD",), "lutram": ("TRELLIS_DPR16X4",), "carry": ("CCU2C",)},
    "ice40": {"lut": ("SB_LUT4",), "ff": ("SB_DFF",), "dsp": ("SB_MAC16",),
              "bram": ("SB_RAM40_4K",), "lutram": (), "carry": ("SB_CARRY",)},
}
#: nextpnr cell types of the same resources (``used/available`` in its utilisation).
NEXTPNR_TYPES = {
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D",
             "bram": "DP16KD"},
    "ice40": {"lut": "ICESTORM_LC", "ff": "ICESTORM_LC", "dsp": "ICESTORM_DSP",
              "bram": "ICESTORM_RAM"},
}


@dataclass
class SynthReport:
    board: str
    device: str
    engine: str
    config: dict
    clock_mhz: float                         # the constraint on the design clock
    fmax_mhz: dict = field(default_factory=dict)        # clock -> achieved
    constraint_mhz: dict = field(default_factory=dict)  # clock -> target
    resources: dict = field(default_factory=dict)       # lut/ff/dsp/bram/lutram/carry
    utilisation: dict = field(default_factory=dict)     # nextpnr type -> [used, available]
    critical_path: list = field(default_factory=list)   # text lines from nextpnr
    bitstream: str | None = None
    build_dir: str = ""
    seconds: float = 0.0
    seed: int = 1                            # nextpnr's placement seed (the one kept)
    seed_fmax: dict = field(default_factory=dict)  # "seed" -> worst clock's Fmax (None: failed)

    @property
    def clock_met(self) -> bool:
        return bool(self.fmax_mhz) and all(
            self.fmax_mhz[c] >= self.constraint_mhz.get(c, 0) for c in self.fmax_mhz)

    def to_json(self) -> dict:
        d = asdict(self)
        d["clock_met"] = self.clock_met
        return d

    def text(self) -> str:
        r = self.resources
        lines = [f"{self.engine} on {self.board} ({self.device}), "
                 f"{self.seconds:.0f} s, build in {self.build_dir}",
                 f"  LUT4 {r.get('lut', 0)}  FF {r.get('ff', 0)}  carry {r.get('carry', 0)}  "
                 f"DSP {r.get('dsp', 0)}  BRAM {r.get('bram', 0)}  LUT-RAM {r.get('lutram', 0)}"]
        for cell, (used, avail) in sorted(self.utilisation.items()):
            lines.append(f"  {cell:<16} {used:>6} / {avail:<6} ({100 * used / avail:.0f} %)"
                         if avail else f"  {cell:<16} {used:>6}")
        for clock, f in sorted(self.fmax_mhz.items()):
            target = self.constraint_mhz.get(clock, 0)
            verdict = "met" if f >= target else "NOT met"
            lines.append(f"  Fmax {clock}: {f:.1f} MHz (target {target:.1f} MHz, {verdict})")
        if len(self.seed_fmax) > 1:
            tried = ", ".join(f"{s}: {'failed' if f is None else f'{f:.1f}'}"
                              for s, f in self.seed_fmax.items())
            lines.append(f"  seeds (MHz) {tried}; kept seed {self.seed}")
        lines += [f"  {line}" for line in self.critical_path[:3]]
        lines.append(f"  bitstream: {self.bitstream}")
        return "\n".join(lines)


def parse_yosys_cells(log: str, family: str) -> dict:
    """Counts per resource from Yosys' final statistics of the (flattened) top module."""
    start = log.rfind("=== top ===")
    stats = log[start:] if start >= 0 else log
    end = stats.find("===", len("=== top ==="))
    stats = stats[:end] if end > 0 else stats
    counts = {}
    for m in re.finditer(r"^\s+(\d+)\s+(?:[\d.]+\s+)?\$?([A-Za-z_0-9]+)\s*$|"
                         r"^\s+([A-Za-z_0-9$]+)\s+(\d+)\s*$", stats, re.M):
        if m.group(1):
            name, n = m.group(2), int(m.group(1))
        else:
            name, n = m.group(3).lstrip("$"), int(m.group(4))
        counts[name] = counts.get(name, 0) + n
    out = {}
    for resource, names in FAMILY_CELLS[family].items():
        out[resource] = sum(n for cell, n in counts.items()
                            if any(cell == nm or cell.startswith(nm + "_") or
                                   (nm == "SB_DFF" and cell.startswith("SB_DFF"))
                                   for nm in names))
    return out


_UTIL = re.compile(r"Info:\s+([A-Za-z_0-9]+):\s+(\d+)/\s*(\d+)\s+\d+%")


def parse_overflow(log: str) -> list[str]:
    """Resources nextpnr found over-used: ``["DSP (MULT18X18D) 200/156", ...]``; or, when
    none is but nextpnr found no legal placement, the fullest resource's use."""
    names = {"MULT18X18D": "DSP", "ICESTORM_DSP": "DSP", "DP16KD": "block RAM",
             "ICESTORM_RAM": "block RAM", "TRELLIS_COMB": "LUTs", "TRELLIS_FF": "FFs",
             "ICESTORM_LC": "logic cells (LUT/FF)", "TRELLIS_IO": "I/O", "SB_IO": "I/O",
             "ICESTORM_SPRAM": "SPRAM", "TRELLIS_RAMW": "LUT RAM"}
    over = []
    for cell, used, avail in _UTIL.findall(log):
        if int(used) > int(avail):
            over.append(f"{names.get(cell, cell)} ({cell}) {used}/{avail}")
    if not over and "Unable to find legal placement" in log:
        use = [(int(used) / int(avail), cell, used, avail)
               for cell, used, avail in _UTIL.findall(log) if int(avail)]
        if use:
            _, cell, used, avail = max(use)
            over.append(f"no legal placement with {names.get(cell, cell)} ({cell}) "
                        f"{used}/{avail} in use")
        else:
            over.append("no legal placement")
    return list(dict.fromkeys(over))


_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+)\s+wires=\d+\s+overused=(\d+)", re.M)
_ROUTER1_ROW = re.compile(r"^Info:\s+\d+\s*\|[\d\s]+\|[\d\s]+\|\s*(\d+)\s*\|", re.M)


def parse_router_state(log: str) -> tuple[int, int] | None:
    """router2's last iteration in a nextpnr log and the wires still overused after it:
    ``(26, 7053)`` for ``Info:     iter=26 wires=1088525 overused=7053 ...``; ``None``
    when router2 had finished no iteration."""
    found = _ROUTER2_ITER.findall(log)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def router_progress(log: str) -> str:
    """How far the nextpnr run that wrote ``log`` had got, for a run that was stopped:
    router2's last iteration and its overused wires, router1's arcs still to route, or
    that it was still placing (or routing, or packing)."""
    state = parse_router_state(log)
    if state:
        return (f"router2 at iteration {state[0]} still had {state[1]:,} overused wires "
                f"(congestion)")
    if "Program finished normally" in log:
        return "routed, still packing the bitstream"
    rows = _ROUTER1_ROW.findall(log)
    total = re.search(r"^Info: Routing (\d+) arcs\.", log, re.M)
    if rows and total:
        return f"router1 still had {int(rows[-1]):,} of {int(total.group(1)):,} arcs to route"
    if re.search(r"^Info: (Routing\.\.|Running router2)", log, re.M):
        return "still routing (no router iteration finished)"
    return "still placing" if "Info:" in log else "place and route had not started"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _kill_group(proc: subprocess.Popen, wait: float = 30.0) -> None:
    """Kill the process group ``proc`` leads (``sh`` and the tool it runs), reap ``proc``
    and wait (up to ``wait`` seconds) until the rest of the group has exited too: a killed
    nextpnr takes a moment to release its memory, and the caller may start another."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + wait
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (not a zombie), as far as
    ``/proc`` tells (where there is none: ``False``)."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":    # state, ppid, pgrp
            return True
    return False


def _run_bounded(args: list, cwd: Path, env: dict, out, timeout: float | None) -> int | None:
    """Run ``args`` in a session of its own; its exit code, or ``None`` when ``timeout``
    seconds passed first and it was killed. The group is killed on any way out (Ctrl-C
    included), since a new session no longer receives the terminal's signals."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return proc.returncode if proc.returncode >= 0 else None   # (it finished meanwhile)
    finally:
        if proc.returncode is None:
            _kill_group(proc)


def _critical_paths(log: str) -> list[str]:
    """One line per clock: the critical path's start and end cells, delay, logic/routing."""
    out, clock, cells = [], None, []
    for line in log.splitlines():
        head = re.search(r"Critical path report for clock '([^']+)'", line)
        if head:
            clock, cells = head.group(1), []
            if clock.startswith("$PACKER"):
                clock = None
            continue
        if clock is None:
            continue
        cell = re.search(r"\b(Source|Sink) (\S+)", line)
        if cell:
            cells.append(cell.group(2))
            continue
        split = re.search(r"([\d.]+) ns logic, ([\d.]+) ns routing", line)
        if split:
            logic, routing = float(split.group(1)), float(split.group(2))
            start = cells[0].rsplit(".", 1)[0] if cells else "?"
            end = cells[-1].rsplit(".", 1)[0] if cells else "?"
            out = [o for o in out if not o.startswith(f"critical path {clock}:")]
            out.append(f"critical path {clock}: {logic + routing:.2f} ns "
                       f"({logic:.2f} logic, {routing:.2f} routing) from {start} to {end}")
            clock = None
    return out


def _report_json(path: Path) -> tuple[dict, dict, dict]:
    report = json.loads(path.read_text())
    fmax, target = {}, {}
    for clock, v in report.get("fmax", {}).items():
        if clock.startswith("$PACKER"):      # nextpnr's constant nets, not a clock
            continue
        fmax[clock] = float(v["achieved"])
        target[clock] = float(v["constraint"])
    util = {cell: [int(v["used"]), int(v["available"])]
            for cell, v in report.get("utilization", {}).items() if int(v["used"])}
    return fmax, target, util


#: Largest nextpnr seed (a positive 31-bit integer) and most seeds one build sweeps.
MAX_SEED = (1 << 31) - 1
MAX_SEEDS = 64


def parse_seeds(spec: str) -> tuple[int, ...]:
    """``"3"``, ``"1-4"`` or ``"1,5,7"`` (or a mix) → the seeds, in order, once each."""
    seeds = []
    for part in str(spec).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"seed {part!r}: give a number, a range like 1-4, or a "
                             f"comma-separated list of those")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if first < 1 or last > MAX_SEED or last - first >= MAX_SEEDS:
            raise ValueError(f"seed {part!r}: nextpnr seeds are 1 to {MAX_SEED}, at most "
                             f"{MAX_SEEDS} of them")
        seeds += range(first, last + 1)
    if len(set(seeds)) > MAX_SEEDS:
        raise ValueError(f"--seed {spec!r}: at most {MAX_SEEDS} seeds per build")
    return tuple(dict.fromkeys(seeds))


def best_seed(results: dict) -> int | None:
    """The seed whose worst clock comes closest to (or furthest past) its constraint.

    ``results``: seed → (``fmax``, ``constraint``) dicts as in :class:`SynthReport`, or
    ``None`` for a seed whose place and route failed. Ties go to the earlier seed.
    """
    def score(item):
        fmax, target = item[1]
        return min(f / target[c] if target.get(c) else f for c, f in fmax.items())
    done = [(s, r) for s, r in results.items() if r is not None and r[0]]
    return max(done, key=score)[0] if done else None


def synthesize(board_name: str, engine: str, config, *, build_dir: Path,
               clock_mhz: float | None = None, baud: int = 115200,
               seeds=(1,), jobs: int = 1, progress=None,
               pnr_timeout: float | None = None) -> SynthReport:
    """Build ``engine`` with ``config`` for ``board_name``; return the measured report.

    ``seeds``: nextpnr seeds to place and route the one netlist with (``jobs`` runs at a
    time); the best is kept. ``progress``: called with a line of text after each seed.
    ``pnr_timeout``: seconds each place-and-route run (one per seed) may take; one still
    running then is killed and counts as a failed seed (``None``: no limit).

    Raises
    ------
    ValueError
        The design does not fit the device (the resource named).
    TimeoutError
        Every seed's place and route was killed at ``pnr_timeout`` or failed, and at least
        one was killed: one line with how far the router had got.
    OSError
        The toolchain is missing, or the flow failed otherwise.
    """
    if pnr_timeout is not None and not pnr_timeout > 0:
        raise ValueError(f"pnr_timeout {pnr_timeout}: give place and route a positive time "
                         f"limit in seconds, or None for no limit")
    b: Board = board(board_name)
    env = use_yowasp_tools(b)
    build_dir = Path(build_dir)
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("no nextpnr seed given: give at least one")
    seed = seeds[0]
    key = _build_key(b, engine, config, clock_mhz, baud, seeds)
    stamp = build_dir / "nnaccel-build.json"
    if b.builds_here and stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved.get("key") == key:            # same design and sources: reuse the build
            report = SynthReport(**saved["report"])
            return read_results(report, b.family)
    platform = b.make_platform()
    top = BoardTop(b, make_adapter(engine, config), clock_mhz=clock_mhz, baud=baud)
    build_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    kwargs = {}
    if b.builds_here:
        # An unmet clock is a figure to report, not a failed build.
        kwargs["nextpnr_opts"] = (f"--report report.json --detailed-timing-report "
                                  f"{_nextpnr_opts(b, seed)}")
    if b.family == "ice40":
        kwargs["synth_opts"] = "-dsp"          # multipliers into SB_MAC16
    if b.builds_here:
        kwargs["script_after_read"] = _INTENT_PLACEHOLDER
    plan = platform.prepare(top, "top", **kwargs)
    if b.builds_here:
        plan.files["top.ys"] = plan.files["top.ys"].replace(
            _INTENT_PLACEHOLDER, _yosys_after_read(plan.files["top.il"]))
    plan.extract(build_dir)
    report = SynthReport(board=b.name, device=f"{platform.device}", engine=engine,
                         config=config_to_dict(config), clock_mhz=top.clock_mhz,
                         build_dir=str(build_dir), seed=seed)
    if not b.builds_here:
        lint = lint_tree(build_dir)
        if lint.returncode:
            errors = [line for line in lint.stderr.splitlines() if "%Error" in line]
            raise OSError(f"the {b.name} build tree's Verilog fails Verilator's lint: "
                          f"{errors[0] if errors else lint.stderr[-300:]}")
        report.seconds = time.monotonic() - start
        return report
    log_path = build_dir / "synth.log"
    with open(log_path, "w") as log:
        done, report.seed, report.seed_fmax, stopped = _run_flow(
            build_dir, b.family, env, log, seeds, jobs, progress, pnr_timeout)
    report.seconds = time.monotonic() - start
    pnr_log = (build_dir / "top.tim").read_text() if (build_dir / "top.tim").exists() else ""
    # Yosys writes its own errors (a failed assertion, say) into its report, not the log.
    rpt = build_dir / "top.rpt"
    yosys_errors = "\n".join(line for line in rpt.read_text(errors="replace").splitlines()
                             if line.startswith("ERROR")) if rpt.exists() else ""
    full_log = "\n".join([log_path.read_text(), pnr_log, yosys_errors])
    if done.returncode:
        over = parse_overflow(full_log)
        if over:
            raise ValueError(f"{engine} {_short(config)} does not fit the {platform.device}: "
                             f"{', '.join(over)} — choose a smaller config")
        if stopped:
            raise TimeoutError(_timeout_message(engine, config, platform.device, pnr_timeout,
                                                seeds, stopped))
        tail = " | ".join(line.strip() for line in full_log.splitlines()
                          if "ERROR" in line or "error" in line.lower())[-400:]
        raise OSError(f"the {b.name} flow failed ({tail or 'see log'}); log: {log_path}")
    read_results(report, b.family)
    if not report.seed_fmax and report.fmax_mhz:
        report.seed_fmax = {str(seed): min(report.fmax_mhz.values())}
    stamp.write_text(json.dumps({"key": key, "report": {
        k: v for k, v in asdict(report).items()
        if k in ("board", "device", "engine", "config", "clock_mhz", "build_dir", "seconds",
                 "seed", "seed_fmax")}}))
    return report


def _timeout_message(engine, config, device, timeout, seeds, stopped: dict) -> str:
    """One line for a build whose every seed failed, some killed at ``timeout``."""
    if len(seeds) == 1:
        where = stopped[seeds[0]]
    else:
        where = "; ".join(f"seed {s}: {stopped.get(s, 'failed')}" for s in seeds)
    return (f"{engine} {_short(config)} was not placed and routed on the {device} within "
            f"{_duration(timeout)}: {where} — give a longer --pnr-timeout (in a sweep spec, "
            f"pnr_timeout_min) or choose a smaller config")


def _tool_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _run_flow(build_dir: Path, family: str, env: dict, log, seeds=(1,), jobs=1,
              progress=None, pnr_timeout=None):
    """The generated build script: synthesis, then (on the ECP5) the netlist's block-RAM
    read registers moved into the RAMs, then place and route and packing — once, or once
    per seed, each killed after ``pnr_timeout`` seconds. Returns the process's result, the
    seed kept, every seed's Fmax (empty with one seed: the caller reads it from the
    report), and seed → how far the router got, for each seed killed at the timeout."""
    script = (build_dir / "build_top.sh").read_text().splitlines()
    split = next((i for i, line in enumerate(script) if line.startswith('"$YOSYS"')), None)
    (build_dir / "top.tim").unlink(missing_ok=True)    # a stale log would misreport progress
    if split is None:
        code = _run_bounded(["sh", "build_top.sh"], build_dir, env, log, pnr_timeout)
        return _single(code, build_dir, seeds[0])
    header = [line for line in script[:split] if not line.startswith('"$')]
    pnr = header + script[split + 1:]
    for name, lines in (("build_synth.sh", script[:split + 1]), ("build_pnr.sh", pnr)):
        (build_dir / name).write_text("\n".join(lines) + "\n")
    done = subprocess.run(["sh", "build_synth.sh"], cwd=build_dir, env=env, stdout=log,
                          stderr=subprocess.STDOUT)
    if done.returncode:
        return done, seeds[0], {}, {}
    if family == "ecp5":
        netlist_path = build_dir / "top.json"
        netlist = json.loads(netlist_path.read_text())
        moved = absorb_ram_output_registers(netlist)
        netlist_path.write_text(json.dumps(netlist))
        log.write(f"nnaccel: {moved} block-RAM read registers moved into their RAMs\n")
        log.flush()
    if len(seeds) == 1:
        code = _run_bounded(["sh", "build_pnr.sh"], build_dir, env, log, pnr_timeout)
        return _single(code, build_dir, seeds[0])
    return _run_seeds(build_dir, pnr, env, log, seeds, jobs, progress, pnr_timeout)


def _single(code: int | None, build_dir: Path, seed: int):
    if code is None:
        return (subprocess.CompletedProcess([], 1), seed, {},
                {seed: router_progress(_tool_log(build_dir / "top.tim"))})
    return subprocess.CompletedProcess([], code), seed, {}, {}


#: Place-and-route outputs copied from the kept seed's directory into the build directory.
_PNR_OUTPUTS = ("report.json", "top.tim", "top.config", "top.bit", "top.svf", "top.asc",
                "top.bin")


def _run_seeds(build_dir: Path, pnr: list, env: dict, log, seeds, jobs, progress,
               pnr_timeout=None):
    inputs = [p.name for p in build_dir.iterdir()
              if p.name == "top.json" or p.suffix in (".lpf", ".pcf")]
    procs, started, results, stopped, pending = {}, {}, {}, {}, list(seeds)
    try:
        while pending or procs:
            while pending and len(procs) < max(1, jobs):
                s = pending.pop(0)
                d = build_dir / f"seed-{s}"
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                for name in inputs:        # (hard links: yowasp's tools see only their cwd)
                    try:
                        os.link(build_dir / name, d / name)
                    except OSError:
                        shutil.copyfile(build_dir / name, d / name)
                (d / "build_pnr.sh").write_text("\n".join(
                    re.sub(r"--seed \d+", f"--seed {s}", line) for line in pnr) + "\n")
                with open(d / "pnr.log", "w") as out:
                    procs[s] = subprocess.Popen(["sh", "build_pnr.sh"], cwd=d, env=env,
                                                stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True)
                started[s] = time.monotonic()
            finished = next((s for s, p in procs.items() if p.poll() is not None), None)
            if finished is None and pnr_timeout is not None:
                finished = next((s for s in procs
                                 if time.monotonic() - started[s] > pnr_timeout), None)
                if finished is not None:
                    _kill_group(procs[finished])
                    if procs[finished].returncode < 0:     # (not finished meanwhile)
                        stopped[finished] = router_progress(
                            _tool_log(build_dir / f"seed-{finished}" / "top.tim"))
            if finished is None:
                time.sleep(0.5)
                continue
            code = procs.pop(finished).returncode
            d = build_dir / f"seed-{finished}"
            results[finished] = (_report_json(d / "report.json")[:2]
                                 if finished not in stopped and code == 0
                                 and (d / "report.json").exists() else None)
            fmax = min(results[finished][0].values()) if results[finished] else None
            if finished in stopped:
                line = (f"seed {finished}: not placed and routed within "
                        f"{_duration(pnr_timeout)} ({stopped[finished]})")
            else:
                line = f"seed {finished}: " + (f"{fmax:.1f} MHz" if fmax else
                                               f"place and route failed (see {d / 'pnr.log'})")
            log.write(f"nnaccel: {line}\n")
            log.flush()
            if progress:
                progress(line)
    finally:
        for p in procs.values():       # interrupted: no seed's nextpnr outlives the build
            _kill_group(p)
    seed_fmax = {str(s): (min(results[s][0].values()) if results[s] else None) for s in seeds}
    kept = best_seed({s: results[s] for s in seeds})
    for s in seeds:                 # every seed's log, for the overflow and error reports
        log.write(f"nnaccel: ---- seed {s} ----\n"
                  f"{(build_dir / f'seed-{s}' / 'pnr.log').read_text()}")
        tim = build_dir / f"seed-{s}" / "top.tim"
        if kept is None and tim.exists():
            log.write(tim.read_text())
    log.flush()
    if kept is None:
        return subprocess.CompletedProcess([], 1), seeds[0], seed_fmax, stopped
    for name in _PNR_OUTPUTS:
        src = build_dir / f"seed-{kept}" / name
        if src.exists():
            shutil.copyfile(src, build_dir / name)
    return subprocess.CompletedProcess([], 0), kept, seed_fmax, stopped


def absorb_ram_output_registers(netlist: dict) -> int:
    """Move flip-flops that register a ``DP16KD``'s read data into the RAM (``OUTREG``).

    nextpnr rates a read without the RAM's output register at 5.8 ns from clock to data,
    so even a flip-flop placed next to the RAM barely fits 150 MHz; Yosys never uses that
    register. A side (A or B; both together in the 36-bit pseudo dual-port mode) is
    converted when every one of its data outputs that is used drives exactly one
    flip-flop, on the RAM's clock, without enable or reset: the flip-flop goes, its output
    net is driven by the RAM, and the side's ``REGMODE`` becomes ``OUTREG`` (with the
    output enable on). The cycle behaviour is the same. Returns the flip-flops moved.
    """
    module = next(iter(m for m in netlist["modules"].values()
                       if m.get("attributes", {}).get("top")), None)
    if module is None:
        return 0
    cells = module["cells"]
    sinks: dict = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "input":
                for bit in bits:
                    sinks.setdefault(bit, []).append((name, port))
    for port in module.get("ports", {}).values():
        if port["direction"] != "input":
            for bit in port["bits"]:
                sinks.setdefault(bit, []).append((None, None))

    def plain_register(bit, clock):
        users = sinks.get(bit, [])
        if len(users) != 1 or users[0][1] != "DI":
            return None
        ff = cells[users[0][0]]
        p, c = ff["parameters"], ff["connections"]
        if ff["type"] != "TRELLIS_FF" or c.get("CLK") != clock:
            return None
        if p.get("CLKMUX", "CLK").strip() != "CLK":
            return None
        if p.get("CEMUX", "1").strip() != "1" and c.get("CE", ["1"]) != ["1"]:
            return None
        if c.get("LSR", ["0"]) != ["0"]:
            return None
        return users[0][0]

    moved = 0
    for cell in list(cells.values()):
        if cell["type"] != "DP16KD":
            continue
        conn, params = cell["connections"], cell["parameters"]
        pdp = int(str(params.get("DATA_WIDTH_A", "0")), 2) == 36
        if conn.get("CLKA") != conn.get("CLKB") and pdp:
            continue
        groups = [("A", "B")] if pdp else [("A",), ("B",)]
        for sides in groups:
            clock = conn.get("CLKB" if pdp else f"CLK{sides[0]}")
            outputs = [(port, conn[port][0]) for side in sides for port in conn
                       if port.startswith(f"DO{side}") and conn[port][0] in sinks]
            registers = {port: plain_register(bit, clock) for port, bit in outputs}
            if not registers or None in registers.values():
                continue
            for port, ff_name in registers.items():
                conn[port] = cells.pop(ff_name)["connections"]["Q"]
                moved += 1
            for side in sides:
                params[f"REGMODE_{side}"] = "OUTREG"
                conn[f"OCE{side}"] = ["1"]
    return moved


#: Where the intent read from the netlist goes in Yosys's script (see intent_commands).
_INTENT_PLACEHOLDER = "# nnaccel: synthesis intent"


def intent_commands(rtlil: str) -> list[str]:
    """Yosys commands that carry out the synthesis intent the generators put on the netlist
    as attributes (:mod:`hw.synthesis`); no engine's hierarchy is named here.

    - A memory marked :data:`~hw.synthesis.NO_COLLISION` gets "don't care on collision" on
      its read ports. Yosys honours that attribute only when it builds a synchronous port
      out of a flip-flop; Amaranth's ports are synchronous already. Without it, Yosys adds
      bypass logic after the block RAM's output, which nextpnr rates at 5.8 ns
      clock-to-output on the ECP5: any logic there misses 150 MHz.
    - A flip-flop that drives a kept wire (:func:`~hw.synthesis.keep_copy`) is kept, so
      Yosys does not merge deliberate copies of one signal into one flip-flop that drives
      loads all over the chip (``%a``: a register's output is often a wire that the kept
      one only aliases).
    - ``fsm_encoding`` on a state signal needs no command: Yosys's ``fsm`` pass reads it.
    """
    commands, module, attrs = [], None, set()
    for line in rtlil.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "module":
            module, attrs = words[1].lstrip("\\"), set()
        elif words[0] == "attribute":
            attrs.add(words[1].lstrip("\\"))
            continue
        elif words[0] == "memory" and NO_COLLISION_ATTR in attrs:
            name = words[-1]
            commands.append(f"setparam -set COLLISION_X_MASK 1 {module}/r:MEMID={name} "
                            "t:$memrd_v2 %i")
        attrs = set()
    if re.search(r"^\s*attribute \\keep 1$", rtlil, re.M):
        commands.append("setattr -set keep 1 w:* a:keep %i %a %ci1 t:$dff %i")
    return commands


def _yosys_after_read(rtlil: str) -> str:
    return "\n".join(["proc", *intent_commands(rtlil)])


def _nextpnr_opts(b: Board, seed: int) -> str:
    """nextpnr options besides the report: a fixed seed, and an unmet clock is a figure.

    On the ECP5, router2: router1 spent over 45 minutes without converging on the systolic
    8x8 (DSP-dense) design that router2 routes in minutes. And a placer that weighs timing
    more (HeAP timing weight 40 instead of 10, criticality exponent 4 instead of 2): on
    the same systolic 8x8 netlist, 126.4 MHz and 39 endpoints failing 150 MHz instead of
    110.4 MHz and 263.
    """
    opts = f"--seed {seed} --timing-allow-fail"
    if b.family == "ecp5":
        opts += " --router router2 --placer-heap-timingweight 40 --placer-heap-critexp 4"
    return opts


def _short(config) -> str:
    d = asdict(config)
    keys = [k for k in ("rows", "cols", "pes") if k in d]
    return "(" + ", ".join(f"{k}={d[k]}" for k in keys) + ", ...)"


def _build_key(b: Board, engine, config, clock_mhz, baud, seeds) -> str:
    """Hash of everything that determines a build: arguments, hw/ and boards/ sources."""
    h = hashlib.sha256(repr((b.name, engine, config, clock_mhz, baud, tuple(seeds),
                             _nextpnr_opts(b, seeds[0]), _INTENT_PLACEHOLDER)).encode())
    root = Path(__file__).resolve().parent.parent
    for path in sorted([*(root / "hw").rglob("*.py"), *(root / "boards").glob("*.py")]):
        if path.name not in ("commands.py", "host.py", "run.py", "engines.py", "synth.py"):
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def read_results(report: SynthReport, family: str) -> SynthReport:
    """Fill ``report`` from the logs and nextpnr's report in ``report.build_dir``."""
    build_dir = Path(report.build_dir)
    report.resources = parse_yosys_cells((build_dir / "top.rpt").read_text(), family)
    report.fmax_mhz, report.constraint_mhz, report.utilisation = \
        _report_json(build_dir / "report.json")
    report.critical_path = _critical_paths((build_dir / "top.tim").read_text())
    bit = build_dir / ("top.bit" if family == "ecp5" else "top.bin")
    report.bitstream = str(bit) if bit.exists() else None
    return report
