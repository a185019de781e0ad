"""CommandCheck in the Amaranth simulator: commands taken only while idle, each good one
started and each bad one reported, at the documented latency."""

import random

import pytest
from amaranth.sim import Simulator

from hw.systolic import SystolicConfig
from hw.systolic.command_check import CommandCheck

CFG = SystolicConfig(rows=2, cols=3, act_depth=64, weight_depth=64, acc_depth=16,
                     param_depth=8)


def _good(c):
    return (1 <= c["m"] <= CFG.max_m and 1 <= c["k"] <= CFG.max_k and 1 <= c["n"] <= CFG.max_n
            and c["act_min"] <= c["act_max"])


def _command(rng):
    return {"m": rng.choice([0, 1, CFG.max_m, CFG.max_m + 1, rng.randrange(1 << 5)]),
            "k": rng.choice([0, 1, CFG.max_k, CFG.max_k + 1]),
            "n": rng.choice([0, 1, CFG.max_n, CFG.max_n + 1]),
            "input_zero_point": rng.randrange(-128, 128),
            "output_zero_point": rng.randrange(-128, 128),
            "act_min": rng.randrange(-128, 128), "act_max": rng.randrange(-128, 128)}


@pytest.mark.parametrize("seed,valid_p,run_cycles", [(0, 1.0, 0), (1, 0.5, 3), (2, 0.2, 10)])
def test_accept_check_start(seed, valid_p, run_cycles):
    rng = random.Random(seed)
    dut = CommandCheck(CFG)
    commands = [_command(rng) for _ in range(40)]
    events = []     # (kind, cycle, value)

    async def bench(ctx):
        queue, running_until, cycle, last_taken = list(commands), -1, 0, 0
        while queue or cycle < max(running_until, last_taken + dut.latency) + 3:
            running = cycle < running_until
            ctx.set(dut.running, running)
            valid = bool(queue) and rng.random() < valid_p
            ctx.set(dut.i_cmd.valid, valid)
            if queue:
                for name, value in queue[0].items():
                    ctx.set(dut.i_cmd.payload[name], value)
            ready = ctx.get(dut.i_cmd.ready)
            assert ready == (not running and not ctx.get(dut.accepting))
            if ctx.get(dut.start):
                events.append(("start", cycle, None))
                running_until = cycle + 1 + run_cycles
                cmd = {name: ctx.get(dut.cmd[name]) for name in commands[0]}
                assert cmd == done[-1]
            if ctx.get(dut.checking):
                events.append(("checking", cycle, None))
            events.append(("error", cycle, ctx.get(dut.error)))
            if valid and ready:
                events.append(("taken", cycle, None))
                last_taken = cycle
                done.append(queue.pop(0))
            await ctx.tick()
            cycle += 1

    done = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    taken = [c for kind, c, _ in events if kind == "taken"]
    starts = [c for kind, c, _ in events if kind == "start"]
    errors = {c: v for kind, c, v in events if kind == "error"}
    assert len(taken) == len(commands)
    assert [c for kind, c, _ in events if kind == "checking"] == [t + 2 for t in taken]
    assert starts == [t + dut.latency for t, c in zip(taken, commands, strict=True) if _good(c)]
    for t, c in zip(taken, commands, strict=True):
        assert errors[t + dut.latency + 1] == (not _good(c))
    assert any(_good(c) for c in commands) and not all(_good(c) for c in commands)
