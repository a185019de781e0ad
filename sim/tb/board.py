"""cocotb testbench of the simulated board: :class:`boards.core.BoardCore` under Verilator.

A bit-level UART model drives ``rx`` and decodes ``tx``; :class:`SimUartTransport` hands it
to the host driver (:class:`boards.host.BoardClient`), which runs unchanged in a
:func:`cocotb.task.bridge` thread and blocks on the simulation through
:func:`cocotb.task.resume`. Parameters (:func:`sim.rtl.job_params`): ``engine``,
``config``, ``divisor``, ``timeout_cycles``, ``job`` (an ``.npz`` of the job's arrays).
The job's outputs go back to the caller; the testbench holds no expected values.
"""

from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge

from boards.engines import engine_config, run_job
from boards.host import BoardClient
from boards.protocol import Command, Status, encode_request
from quantize.board import run_image_on_board
from quantize.image import load_image
from sim.rtl import job_params, write_result

__all__ = ["SimUart", "SimUartTransport"]


class SimUart:
    """8N1 at ``divisor`` clocks per bit on ``dut.rx`` (driven) and ``dut.tx`` (decoded)."""

    def __init__(self, dut, divisor: int):
        self.dut, self.divisor = dut, divisor
        self.received = deque()
        dut.rx.value = 1

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        cocotb.start_soon(self._monitor())

    async def send(self, data: bytes):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.divisor)

    async def _monitor(self):
        dut, d = self.dut, self.divisor
        while True:
            await FallingEdge(dut.tx)
            await ClockCycles(dut.clk, d // 2)
            if int(dut.tx.value):
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(dut.clk, d)
                byte |= int(dut.tx.value) << i
            await ClockCycles(dut.clk, d)
            assert int(dut.tx.value) == 1, "board sent a byte without a stop bit"
            self.received.append(byte)

    async def receive(self, n: int, timeout_cycles: int) -> bytes:
        waited = 0
        step = self.divisor * 10
        while len(self.received) < n and waited < timeout_cycles:
            await ClockCycles(self.dut.clk, step)
            waited += step
        return bytes(self.received.popleft() for _ in range(min(n, len(self.received))))


class SimUartTransport:
    """The host driver's transport over :class:`SimUart`; call only from a bridge thread."""

    def __init__(self, uart: SimUart, timeout_cycles: int):
        self._uart = uart
        self._timeout = timeout_cycles
        self.write = resume(uart.send)
        self._receive = resume(uart.receive)

    def read(self, n: int) -> bytes:
        return self._receive(n, self._timeout)

    def reset_input(self) -> None:
        self._uart.received.clear()


async def _setup(dut):
    params = job_params()
    uart = SimUart(dut, params["divisor"])
    await uart.start()
    # Host timeout: a reply longer than any job's run, in simulated cycles.
    transport = SimUartTransport(uart, params.get("host_timeout_cycles", 2_000_000))
    return params, uart, transport


@cocotb.test()
async def test_job(dut):
    """Run one job through the host driver; return outputs, cycles and counters."""
    params, _, transport = await _setup(dut)
    config = engine_config(params["engine"], params["config"])
    arrays = dict(np.load(params["job"]))
    if params["engine"] == "eie":      # the job file holds beats as hex text (wider than int64)
        arrays = {"beats": [int(b, 16) for b in arrays["beats"]],
                  "program": [{"payload": int(c, 16), "emit": int(e), "rows": int(r),
                               "out_features": int(o)}
                              for c, e, r, o in zip(arrays["cmds"], arrays["emits"],
                                                    arrays["rows"], arrays["out_features"],
                                                    strict=True)]}

    def host():
        return run_job(params["engine"], config, BoardClient(transport), arrays)

    result = await bridge(host)()
    write_result({"y": np.asarray(result["y"]).tolist(), "cycles": int(result["cycles"]),
                  "counters": result["counters"]})


@cocotb.test()
async def test_errors(dut):
    """Corrupted and truncated frames over the UART: error replies, then the link works."""
    params, uart, transport = await _setup(dut)
    replies = {}
    good = encode_request(Command.INFO)

    def host():
        client = BoardClient(transport)
        for name, frame in (("bad_crc", good[:-1] + bytes([good[-1] ^ 1])),
                            ("truncated", encode_request(Command.READ, bytes(6))[:-2]),
                            ("bad_command", encode_request(0x33))):
            transport.write(frame)
            status, payload = client._receive()
            replies[name] = Status(status).name
        replies["info_after"] = client.info()[0]

    await bridge(host)()
    write_result(replies)


@cocotb.test()
async def test_image(dut):
    """``nnaccel board run``'s code path: a compressed net's image, layer by layer."""
    params, _, transport = await _setup(dut)
    image = load_image(params["image"])
    x = np.load(params["x"])

    def host():
        return run_image_on_board(image, x, BoardClient(transport))

    result = await bridge(host)()
    write_result({"raw": np.asarray(result["raw"]).tolist(), "cycles": result["cycles"],
                  "layer_cycles": result["layer_cycles"]})
