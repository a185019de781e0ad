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


def _simulate(shapes, seed, latch_p, room_p, act_p=None, act_delay=0):
    """Run the GEMMs ``shapes`` back to back. ``act_p``: None, every GEMM's activation
    words are written before its command; else one is written (in address order) with
    probability ``act_p`` a cycle, from ``act_delay`` cycles after the command's start."""
    rng = random.Random(seed)
    dut = IssueController(CFG, array_latency=D)
    gemms = []

    async def bench(ctx):
        cycle = 0
        issues_of_bank = [[], []]       # over every GEMM: a bank stays busy across them

        async def tick(write=None):
            nonlocal cycle
            ctx.set(dut.act_write, write is not None)
            ctx.set(dut.act_write_addr, write or 0)
            await ctx.tick()
            cycle += 1

        for m, k, n in shapes:
            expected = _reference(m, k, n)
            words = -(-k // CFG.rows) * m
            written = []        # the cycle of each activation word's write, by address
            if act_p is None:
                for addr in range(words):
                    written.append(cycle)
                    await tick(addr)
            ctx.set(dut.m, m)
            ctx.set(dut.k, k)
            ctx.set(dut.n, n)
            ctx.set(dut.check, 1)
            await tick()
            ctx.set(dut.check, 0)
            ctx.set(dut.start, 1)
            await tick()
            ctx.set(dut.start, 0)
            first = cycle
            issued, log = [], {"w": 0, "o": 0}
            await _run(ctx, dut, tick, lambda: cycle, expected, m, issued, log, written,
                       words, rng, latch_p, room_p, act_p, first + act_delay,
                       issues_of_bank)
            gemms.append((expected, issued, log))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return gemms


async def _run(ctx, dut, tick, now, expected, m, issued, log, written, words, rng, latch_p,
               room_p, act_p, act_from, issues_of_bank):
    """One GEMM from its start to its counters, checking every cycle."""
    tiles = len(expected) // m
    latched = 0
    ready = []              # tiles latched (counted from the next cycle), not issued
    room_before = 0
    need = None             # the last activation word the gate asked for a cycle ago
    for _ in range(len(expected) * 8 + 40 * words + 200):
        cycle = now()
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
        # The documented gate, judged a cycle ahead: the row pending then and the one after
        # it (unless it ended its pass: the next is word 0 then), written two cycles before.
        if pending:
            want = expected[len(issued)]
            end = want["m"] == m - 1 and want["last"]
            if need is None:
                need = want["act_addr"] + (0 if end else 1)
            act_ready = len(written) > need and written[need] <= cycle - 2
            need = want["act_addr"] + (0 if end else 1)
        if row.valid:
            assert ready, "row issued without a latched tile"
            assert act_ready, f"row read word {want['act_addr']} before it was written"
            assert written[want["act_addr"]] <= cycle - 2
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
            if not ready or not act_ready:
                log["w"] += 1
            else:
                # waits only for room, and only for a last-K-tile row
                assert want["last"] and not room_before
                log["o"] += 1
        if not pending and cycle > issued[-1]:
            assert ctx.get(dut.done)
            break
        assert not ctx.get(dut.done)
        room_before = room
        write = None
        if act_p is not None and len(written) < words and cycle >= act_from:
            if rng.random() < act_p:
                write = len(written)
                written.append(cycle)
        await tick(write)
        if row.valid and len(issued) % m == 0:
            ready.pop(0)
        if latch:
            ready.append(latched)
            latched += 1
    ctx.set(dut.latched, 0)
    for _ in range(8):          # the counters count a few cycles late
        await tick()
    log["counters"] = ctx.get(dut.counters)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 3), (2, 5, 7), (4, 6, 4), (1, 4, 9)])
@pytest.mark.parametrize("seed,latch_p,room_p", [(0, 1.0, 1.0), (1, 0.3, 0.7), (2, 0.8, 0.2)])
def test_rows_in_order(shape, seed, latch_p, room_p):
    [(expected, issued, log)] = _simulate([shape], seed, latch_p, room_p)
    _check_counts(expected, issued, log)
    if latch_p == 1.0 and room_p == 1.0:
        # no gaps once the first tile is latched while the loader keeps two ahead
        m = shape[0]
        assert issued[-1] - issued[0] + 1 >= len(expected)
        assert issued[:m] == list(range(issued[0], issued[0] + m))


def _check_counts(expected, issued, log):
    assert len(issued) == len(expected)
    counters = log["counters"]
    assert counters.busy == len(expected)
    assert counters.useful_macs == sum(r["macs"] for r in expected)
    assert (counters.weight_stall, counters.output_stall) == (log["w"], log["o"])


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 3), (2, 5, 7), (5, 6, 4)])
@pytest.mark.parametrize("seed,act_p,act_delay", [(3, 0.3, 0), (4, 0.9, 0), (5, 0.5, 30)])
def test_rows_wait_for_their_activation_words(shape, seed, act_p, act_delay):
    [(expected, issued, log)] = _simulate([shape], seed, 1.0, 0.8, act_p, act_delay)
    _check_counts(expected, issued, log)
    words = -(-shape[1] // CFG.rows) * shape[0]
    if act_delay:
        # the words come after the command and the tiles: issue waited for them
        assert issued[0] >= act_delay + 2 and log["w"] > act_delay
    if act_p == 0.3 and words > 2:
        assert log["w"] > words     # issue kept catching up with a slow stream


@pytest.mark.parametrize("seed", [6, 7])
def test_count_starts_afresh_for_the_next_gemm(seed):
    # The second GEMM's words arrive late: the first's count must not let its rows issue.
    shapes = [(6, 5, 4), (3, 4, 2), (4, 1, 5)]
    gemms = _simulate(shapes, seed, 1.0, 1.0, act_p=0.7, act_delay=25)
    for expected, issued, log in gemms:
        _check_counts(expected, issued, log)
