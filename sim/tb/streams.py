"""valid/ready stream drivers shared by the cocotb testbenches, with random pauses.

Every testbench drives its streams through these classes, so random idle cycles on a
source and random backpressure on a sink are implemented once:

* :class:`Stalls` decides the random pauses: a probability per cycle and a seeded RNG;
* :class:`StreamSource` drives a stream from Python, one call for a list of beats;
* :class:`StreamSink` takes a number of beats with random backpressure;
* :class:`BeatSource` drives a stream through a harness's ``nnaccel_beat_source``
  (``sim/tb/beat_source.v``), which plays a hex file of beats with no Python per beat.

None of them runs Python every clock cycle while nothing can move: they wait on the edges
of ``valid``, ``ready`` or ``done``. Streams are found by the port names Amaranth
generates (``<name>__valid``, ``<name>__ready``, ``<name>__payload``); a beat source by
its ports ``<prefix>_start``, ``_count``, ``_stall``, ``_seed`` and ``_done``.
"""

import random
from pathlib import Path

from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["Stalls", "StreamSource", "StreamSink", "BeatSource"]


class Stalls:
    """Random pauses: each cycle a stream pauses with ``probability`` (0 never).

    One object may serve several streams of a testbench; they then draw from one
    sequence of ``rng`` (a :class:`random.Random`, seeded for repeatable runs).
    """

    def __init__(self, probability: float = 0.0, rng: random.Random | None = None):
        if not 0.0 <= probability < 1.0:
            raise ValueError(f"stall probability {probability}: use 0 <= p < 1")
        self.probability = probability
        self.rng = rng or random.Random(0)

    def pause(self) -> bool:
        """Whether this cycle is an idle (source) or not-ready (sink) cycle."""
        return self.probability > 0 and self.rng.random() < self.probability

    @property
    def threshold(self) -> int:
        """The probability in 256ths, as a beat source's ``stall`` port takes it."""
        return min(255, round(self.probability * 256))

    def seed(self) -> int:
        """A 16-bit seed for a beat source's random idle cycles."""
        return self.rng.getrandbits(16)


class StreamSource:
    """Drive ``<name>__valid`` / ``__payload`` of ``dut`` from Python, with random idles."""

    def __init__(self, dut, name: str, stalls: Stalls, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.stalls = stalls
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")

    def idle(self) -> None:
        self.valid.value = 0

    async def send(self, payloads) -> None:
        """Drive ``payloads`` one beat each, pausing at random; returns after the last
        beat's handshake edge. No Python runs per cycle while ``ready`` is low."""
        for value in payloads:
            while self.stalls.pause():
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = value
            while True:
                await ReadOnly()
                if int(self.ready.value):
                    await RisingEdge(self.clk)
                    break
                await RisingEdge(self.ready)
        self.valid.value = 0


class StreamSink:
    """Take beats from ``<name>__valid`` / ``__payload`` of ``dut``, with random
    backpressure on ``__ready``.

    ``last_time`` is the simulation time (ns) of the handshake edge of the last beat taken.
    """

    def __init__(self, dut, name: str, stalls: Stalls, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.stalls = stalls
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.last_time = None

    def idle(self) -> None:
        self.ready.value = 0

    async def receive(self, count: int) -> list[int]:
        """Take ``count`` beats; returns just after the last one's handshake edge, with
        ``ready`` low. Without stalls ``ready`` stays high and Python runs once per beat;
        no Python runs per cycle while ``valid`` is low."""
        got = []
        self.ready.value = 0 if self.stalls.probability else 1
        while len(got) < count:
            if not int(self.valid.value):
                await RisingEdge(self.valid)
                continue
            ready = 0 if self.stalls.pause() else 1
            self.ready.value = ready
            await ReadOnly()
            if ready and int(self.valid.value):
                got.append(int(self.payload.value))
            await RisingEdge(self.clk)
        self.last_time = get_sim_time("ns")
        self.ready.value = 0
        return got


class BeatSource:
    """A harness's ``nnaccel_beat_source`` (ports ``<prefix>_*``), which plays a hex file
    of beats onto its stream, up to one a cycle, idle at random as ``stalls`` says.

    The source reads ``file_name`` in the simulation's working directory (its ``FILE``
    parameter); :meth:`arm` links that name to the file to play.
    """

    def __init__(self, dut, prefix: str, file_name: str, stalls: Stalls, clk=None):
        self.clk = clk if clk is not None else dut.clk
        self.stalls = stalls
        self.file_name = file_name
        self.start = getattr(dut, f"{prefix}_start")
        self.count = getattr(dut, f"{prefix}_count")
        self.stall = getattr(dut, f"{prefix}_stall")
        self.seed = getattr(dut, f"{prefix}_seed")
        self.done = getattr(dut, f"{prefix}_done")

    def idle(self) -> None:
        self.start.value = 0

    def arm(self, path, count: int) -> None:
        """Start playing ``count`` beats of ``path`` at the next clock edge (the caller
        awaits it, then calls :meth:`idle`)."""
        link = Path.cwd() / self.file_name
        link.unlink(missing_ok=True)
        link.symlink_to(path)
        self.count.value = count
        self.stall.value = self.stalls.threshold
        self.seed.value = self.stalls.seed()
        self.start.value = 1

    async def wait_done(self) -> None:
        """Return once the last beat has been taken (``done`` high)."""
        await ReadOnly()
        if not int(self.done.value):
            await RisingEdge(self.done)

    async def play(self, path, count: int) -> None:
        """Play ``count`` beats of ``path`` and return when they have all been taken."""
        self.arm(path, count)
        await RisingEdge(self.clk)
        self.idle()
        await self.wait_done()
