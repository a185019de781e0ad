"""Lowering of the graph IR's weight layers to the systolic engine's GEMMs.

* ``Conv2d`` (groups 1): one GEMM. Activations are the im2col patches
  (:func:`sim.golden.host_ops.im2col`), ``M = batch·OH·OW`` rows of ``K = C·kh·kw``;
  weights the ``O × C × kh × kw`` tensor as a ``K × N`` matrix (``N = O``).
* depthwise ``Conv2d`` (groups = C): one small GEMM per input channel ``c``, ``M =
  batch·OH·OW``, ``K = kh·kw``, ``N = O/C`` (the channel multiplier). The engine's array
  is mostly idle on these (a 3×3 depthwise kernel with multiplier 1 fills one column of
  ``cols`` and ``9`` of ``ceil(9/rows)·rows`` rows); :class:`Lowered` says so.
* ``Linear``: one GEMM, ``M = batch·(product of the leading dims)``, ``K = in``, ``N = out``.

Grouped convolutions that are not depthwise are refused (one-line ``ValueError``).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ENGINE_OPS", "Lowered", "lower", "conv_weight_matrix", "depthwise_weight_matrices"]

#: Ops that run on the systolic engine; every other op runs on the host.
ENGINE_OPS = ("Conv2d", "Linear")


@dataclass(frozen=True)
class Lowered:
    """The GEMMs of one weight layer for a batch.

    Members
    -------
    node, op : str
        The graph node's name and op.
    kind : str
        ``"conv"``, ``"depthwise"`` or ``"linear"``.
    m, k, n : int
        Shape of each GEMM: ``M × K`` activations times ``K × N`` weights.
    count : int
        Number of such GEMMs (the input channels of a depthwise convolution, else 1).
    macs : int
        Useful multiply-accumulates of the layer for the batch (``count·m·k·n``).
    expansion : float
        im2col expansion: activation words the GEMMs read over the layer input's size
        (1.0 for ``Linear``; about ``kh·kw / (sh·sw)`` for a convolution).
    """

    node: str
    op: str
    kind: str
    m: int
    k: int
    n: int
    count: int
    macs: int
    expansion: float

    @property
    def gemms(self) -> list[tuple[int, int, int]]:
        return [(self.m, self.k, self.n)] * self.count


def lower(node, in_shape, batch: int = 1) -> Lowered:
    """The GEMMs of ``node`` (``Conv2d`` or ``Linear``) with per-sample input shape
    ``in_shape`` for ``batch`` samples.

    Raises
    ------
    ValueError
        ``node`` is not a weight layer, or a grouped convolution that is not depthwise.
    """
    in_shape = tuple(in_shape)
    in_size = batch * int(np.prod(in_shape))
    if node.op == "Linear":
        n, k = node.weight.shape
        m = batch * int(np.prod(in_shape[:-1]))
        return Lowered(node.name, node.op, "linear", m, k, n, 1, m * k * n, 1.0)
    if node.op != "Conv2d":
        raise ValueError(f"node {node.name!r} ({node.op}): not a weight layer; the engine "
                         f"runs {' and '.join(ENGINE_OPS)}")
    o, i_g, kh, kw = node.weight.shape
    c = in_shape[0]
    oh, ow = node.shape[1:]
    m = batch * oh * ow
    groups = node.attrs["groups"]
    if groups == 1:
        return Lowered(node.name, node.op, "conv", m, c * kh * kw, o, 1, m * c * kh * kw * o,
                       m * c * kh * kw / in_size)
    if groups == c and i_g == 1 and o % c == 0:
        mult = o // c
        return Lowered(node.name, node.op, "depthwise", m, kh * kw, mult, c,
                       c * m * kh * kw * mult, c * m * kh * kw / in_size)
    raise ValueError(f"node {node.name!r} ({node.op}): groups={groups} with {c} input "
                     f"channels is neither a plain nor a depthwise convolution; the runtime "
                     f"cannot place it")


def conv_weight_matrix(weight) -> np.ndarray:
    """``O × C × kh × kw`` (or ``out × in``) weights as the ``K × N`` GEMM matrix."""
    w = np.asarray(weight)
    return w.reshape(w.shape[0], -1).T.copy()


def depthwise_weight_matrices(weight, channels: int) -> list[np.ndarray]:
    """Depthwise ``O × 1 × kh × kw`` weights as ``channels`` matrices of ``kh·kw × O/C``:
    matrix ``c`` holds output channels ``c·mult … (c+1)·mult − 1``, which read input
    channel ``c``."""
    w = np.asarray(weight)
    mult = w.shape[0] // channels
    return [w[c * mult:(c + 1) * mult].reshape(mult, -1).T.copy() for c in range(channels)]
