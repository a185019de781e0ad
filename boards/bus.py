"""The word bus between the frame link and an engine adapter, and the adapter contract.

An engine plugs into a board by way of an adapter component with the members of
:class:`EngineSignature` and two Python attributes: ``spaces`` (the :class:`Space` list the
link may address; one of them must be the counters space, id ``COUNTERS_SPACE``) and
``info`` (constant words the ``INFO`` command returns: engine id and config).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BusSignature", "EngineSignature", "ENGINE_IDS"]

#: Engine id words in ``INFO`` replies.
ENGINE_IDS = {"mac": 1, "systolic": 2, "eie": 3}


class BusSignature(wiring.Signature):
    """Word bus, from the master's view: one access per cycle, read data two cycles later.

    The master holds ``space`` and ``addr`` steady from ``r_en`` until it takes ``r_data``,
    so a slave may register its read data (or answer in one cycle and hold it).

    Members
    -------
    space : Out(8)
    addr : Out(24)
        Word address within ``space``.
    w_en, w_data : Out(1), Out(32)
    r_en : Out(1)
    r_data : In(32)
        Valid the second cycle after ``r_en``.
    """

    def __init__(self):
        super().__init__({
            "space": Out(8), "addr": Out(24),
            "w_en": Out(1), "w_data": Out(32),
            "r_en": Out(1), "r_data": In(32),
        })


class EngineSignature(wiring.Signature):
    """What an engine adapter offers: the bus (as slave), ``start`` and a ``done`` pulse."""

    def __init__(self):
        super().__init__({
            "bus": In(BusSignature()),
            "start": In(1),
            "done": Out(1),
        })
