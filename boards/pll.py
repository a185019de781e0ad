"""PLL settings and instances: the design clock from the board oscillator."""

from amaranth.hdl import Instance, Signal

__all__ = ["ecp5_pll_params", "ecp5_pll"]


def ecp5_pll_params(f_in_mhz: float, f_out_mhz: float) -> dict:
    """EHXPLLL dividers for ``f_out`` from ``f_in`` (CLKOP feedback), closest match.

    Limits from the ECP5 sysCLOCK guide: PFD 3.125–400 MHz, VCO 400–800 MHz.
    """
    best = None
    for clki in range(1, 129):
        pfd = f_in_mhz / clki
        if not 3.125 <= pfd <= 400:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            for clkop in range(1, 129):
                vco = out * clkop
                if 400 <= vco <= 800:
                    err = abs(out - f_out_mhz)
                    if best is None or err < best[0]:
                        best = (err, clki, clkfb, clkop, out)
                    break
    if best is None or best[0] > 0.02 * f_out_mhz:
        raise ValueError(f"the ECP5 PLL cannot make {f_out_mhz} MHz from {f_in_mhz} MHz: "
                         f"choose another --clock-mhz")
    _, clki, clkfb, clkop, out = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
            "CLKOP_CPHASE": clkop - 1, "f_out_mhz": out}


def ecp5_pll(clk_in, f_in_mhz: float, f_out_mhz: float):
    """``(instance, clk_out, locked, f_out_mhz)`` of an EHXPLLL making ``f_out_mhz``."""
    p = ecp5_pll_params(f_in_mhz, f_out_mhz)
    clk_out, locked = Signal(), Signal()
    pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{f_in_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{p['f_out_mhz']:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=p["CLKFB_DIV"],
        i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=clk_out, i_CLKFB=clk_out, o_LOCK=locked,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
        i_PLLWAKESYNC=0, i_ENCLKOP=0,
    )
    return pll, clk_out, locked, p["f_out_mhz"]
