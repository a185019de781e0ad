"""nnaccel: hw/eie, an EIE-style sparse matrix × sparse vector engine (Han et al. 2016)."""

from .config import PRESETS, EieConfig
from .layouts import Mem, bcast_layout, cmd_layout, counter_layout, load_layout, result_layout
from .lnzd import NonZeroTree
from .pe import ProcessingElement
from .top import EieTop

__all__ = ["EieConfig", "PRESETS", "EieTop", "ProcessingElement", "NonZeroTree", "Mem",
           "load_layout", "cmd_layout", "bcast_layout", "result_layout", "counter_layout"]
