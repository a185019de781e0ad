"""nnaccel: sim/tb."""
