"""nnaccel: hw/systolic."""
