"""Float reference kernels of the graph IR's ops, written from each op's definition.

Each kernel takes the :class:`~quantize.graph.Node` and its input arrays (batch first,
float64) and returns the output array. Convolutions and pools loop over the kernel offsets
(one strided slice and one matrix product per offset), so memory stays at a few copies of
the activation.
"""

import math

import numpy as np

__all__ = ["KERNELS"]

# NumPy has no erf; math.erfc is exact to double precision, and 0.5 * x * erfc(-x / sqrt 2)
# keeps GELU's tiny negative tail that 1 + erf(x / sqrt 2) would cancel to zero.
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def _offsets(node, x, fill):
    """Pad ``x`` (N, C, H, W) and yield ``(i, j, strided window slice)`` per kernel offset.

    Slices are channels-last (N, OH, OW, C): a matrix product per offset is then one BLAS
    call over contiguous channels, several times faster than ``tensordot`` on NCHW.
    """
    kh, kw = node.attrs["kernel"] if "kernel" in node.attrs else node.params["weight"].shape[2:]
    sh, sw = node.attrs["stride"]
    pt, pl, pb, pr = node.attrs["pads"]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    xp = np.ascontiguousarray(xp.transpose(0, 2, 3, 1))
    oh, ow = node.shape[1:]
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _linear(node, x):
    return x @ node.params["weight"].T.astype(np.float64) + node.params["bias"]


def _conv2d(node, x):
    w = node.params["weight"].astype(np.float64)
    o = w.shape[0]
    acc = np.zeros((x.shape[0], *node.shape[1:], o))
    if node.attrs["groups"] == 1:
        for i, j, patch in _offsets(node, x, 0.0):
            acc += patch @ w[:, :, i, j].T
    else:  # depthwise: output channel k reads input channel k // multiplier
        src = np.arange(o) // (o // x.shape[1])
        for i, j, patch in _offsets(node, x, 0.0):
            acc += patch[..., src] * w[:, 0, i, j]
    return _nchw(acc + node.params["bias"])


def _max_pool(node, x):
    out = None
    for _, _, patch in _offsets(node, x, -np.inf):
        out = patch.copy() if out is None else np.maximum(out, patch)
    return _nchw(out)


def _avg_pool(node, x):
    total = sum(patch for _, _, patch in _offsets(node, x, 0.0))
    if node.attrs["count_include_pad"]:
        kh, kw = node.attrs["kernel"]
        return _nchw(total / (kh * kw))
    ones = np.ones((1, 1, *x.shape[2:]))
    count = sum(patch for _, _, patch in _offsets(node, ones, 0.0))
    return _nchw(total / count)


def _gelu(node, x):
    if node.attrs["approximate"] == "tanh":
        # 0.5 (1 + tanh u) = sigmoid(2u), without tanh's cancellation near -1
        return x * _sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))
    return 0.5 * x * _erfc(-x / math.sqrt(2.0)).astype(np.float64)


def _softmax(node, x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


KERNELS = {
    "Linear": _linear,
    "Conv2d": _conv2d,
    "Relu": lambda node, x: np.maximum(x, 0.0),
    "Relu6": lambda node, x: np.clip(x, 0.0, 6.0),
    "Clip": lambda node, x: np.clip(x, node.attrs["min"], node.attrs["max"]),
    "MaxPool2d": _max_pool,
    "AvgPool2d": _avg_pool,
    "GlobalAveragePool": lambda node, x: x.mean(axis=(2, 3), keepdims=True),
    "Add": lambda node, a, b: a + b,
    "Flatten": lambda node, x: x.reshape(x.shape[0], -1),
    "Reshape": lambda node, x: x.reshape((x.shape[0], *node.attrs["shape"])),
    "Concat": lambda node, *xs: np.concatenate(xs, axis=1),
    "Gelu": _gelu,
    "Sigmoid": lambda node, x: _sigmoid(x),
    "Tanh": lambda node, x: np.tanh(x),
    "HardSwish": lambda node, x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "Silu": lambda node, x: x * _sigmoid(x),
    "Softmax": _softmax,
}
