"""A time limit on place and route: how far the router got, read from nextpnr's log, and a
real iCE40 build stopped at the limit with one line and no nextpnr left running."""

import os
import re
from pathlib import Path

import pytest

from boards.engines import engine_config
from boards.synth import parse_router_state, router_progress, synthesize
from nnaccel.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nextpnr"
# nextpnr's log of the ULX3S EIE 16-PE build, trimmed: placement, then router2's
# iterations with the overused wires growing again (4,602 at 19, 7,053 at 26).
ROUTER2 = (FIXTURES / "eie16-router2-congested.tim").read_text()
ROUTER1 = (FIXTURES / "router1-partial.tim").read_text()
MAC = {"rows": 2, "cols": 4}          # the iCE40 smoke build's engine (test_synth.py)


def test_router2_state_is_the_last_iteration():
    assert parse_router_state(ROUTER2) == (26, 7053)
    assert router_progress(ROUTER2) == ("router2 at iteration 26 still had 7,053 overused "
                                        "wires (congestion)")
    # Cut after iteration 19: that iteration's count, not the first or the smallest.
    cut = ROUTER2[:ROUTER2.index("iter=20")]
    assert parse_router_state(cut) == (19, 4602)


def test_before_routing_is_still_placing():
    placing = ROUTER2[:ROUTER2.index("Info: Routing globals")]
    assert parse_router_state(placing) is None
    assert router_progress(placing) == "still placing"
    started = ROUTER2[:ROUTER2.index("Info:     iter=1 ")]
    assert parse_router_state(started) is None
    assert router_progress(started) == "still routing (no router iteration finished)"
    assert router_progress("") == "place and route had not started"


def test_router1_arcs_left():
    # The iCE40 flow routes with router1: its table counts arcs, not iterations.
    assert parse_router_state(ROUTER1) is None
    assert router_progress(ROUTER1) == "router1 still had 8,110 of 10,827 arcs to route"


@pytest.mark.parametrize("bad", [0, -1.0])
def test_bad_timeout(tmp_path, bad):
    with pytest.raises(ValueError, match="pnr_timeout"):
        synthesize("icebreaker", "mac", engine_config("mac", MAC), build_dir=tmp_path,
                   pnr_timeout=bad)


@pytest.mark.parametrize("bad", ["0", "-5", "nan", "inf"])
def test_cli_bad_timeout_is_one_line(tmp_path, capsys, bad):
    assert main(["synth", "--board", "icebreaker", "--engine", "mac", "--build-dir",
                 str(tmp_path), f"--pnr-timeout={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--pnr-timeout" in err and err.count("\n") == 0
    assert not any(tmp_path.iterdir())          # refused before anything was built


def _alive_under(root: Path) -> list[str]:
    """Processes (not zombies) whose working directory is ``root`` or below it."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z" and cwd.is_relative_to(root):
            found.append(f"{pid} {cmd}")
    return found


@pytest.mark.synth
@pytest.mark.parametrize("seeds", [(1,), (1, 2)])
def test_ice40_build_stopped_at_the_limit(tmp_path, seeds):
    lines = []
    with pytest.raises(TimeoutError) as e:
        synthesize("icebreaker", "mac", engine_config("mac", MAC), build_dir=tmp_path,
                   seeds=seeds, jobs=2, progress=lines.append, pnr_timeout=1.5)
    message = str(e.value)
    assert "\n" not in message
    where = r"(still placing|place and route had not started)"
    if len(seeds) == 1:
        state = where
    else:       # both seeds stopped: each named
        state = rf"seed 1: {where}; seed 2: {where}"
        assert [re.sub(r"\(.*\)", "()", line) for line in lines] == [
            "seed 1: not placed and routed within 1.5 s ()",
            "seed 2: not placed and routed within 1.5 s ()"]
    assert re.fullmatch(
        rf"mac \(rows=2, cols=4, \.\.\.\) was not placed and routed on the iCE40UP5K within "
        rf"1\.5 s: {state} — give a longer --pnr-timeout \(in a sweep spec, "
        rf"pnr_timeout_min\) or choose a smaller config", message), message
    assert "does not fit" not in message
    assert not (tmp_path / "nnaccel-build.json").exists()      # nothing cached as built
    assert _alive_under(tmp_path.resolve()) == []
