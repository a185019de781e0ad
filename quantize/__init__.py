"""nnaccel: quantize."""
