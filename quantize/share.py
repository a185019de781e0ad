"""Weight sharing: per-layer k-means over the surviving weights.

A shared layer is a codebook (float32[K]) and an index per weight. Pruned weights keep
index 0 and stay exactly zero. With ``reserve_zero`` (the EIE engine's contract) codebook
entry 0 *is* 0.0 — EIE's padding value — and the ``2**bits - 1`` clusters of the surviving
weights take indices ``1 .. 2**bits - 1``; without it all ``2**bits`` entries are centroids
and the mask tells pruned from kept.
"""

from dataclasses import dataclass

import numpy as np

from .kmeans import kmeans_1d

__all__ = ["SharedLayer", "share_weights", "MIN_BITS", "MAX_BITS"]

MIN_BITS, MAX_BITS = 2, 8


@dataclass
class SharedLayer:
    """Members: ``codebook`` float32[K], ``index`` uint8[out, in], ``mask`` bool[out, in],
    ``reserve_zero`` (entry 0 is the pruned value 0.0), ``bits``."""

    codebook: np.ndarray
    index: np.ndarray
    mask: np.ndarray
    bits: int
    reserve_zero: bool

    def weight(self) -> np.ndarray:
        """The shared weights (float32[out, in]), pruned positions exactly 0."""
        return np.where(self.mask, self.codebook[self.index], np.float32(0))


def share_weights(weight: np.ndarray, mask: np.ndarray | None, bits: int,
                  init: str = "linear", reserve_zero: bool = False, seed: int = 0,
                  max_iter: int = 300) -> SharedLayer:
    """k-means weight sharing of ``weight[mask]`` with ``k = 2**bits`` (minus 1 if
    ``reserve_zero``)."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"--bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    weight = np.asarray(weight, dtype=np.float32)
    mask = np.ones(weight.shape, bool) if mask is None else np.asarray(mask, bool)
    k = 2 ** bits - (1 if reserve_zero else 0)
    survivors = weight[mask]
    index = np.zeros(weight.shape, dtype=np.uint8)
    codebook = np.zeros(2 ** bits, dtype=np.float32)
    if survivors.size:
        result = kmeans_1d(survivors, k, init=init, seed=seed, max_iter=max_iter)
        offset = 1 if reserve_zero else 0
        codebook[offset:offset + k] = result.centroids.astype(np.float32)
        index[mask] = (result.labels + offset).astype(np.uint8)
    return SharedLayer(codebook, index, mask, bits, reserve_zero)
