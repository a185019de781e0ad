"""Run-time-loaded memories: no initial contents in the generated netlist.

Amaranth 0.5's RTLIL backend writes every memory's initial contents word by word (a
``$meminit_v2`` cell) even when they are all zero. The engines' buffers are always loaded
(or written before they are read) at run time, so those contents mean nothing, yet they
made large configurations convert for minutes into hundreds of megabytes of Verilog.

:func:`runtime_memory` makes a :class:`amaranth.lib.memory.Memory` marked as run-time
loaded; the backend hook installed on import skips the initial-contents cell of marked
memories whose contents are all zero. Unmarked memories are untouched. (The hook wraps one
method of Amaranth 0.5's RTLIL emitter; the version is pinned below 0.6.)
"""

from amaranth.back import rtlil
from amaranth.lib.memory import Memory

__all__ = ["MARK", "runtime_memory_attrs", "runtime_memory"]

#: Attribute that marks a memory whose contents are loaded at run time.
MARK = "nnaccel_runtime_loaded"


def runtime_memory_attrs() -> dict:
    return {MARK: 1}


def runtime_memory(shape, depth: int, *, attrs: dict | None = None) -> Memory:
    """A zero-initialised memory whose initial contents are left out of the netlist.

    ``attrs``: further attributes, e.g. synthesis intent (:mod:`hw.synthesis`).
    """
    return Memory(shape=shape, depth=depth, init=[],
                  attrs={**runtime_memory_attrs(), **(attrs or {})})


def _install():
    emitter = rtlil.ModuleEmitter
    if getattr(emitter.emit_memory, "_nnaccel_hook", False):
        return
    original = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if cell.attributes.get(MARK) and not any(cell.init):
            return None
        return original(self, cell_idx, cell)

    emit_memory._nnaccel_hook = True
    emitter.emit_memory = emit_memory


_install()
