"""Run-time-loaded memories: no initial contents in the generated netlist.

Amaranth 0.5's RTLIL backend writes every memory's initial contents bit by bit (a
``$meminit_v2`` cell), even when they are all zero. The EIE engine's memories hold up to
16384 × 64 bits per PE and are always loaded (or, for the accumulators, cleared after
reset) before use, so their initial contents are meaningless; writing them made the
64-PE conversion run for more than ten minutes and the Verilog hundreds of megabytes.

:func:`runtime_memory_attrs` marks a memory; the backend hook installed here skips the
initial-contents cell of marked memories whose initial contents are all zero (unmarked
memories, e.g. other engines', are untouched).
"""

from amaranth.back import rtlil

__all__ = ["MARK", "runtime_memory_attrs"]

#: Attribute that marks a memory whose contents are loaded at run time.
MARK = "nnaccel_runtime_loaded"


def runtime_memory_attrs() -> dict:
    return {MARK: 1}


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
