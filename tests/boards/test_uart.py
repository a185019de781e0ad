"""UART transmitter → receiver loopback in Amaranth's simulator."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from boards.uart import UARTReceiver, UARTTransmitter, uart_divisor


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [random.Random(divisor).randrange(256) for _ in range(20)] + [0x00, 0xFF]
    got = []

    async def producer(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload, error = await ctx.tick().sample(rx.o.valid, rx.o.payload,
                                                                  rx.framing_error)
            assert not error
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * divisor * 10 * (len(data) + 3))
    assert got == data


def test_divisor_errors():
    assert uart_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match="too fast"):
        uart_divisor(1e6, 1_000_000)
    with pytest.raises(ValueError, match="within 2 %"):
        uart_divisor(12e6, 2_500_000)
