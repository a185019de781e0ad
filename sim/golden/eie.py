"""Golden model of the EIE engine: b = ReLU(W a + bias) in fixed point, bit-exact.

Written from the arithmetic's definition, densely (``W`` decoded to a dense matrix, summed
over all columns), independent of the engine's rows-to-PE split, broadcast order and
pipeline. With ``wf = config.weight_frac``, ``A = config.act_width``:

* activations ``a[j]`` and outputs are signed ``A``-bit integers with ``config.act_frac``
  fraction bits; weights are codebook values ``W[i, j] = codebook[index[i, j]]``, signed
  ``config.weight_width``-bit integers with ``wf`` fraction bits (``codebook[0] == 0``);
* product: ``p[i, j] = (W[i, j] * a[j]) >> wf``, the exact product shifted right
  arithmetically, i.e. **truncation toward minus infinity** (floor), so ``p`` has the
  activations' fraction bits;
* accumulation: ``acc[i] = sum_j p[i, j]``, exact: ``config.acc_width`` is validated to
  hold any sum the memories allow, so the sum never wraps and its order does not matter;
* bias (optional): ``s[i] = acc[i] + bias[i]``, bias an ``A``-bit integer in the
  activations' format (0 without bias);
* saturation: ``y[i] = clamp(s[i], -2**(A-1), 2**(A-1) - 1)``;
* ReLU (optional, per layer): ``y[i] = max(y[i], 0)``.

A multi-layer run feeds ``y`` of layer ``l`` as ``a`` of layer ``l + 1``.
"""

import numpy as np

__all__ = ["layer", "run", "saturate"]


def saturate(x, width: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def layer(weights, activations, config, bias=None, relu: bool = True, codebook=None,
          chunk: int = 1 << 22) -> np.ndarray:
    """One layer: ``weights`` dense codebook values (out × in, integers), or codebook
    indices when ``codebook`` is given; ``activations`` (in,) integers; returns the (out,)
    int64 outputs. ``chunk`` bounds the temporary size."""
    w = np.asarray(weights)
    cb = None if codebook is None else np.asarray(codebook, dtype=np.int64)
    a = np.asarray(activations, dtype=np.int64)
    rows, cols = w.shape
    if a.shape != (cols,):
        raise ValueError(f"activations must have {cols} values, got shape {a.shape}")
    nz = np.nonzero(a)[0]                      # zero activations add floor(0) = 0
    a_nz = a[nz]
    acc = np.zeros(rows, dtype=np.int64)
    step = max(1, chunk // max(len(nz), 1))
    for r0 in range(0, rows, step):
        block = w[r0:r0 + step][:, nz]
        block = block.astype(np.int64) if cb is None else cb[block]
        p = (block * a_nz) >> config.weight_frac
        acc[r0:r0 + step] = p.sum(axis=1)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    y = saturate(acc, config.act_width)
    return np.maximum(y, 0) if relu else y


def run(layers, activations, config) -> list[np.ndarray]:
    """Chain ``layers`` (dicts with ``weights`` and optional ``bias``, ``relu``,
    ``codebook``); return
    every layer's outputs."""
    outs = []
    a = np.asarray(activations, dtype=np.int64)
    for spec in layers:
        a = layer(spec["weights"], a, config, bias=spec.get("bias"),
                  relu=spec.get("relu", True), codebook=spec.get("codebook"))
        outs.append(a)
    return outs
