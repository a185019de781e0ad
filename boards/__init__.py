"""nnaccel: boards."""
