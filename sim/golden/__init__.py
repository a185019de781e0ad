"""nnaccel: sim/golden."""
