"""IssueController in the Amaranth simulator: rows in tile order, only on latched tiles,
last-K-tile rows only with output room, banks held busy, counters; random latch times and
output room."""

import random

import pytest
from amaranth.sim import Simulator

from hw.systolic import SystolicConfig
from hw.systolic.issue_controller import IssueController

CFG = SystolicConfig(rows=2, cols=3, act_depth=64, weight_depth=64, acc_depth=16,
                     param_depth=8)
D = 9     # array latency: any positive value; the bank timing follows it


def _reference(m, k, n):
    """Every row (m, act_addr, nt, first, last, final, bank) in issue order, and its MACs."""
    kts, nts = -(-k // CFG.rows), -(-n // CFG.cols)
    rows = []
    for nt in range(nts):
        for kt in range(kts):
            for i in range(m):
                last = kt == kts - 1
                rows.append({"m": i, "act_addr": kt * m + i, "nt": nt, "first": kt == 0,
                             "last": last, "final": last and i == m - 1 and nt == nts - 1,
                             "bank": (nt * kts + kt) % 2,
                             "macs": min(k - kt * CFG.rows, CFG.rows) *
                             min(n - nt * CFG.cols, CFG.cols)})
    return rows


def _simulate(m, k, n, seed, latch_p, room_p):
    rng = random.Random(seed)
    dut = IssueController(CFG, array_latency=D)
    expected = _reference(m, k, n)
    tiles = len(expected) // m
    issued, log = [], {"w": 0, "o": 0, "cycles": 0}

    async def bench(ctx):
        ctx.set(dut.m, m)
        ctx.set(dut.k, k)
        ctx.set(dut.n, n)
        ctx.set(dut.check, 1)
        await ctx.tick()
        ctx.set(dut.check, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        latched = 0
        ready = []              # tiles latched (counted from the next cycle), not issued
        issues_of_bank = [[], []]
        room_before = 0
        for cycle in range(len(expected) * 8 + 200):
            full, idle = ctx.get(dut.tiles_full), ctx.get(dut.bank_idle)
            assert full == (len(ready) == 2)
            for b in range(2):
                recent = any(cycle - D - 2 <= s < cycle for s in issues_of_bank[b])
                assert (idle >> b & 1) == (not recent)
            # a loader: latches when allowed, at random times
            bank = latched % 2
            latch = (latched < tiles and not full and idle >> bank & 1 and
                     rng.random() < latch_p)
            ctx.set(dut.latched, latch)
            room = rng.random() < room_p
            ctx.set(dut.room, room)
            pending = len(issued) < len(expected)
            row = ctx.get(dut.row)
            if row.valid:
                assert ready, "row issued without a latched tile"
                want = expected[len(issued)]
                assert want["bank"] == ready[0] % 2 == row.bank
                if want["last"]:
                    assert room_before, "last-K-tile row issued without output room"
                got = {"m": row.m, "act_addr": ctx.get(dut.act_addr), "nt": row.nt,
                       "first": bool(row.first), "last": bool(row.last),
                       "final": bool(row.final), "bank": row.bank, "macs": want["macs"]}
                assert got == want
                issued.append(cycle)
                issues_of_bank[row.bank].append(cycle)
            elif pending:
                if not ready:
                    log["w"] += 1
                else:
                    # waits only for room, and only for a last-K-tile row
                    assert expected[len(issued)]["last"] and not room_before
                    log["o"] += 1
            if issued and cycle == issued[-1] + 1 and len(issued) == len(expected):
                assert ctx.get(dut.done)
            elif len(issued) < len(expected):
                assert not ctx.get(dut.done)
            room_before = room
            await ctx.tick()
            if row.valid and len(issued) % m == 0:
                ready.pop(0)
            if latch:
                ready.append(latched)
                latched += 1
        log["counters"] = ctx.get(dut.counters)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return expected, issued, log


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 3), (2, 5, 7), (4, 6, 4), (1, 4, 9)])
@pytest.mark.parametrize("seed,latch_p,room_p", [(0, 1.0, 1.0), (1, 0.3, 0.7), (2, 0.8, 0.2)])
def test_rows_in_order(shape, seed, latch_p, room_p):
    expected, issued, log = _simulate(*shape, seed, latch_p, room_p)
    assert len(issued) == len(expected)
    counters = log["counters"]
    assert counters.busy == len(expected)
    assert counters.useful_macs == sum(r["macs"] for r in expected)
    assert (counters.weight_stall, counters.output_stall) == (log["w"], log["o"])
    if latch_p == 1.0 and room_p == 1.0:
        # no gaps once the first tile is latched while the loader keeps two ahead
        m = shape[0]
        assert issued[-1] - issued[0] + 1 >= len(expected)
        assert issued[:m] == list(range(issued[0], issued[0] + m))
