"""nnaccel: hw/eie."""
