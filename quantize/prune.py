"""Magnitude pruning: per layer (target sparsity or Han's quality × std), or global.

Every function returns boolean masks (True = kept); the pruned weights are
``weight * mask`` and stay exactly zero through retraining and weight sharing.
"""

import numpy as np

__all__ = ["prune_sparsity", "prune_quality", "prune_global", "apply_masks",
           "prune_activation_aware"]


def _check_fraction(sparsity: float):
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def prune_sparsity(weight: np.ndarray, sparsity: float, score: np.ndarray | None = None):
    """Mask keeping the ``1 - sparsity`` fraction of weights with the largest score.

    ``score`` defaults to ``|weight|``. Exactly ``round(sparsity * size)`` weights go;
    among equal scores at the threshold the first in row-major order are kept. Memory:
    one float copy of the scores plus the mask (no index arrays), so 100 M-weight layers fit.
    """
    _check_fraction(sparsity)
    score = np.abs(weight) if score is None else np.asarray(score)
    n = score.size
    drop = int(round(sparsity * n))
    if drop == 0:
        return np.ones(weight.shape, dtype=bool)
    flat = score.reshape(-1)
    threshold = np.partition(flat, drop - 1)[drop - 1]
    mask = score > threshold
    missing = (n - drop) - int(np.count_nonzero(mask))
    if missing > 0:  # ties at the threshold
        ties = np.flatnonzero(flat == threshold)[:missing]
        mask.reshape(-1)[ties] = True
    return mask


def prune_quality(weight: np.ndarray, quality: float) -> np.ndarray:
    """Han et al.'s threshold: drop weights with ``|w| < quality * std(w)``."""
    if quality < 0:
        raise ValueError(f"quality must be >= 0, got {quality}")
    w = np.asarray(weight, dtype=np.float32)
    return np.abs(w) >= np.float32(quality * float(w.std(dtype=np.float64)))


def prune_global(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One magnitude threshold over all layers, keeping ``1 - sparsity`` of all weights."""
    _check_fraction(sparsity)
    flat = np.concatenate([np.abs(w).reshape(-1) for w in weights])
    drop = int(round(sparsity * flat.size))
    if drop == 0:
        return [np.ones(w.shape, dtype=bool) for w in weights]
    threshold = np.partition(flat, drop - 1)[drop - 1]
    masks = [np.abs(w) > threshold for w in weights]
    # Ties at the threshold: keep enough of them to hit the count exactly.
    extra = (flat.size - drop) - sum(int(m.sum()) for m in masks)
    for w, m in zip(weights, masks, strict=False):
        if extra <= 0:
            break
        ties = np.flatnonzero((np.abs(w) == threshold).reshape(-1))[:extra]
        m.reshape(-1)[ties] = True
        extra -= ties.size
    return masks


def prune_activation_aware(weight: np.ndarray, inputs: np.ndarray, sparsity: float):
    """Mask from ``|w_ij| * rms(x_j)`` over calibration inputs (post-training pruning).

    A weight on an input that is always zero costs nothing to drop; one on a large input
    matters more than its magnitude says.
    """
    rms = np.sqrt(np.mean(np.square(inputs, dtype=np.float64), axis=0)).astype(np.float32)
    return prune_sparsity(weight, sparsity, score=np.abs(weight) * rms[None, :])


def apply_masks(model, masks):
    """Zero the pruned weights of ``model`` in place and keep the masks on its layers."""
    for layer, mask in zip(model.layers, masks, strict=False):
        if mask.shape != layer.weight.shape:
            raise ValueError(f"layer {layer.name}: mask shape {mask.shape} does not match "
                             f"weight shape {layer.weight.shape}")
        layer.mask = mask
        layer.weight = np.where(mask, layer.weight, np.float32(0))
    return model
