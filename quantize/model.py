"""A multi-layer perceptron as the compression front end sees it.

Weights follow PyTorch's convention: ``weight`` is out × in, ``bias`` has ``out`` entries,
and a ReLU sits between consecutive layers (not after the last one).
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Layer", "Mlp"]


@dataclass
class Layer:
    """One fully connected layer: ``y = weight @ x + bias``.

    Members
    -------
    name : str
        The layer's name in the weight file (``fc1``).
    weight : float32[out, in]
    bias : float32[out]
    mask : bool[out, in] or None
        Surviving weights after pruning; ``None`` while dense.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    mask: np.ndarray | None = field(default=None)

    def __post_init__(self):
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32)
        if self.weight.ndim != 2:
            raise ValueError(f"layer {self.name}: weight must be 2-D (out x in), "
                             f"got shape {self.weight.shape}")
        if 0 in self.weight.shape:
            raise ValueError(f"layer {self.name}: weight has shape {self.weight.shape}; a "
                             f"layer needs at least one input and one output")
        if self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"layer {self.name}: bias has shape {self.bias.shape}, expected "
                             f"({self.weight.shape[0]},) for a weight of shape "
                             f"{self.weight.shape}")
        for what, a in (("weight", self.weight), ("bias", self.bias)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"layer {self.name}: {what} contains NaN or Inf")

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape

    def copy(self) -> "Layer":
        return Layer(self.name, self.weight.copy(), self.bias.copy(),
                     None if self.mask is None else self.mask.copy())


class Mlp:
    """Layers chained with ReLU in between; checks that the shapes chain."""

    def __init__(self, layers: list[Layer]):
        if not layers:
            raise ValueError("the model has no layers")
        for a, b in zip(layers, layers[1:], strict=False):
            if a.shape[0] != b.shape[1]:
                raise ValueError(f"layer shapes do not chain: {a.name} outputs {a.shape[0]} "
                                 f"values but {b.name} takes {b.shape[1]} inputs")
        self.layers = list(layers)

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].shape[1]] + [layer.shape[0] for layer in self.layers]

    def copy(self) -> "Mlp":
        return Mlp([layer.copy() for layer in self.layers])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float outputs (logits) for inputs ``x[batch, in]``."""
        h = np.asarray(x, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.sizes[0]:
            raise ValueError(f"inputs must have shape (batch, {self.sizes[0]}), got {h.shape}")
        for i, layer in enumerate(self.layers):
            h = h @ layer.weight.T + layer.bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return h

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Inputs of every layer followed by the final output (len = layers + 1)."""
        h = np.asarray(x, dtype=np.float32)
        out = [h]
        for i, layer in enumerate(self.layers):
            h = h @ layer.weight.T + layer.bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
            out.append(h)
        return out

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.forward(x).argmax(axis=1) == y))
