"""nnaccel: sim."""
