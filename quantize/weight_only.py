"""Weight-only files (npz, safetensors, pt) have no graph: the activation between their
layers is what the user states (``nnaccel compress --activation``).

* ``relu`` (the default) keeps the MLP path and its images (a ``relu`` flag per layer);
* ``none`` on EIE: a :class:`LinearChain`, the MLP without ReLU (``relu`` flags false);
* anything else, and ``none`` on the systolic engine: :func:`mlp_graph` builds a
  :class:`~quantize.graph.Graph` of the Linear layers with that activation between them,
  which becomes a graph image (:mod:`quantize.graph_image`; non-ReLU activations run as
  host lookup tables).
"""

import numpy as np

from .graph import Graph, Node
from .model import Mlp

__all__ = ["ACTIVATIONS", "LinearChain", "mlp_graph", "is_mlp_chain"]

#: ``--activation`` names and the IR op each becomes (``none``: layers back to back).
ACTIVATIONS = {"relu": "Relu", "gelu": "Gelu", "sigmoid": "Sigmoid", "tanh": "Tanh",
               "silu": "Silu", "hardswish": "HardSwish", "relu6": "Relu6", "none": None}


class LinearChain(Mlp):
    """An :class:`~quantize.model.Mlp` whose layers follow each other with no activation
    (``--activation none``): its forward pass, activations and copies have no ReLU."""

    relu = False

    def copy(self) -> "LinearChain":
        return LinearChain([layer.copy() for layer in self.layers])

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.activations(x)[-1]

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        h = np.asarray(x, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.sizes[0]:
            raise ValueError(f"inputs must have shape (batch, {self.sizes[0]}), got {h.shape}")
        out = [h]
        for layer in self.layers:
            h = h @ layer.weight.T + layer.bias
            out.append(h)
        return out


def mlp_graph(model: Mlp, activation: str) -> Graph:
    """The graph of a weight-only MLP: its Linear layers with ``activation`` (a key of
    :data:`ACTIVATIONS`) between them, none after the last."""
    op = ACTIVATIONS[activation]
    nodes, v = [], "input"
    for i, layer in enumerate(model.layers):
        nodes.append(Node(layer.name, "Linear", v, layer.name, {},
                          {"weight": layer.weight, "bias": layer.bias}))
        v = layer.name
        if op is not None and i < len(model.layers) - 1:
            nodes.append(Node(f"{layer.name}.{activation}", op, v, f"{layer.name}.{activation}"))
            v = f"{layer.name}.{activation}"
    return Graph("input", (model.sizes[0],), nodes)


def is_mlp_chain(graph: Graph) -> bool:
    """Whether ``graph`` is what an MLP image holds: 1-D input, Linear layers with one Relu
    between consecutive ones and none after the last."""
    ops = [n.op for n in graph.nodes]
    want = ["Linear", "Relu"] * (len(ops) // 2) + ["Linear"]
    return len(graph.input_shape) == 1 and ops == want
