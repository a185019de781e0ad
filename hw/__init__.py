"""nnaccel: hw."""
