"""TPU-style weight-stationary int8 systolic GEMM engine."""

from .config import PRESETS, ROUNDING_MODES, SystolicConfig

__all__ = ["SystolicConfig", "PRESETS", "ROUNDING_MODES"]
