"""Leading-non-zero detector tree: merges the PEs' non-zero activations into one broadcast."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["NonZeroTree"]


class NonZeroTree(wiring.Component):
    """A tree of 4-input nodes, as EIE's (21 nodes for 64 PEs).

    Every node holds one registered (index, value) pair and takes a new one from its
    children each cycle, round-robin among the valid ones, so the root delivers one
    non-zero activation per cycle while any leaf has one. A second (skid) register per
    node makes the ready a node gives its children a register: a stall at the root
    reaches the leaves one level per cycle instead of through one long path.

    Parameters
    ----------
    layout:
        Payload layout of the streams.
    count:
        Number of leaves (PEs).

    Members
    -------
    i: In(stream.Signature(layout)).array(count)
        Each PE's non-zero activations.
    o: Out(stream.Signature(layout))
        The broadcast.
    empty: Out(1)
        No node holds an activation.
    """

    FAN_IN = 4

    def __init__(self, layout, count: int):
        if count < 1:
            raise ValueError(f"NonZeroTree count={count}: use at least 1 leaf")
        self._layout = layout
        self._count = count
        super().__init__({
            "i": In(stream.Signature(layout)).array(count),
            "o": Out(stream.Signature(layout)),
            "empty": Out(1),
        })

    @property
    def nodes(self) -> int:
        n, total = self._count, 0
        while n > 1:
            n = -(-n // self.FAN_IN)
            total += n
        return total

    @property
    def latency(self) -> int:
        """Register stages from a leaf to the root."""
        n, levels = self._count, 0
        while n > 1:
            n = -(-n // self.FAN_IN)
            levels += 1
        return levels

    def elaborate(self, platform):
        m = Module()
        level = list(self.i)
        valids = []
        depth = 0
        while len(level) > 1:
            parents = []
            for g in range(0, len(level), self.FAN_IN):
                parent, skid_valid = self._node(m, level[g:g + self.FAN_IN],
                                                f"n{depth}_{g // self.FAN_IN}")
                parents.append(parent)
                valids += [parent.valid, skid_valid]
            level = parents
            depth += 1
        root = level[0]
        m.d.comb += [
            self.o.valid.eq(root.valid),
            self.o.payload.eq(root.payload),
            root.ready.eq(self.o.ready),
            self.empty.eq(~_any(valids) if valids else 1),
        ]
        return m

    def _node(self, m, children, name):
        out = stream.Signature(self._layout).create(path=(name,))
        k = len(children)
        rr = Signal(range(k), name=f"{name}_rr")
        grant = Signal(range(k), name=f"{name}_grant")
        found = Signal(name=f"{name}_found")
        # A skid register behind the output: the children see a registered ready, so no
        # ready path runs from the root down to the PEs.
        skid_valid = Signal(name=f"{name}_skid_valid")
        skid = Signal(self._layout, name=f"{name}_skid")
        with m.Switch(rr):
            for r in range(k):
                with m.Case(r):
                    for o in range(k):
                        idx = (r + o) % k
                        with (m.If if o == 0 else m.Elif)(children[idx].valid):
                            m.d.comb += [grant.eq(idx), found.eq(1)]
        payload = children[0].payload.as_value()
        for idx in range(1, k):
            payload = Mux(grant == idx, children[idx].payload.as_value(), payload)
        take = Signal(name=f"{name}_take")
        m.d.comb += take.eq(~skid_valid & found)
        for idx, child in enumerate(children):
            m.d.comb += child.ready.eq(~skid_valid & (grant == idx))
        with m.If(take):
            m.d.sync += rr.eq(Mux(grant == k - 1, 0, grant + 1))
        out_free = ~out.valid | out.ready
        with m.If(out_free):
            with m.If(skid_valid):
                m.d.sync += [out.valid.eq(1), out.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out.valid.eq(take), out.payload.eq(payload)]
        with m.Elif(take):
            m.d.sync += [skid_valid.eq(1), skid.eq(payload)]
        return out, skid_valid

def _any(signals):
    result = signals[0]
    for s in signals[1:]:
        result = result | s
    return result
