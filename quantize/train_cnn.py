"""NumPy training of small CNNs held as :class:`~quantize.graph.Graph`: float training and
masked retraining after pruning, on the project's 8×8 digits.

A trainable graph is a chain: every node reads the previous node's output, the ops are
``Conv2d`` (``groups=1``, any stride and padding), ``MaxPool2d``, ``Relu``, ``Flatten`` and
``Linear`` (on a 1-D input), and the last node is a ``Linear`` producing the logits.
Convolutions run as im2col matrix products, max-pool gradients go to the first maximum of
each window (the element the forward picks). Softmax cross-entropy, Adam and seeded
mini-batches are those of :mod:`quantize.train`; BLAS runs on one thread, so a seed gives
the same weights bit for bit. Weights stay in the IR's conventions throughout (``Conv2d``
``O × I × kh × kw``, ``Linear`` out × in), and every function returns a new ``Graph``.

In masked retraining a mask per weight tensor (1 keeps, 0 prunes) zeroes the gradient of
pruned weights and the weights themselves, so they stay exactly 0.

Distillation (Hinton et al. 2015): with a :class:`quantize.train.Distill` (a teacher's
logits for the training inputs, row for row, a temperature ``T`` and a weight ``a``) the
loss is ``(1 - a) · CE + a · T² · KL(softmax(teacher/T) ‖ softmax(logits/T))``, the MLP
trainer's :func:`quantize.train.loss_and_logit_grad`; :func:`teacher` makes the targets
from a float graph.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from .digits import SEED
from .graph import Graph, Node
from .train import Distill, _Adam, _batches, loss_and_logit_grad

__all__ = ["CHANNELS", "TRAINABLE_OPS", "init_cnn", "gradients", "train", "retrain",
           "train_digits_cnn", "accuracy", "teacher"]

#: Output channels of the digits CNN's two 3×3 convolutions.
CHANNELS = (16, 32)
#: The ops :func:`train` can differentiate.
TRAINABLE_OPS = ("Conv2d", "MaxPool2d", "Relu", "Flatten", "Linear")


def init_cnn(input_shape=(1, 8, 8), channels=CHANNELS, classes: int = 10,
             seed: int = SEED, hidden=()) -> Graph:
    """He-initialised CNN: per entry of ``channels`` a 3×3 convolution (padding 1), ReLU and
    2×2 max-pool (stride 2), then ``Flatten``, a ``Linear`` + ReLU per entry of ``hidden``
    and a ``Linear`` to ``classes`` logits. Nodes ``conv1``, ``relu1``, ``pool1``, …,
    ``flatten``, (``fc1``, ``fc_relu1``, …,) ``fc``; input ``x``; biases zero."""
    rng = np.random.default_rng(seed)
    nodes, c, v = [], input_shape[0], "x"
    for k, o in enumerate(channels, 1):
        w = rng.standard_normal((o, c, 3, 3)) * np.sqrt(2.0 / (c * 9))
        nodes += [Node(f"conv{k}", "Conv2d", v, f"conv{k}", {"pads": (1, 1, 1, 1)},
                       {"weight": w, "bias": np.zeros(o)}),
                  Node(f"relu{k}", "Relu", f"conv{k}", f"relu{k}"),
                  Node(f"pool{k}", "MaxPool2d", f"relu{k}", f"pool{k}",
                       {"kernel": (2, 2), "stride": (2, 2)})]
        c, v = o, f"pool{k}"
    nodes.append(Node("flatten", "Flatten", v, "flatten"))
    n_in, v = Graph("x", input_shape, nodes).output_shape[0], "flatten"
    for k, o in enumerate((*hidden, classes), 1):
        name = "fc" if k == len(hidden) + 1 else f"fc{k}"
        w = rng.standard_normal((o, n_in)) * np.sqrt(2.0 / n_in)
        nodes.append(Node(name, "Linear", v, name, {}, {"weight": w, "bias": np.zeros(o)}))
        if k <= len(hidden):
            nodes.append(Node(f"fc_relu{k}", "Relu", name, f"fc_relu{k}"))
            n_in, v = o, f"fc_relu{k}"
    return Graph("x", input_shape, nodes)


def _check_chain(graph: Graph):
    prev = graph.input_name
    for n in graph.nodes:
        if n.op not in TRAINABLE_OPS:
            raise ValueError(f"node {n.name!r} ({n.op}): not trainable; the trainer takes "
                             f"{', '.join(TRAINABLE_OPS)}")
        if n.inputs != (prev,):
            raise ValueError(f"node {n.name!r} ({n.op}): reads {list(n.inputs)}; the trainer "
                             f"takes a chain (each node reads only the previous output)")
        if n.op == "Conv2d" and n.attrs["groups"] != 1:
            raise ValueError(f"node {n.name!r} (Conv2d): groups={n.attrs['groups']}; the "
                             f"trainer takes groups=1")
        if n.op == "Linear" and len(graph.shapes[prev]) != 1:
            raise ValueError(f"node {n.name!r} (Linear): input shape {graph.shapes[prev]}; "
                             f"the trainer takes Linear on 1-D inputs")
        prev = n.output
    if graph.nodes[-1].op != "Linear":
        raise ValueError(f"node {graph.nodes[-1].name!r} ({graph.nodes[-1].op}): the last "
                         f"node must be a Linear producing the logits")


def _params(graph: Graph, dtype) -> dict:
    return {n.name: [n.weight.astype(dtype), n.bias.astype(dtype)]
            for n in graph.nodes if n.weight is not None}


def _rebuild(graph: Graph, params: dict) -> Graph:
    nodes = [Node(n.name, n.op, n.inputs, n.output, n.attrs,
                  {"weight": params[n.name][0], "bias": params[n.name][1]})
             if n.name in params else n for n in graph.nodes]
    return Graph(graph.input_name, graph.input_shape, nodes)


def _pad(x, pads, fill):
    pt, pl, pb, pr = pads
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)


def _slices(node, i, j):
    sh, sw = node.attrs["stride"]
    oh, ow = node.shape[1:]
    return (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
            slice(j, j + sw * (ow - 1) + 1, sw))


def _crop(dxp, pads):
    pt, pl, pb, pr = pads
    return dxp[:, :, pt:dxp.shape[2] - pb, pl:dxp.shape[3] - pr]


def _conv_forward(node, w, b, x):
    """``(y, cols)``: im2col rows are (sample, out row, out col), columns (channel, i, j)."""
    o, _, kh, kw = w.shape
    sh, sw = node.attrs["stride"]
    oh, ow = node.shape[1:]
    xp = _pad(x, node.attrs["pads"], 0.0)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(x.shape[0] * oh * ow, -1)
    y = cols @ w.reshape(o, -1).T + b
    return y.reshape(x.shape[0], oh, ow, o).transpose(0, 3, 1, 2), cols


def _conv_backward(node, w, cols, x_shape, g, need_dx: bool):
    o, c, kh, kw = w.shape
    n, _, oh, ow = g.shape
    gf = g.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (gf.T @ cols).reshape(w.shape)
    db = gf.sum(axis=0)
    if not need_dx:
        return None, dw, db
    pt, pl, pb, pr = node.attrs["pads"]
    dcols = (gf @ w.reshape(o, -1)).reshape(n, oh, ow, c, kh, kw)
    dxp = np.zeros((n, c, x_shape[2] + pt + pb, x_shape[3] + pl + pr), g.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[_slices(node, i, j)] += dcols[..., i, j].transpose(0, 3, 1, 2)
    return _crop(dxp, node.attrs["pads"]), dw, db


def _pool_forward(node, x):
    """``(y, arg)``: ``arg`` is the kernel offset of each window's first maximum."""
    kh, kw = node.attrs["kernel"]
    xp = _pad(x, node.attrs["pads"], -np.inf)
    y = arg = None
    for k in range(kh * kw):
        patch = xp[_slices(node, *divmod(k, kw))]
        if y is None:
            y, arg = patch.copy(), np.zeros(patch.shape, np.int32)
        else:
            better = patch > y
            y[better] = patch[better]
            arg[better] = k
    return y, arg


def _pool_backward(node, arg, x_shape, g):
    kh, kw = node.attrs["kernel"]
    pt, pl, pb, pr = node.attrs["pads"]
    dxp = np.zeros((*x_shape[:2], x_shape[2] + pt + pb, x_shape[3] + pl + pr), g.dtype)
    for k in range(kh * kw):
        dxp[_slices(node, *divmod(k, kw))] += np.where(arg == k, g, 0.0)
    return _crop(dxp, node.attrs["pads"])


def _forward(graph, params, x):
    cache = []
    for n in graph.nodes:
        if n.op == "Conv2d":
            y, cols = _conv_forward(n, *params[n.name], x)
            cache.append((cols, x.shape))
        elif n.op == "MaxPool2d":
            y, arg = _pool_forward(n, x)
            cache.append((arg, x.shape))
        elif n.op == "Relu":
            y = np.maximum(x, 0)
            cache.append(x > 0)
        elif n.op == "Flatten":
            y = x.reshape(x.shape[0], -1)
            cache.append(x.shape)
        else:
            w, b = params[n.name]
            y = x @ w.T + b
            cache.append(x)
        x = y
    return x, cache


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _loss_and_grads(graph, params, x, y, soft=None):
    """``soft``: ``(teacher logits for x, T, weight)`` adds the distillation term."""
    logits, cache = _forward(graph, params, x)
    n = x.shape[0]
    if soft is not None and soft[2] > 0:
        teacher, t, a = soft
        _, g = loss_and_logit_grad(logits, y, teacher, t, a)
        g = g.astype(logits.dtype)
        # The loss in log-softmax form: exact where a class's probability underflows.
        log_q = _log_softmax(np.asarray(teacher, np.float64) / t)
        kl = np.sum(np.exp(log_q) * (log_q - _log_softmax(logits.astype(np.float64) / t)), 1)
        ce = -_log_softmax(logits.astype(np.float64))[np.arange(n), y]
        loss = float(np.mean((1 - a) * ce + a * t * t * kl))
    else:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - z[np.arange(n), y]))
        p /= total
        g = p
        g[np.arange(n), y] -= 1
        g /= n
    grads = {}
    for k in range(len(graph.nodes) - 1, -1, -1):
        node, c = graph.nodes[k], cache[k]
        if node.op == "Conv2d":
            g, dw, db = _conv_backward(node, params[node.name][0], *c, g, need_dx=k > 0)
            grads[node.name] = (dw, db)
        elif node.op == "MaxPool2d":
            g = _pool_backward(node, *c, g)
        elif node.op == "Relu":
            g = g * c
        elif node.op == "Flatten":
            g = g.reshape(c)
        else:
            grads[node.name] = (g.T @ c, g.sum(axis=0))
            g = g @ params[node.name][0]
    return loss, grads


def gradients(graph: Graph, x, y, params=None, teacher=None, temperature: float = 1.0,
              weight: float = 0.0):
    """Mean loss of ``graph``'s logits and its gradients for one batch: softmax
    cross-entropy, mixed with the distillation term when ``teacher`` is given.

    Parameters
    ----------
    graph : Graph
        A trainable chain (see the module docstring).
    x : array[batch, *graph.input_shape]
    y : int array[batch]
        Class labels.
    params : dict of str to (weight, bias), optional
        Replaces the graph's parameters (any float dtype; the computation runs in it).
    teacher : array[batch, classes], optional
        A teacher's logits for ``x``; the loss becomes
        ``(1 - weight) · CE + weight · temperature² · KL`` of the softened outputs.

    Returns
    -------
    loss : float
    grads : dict of str to (dweight, dbias)
        One entry per ``Conv2d``/``Linear`` node.
    """
    _check_chain(graph)
    if params is None:
        params = _params(graph, np.float64)
    dtype = np.result_type(*[a for wb in params.values() for a in wb])
    soft = None if teacher is None else (np.asarray(teacher), temperature, weight)
    with threadpool_limits(1):
        return _loss_and_grads(graph, params, np.asarray(x, dtype), np.asarray(y, np.int64),
                               soft)


def _check_masks(graph: Graph, masks) -> dict:
    masks = dict(masks or {})
    weights = {n.name: n.weight for n in graph.nodes if n.weight is not None}
    for name, m in masks.items():
        if name not in weights:
            raise ValueError(f"mask for {name!r}: no Conv2d/Linear node of that name; the "
                             f"graph has {', '.join(weights)}")
        if np.shape(m) != weights[name].shape:
            raise ValueError(f"mask for {name!r} has shape {np.shape(m)}; the weight has "
                             f"{weights[name].shape}")
    return {k: (np.asarray(m) != 0).astype(np.float32) for k, m in masks.items()}


def train(graph: Graph, x, y, epochs: int = 30, lr: float = 3e-3, batch: int = 32,
          seed: int = SEED, weight_decay: float = 0.0, masks=None, progress=None,
          distill: Distill | None = None) -> Graph:
    """``graph`` trained on ``x[batch, *input_shape]``, ``y`` (a new Graph).

    Adam on float32 parameters, mini-batches in an order drawn from ``seed``. ``masks``
    (node name to a 0/1 array of that node's weight shape) keeps pruned weights at exactly
    0. ``distill``: the teacher's logits for ``x`` (row for row) mixed into the targets.
    ``progress(epoch, epochs)`` is called after every epoch.

    Raises
    ------
    ValueError
        The graph is not a trainable chain, a mask names no weight or has the wrong shape,
        ``x`` does not fit the graph's input, or ``distill`` has not one row per input.
    """
    _check_chain(graph)
    masks = _check_masks(graph, masks)
    x = np.asarray(x, np.float32)
    if x.shape[1:] != graph.input_shape:
        raise ValueError(f"inputs have shape {x.shape}; the graph takes (batch, "
                         f"{', '.join(map(str, graph.input_shape))})")
    if distill is not None and np.shape(distill.logits)[0] != len(x):
        raise ValueError(f"distillation: {np.shape(distill.logits)[0]} teacher outputs for "
                         f"{len(x)} training inputs")
    with threadpool_limits(1):  # small matrices; one thread is faster and reproducible
        params = _train(graph, x, np.asarray(y, np.int64), epochs, lr, batch, seed,
                        weight_decay, masks, progress, distill)
    return _rebuild(graph, params)


def _train(graph, x, y, epochs, lr, batch, seed, weight_decay, masks, progress, distill):
    rng = np.random.default_rng(seed)
    params = _params(graph, np.float32)
    for name, m in masks.items():
        params[name][0] *= m
    names = list(params)
    flat = [p for name in names for p in params[name]]
    opt = _Adam(flat, lr)
    for epoch in range(epochs):
        for idx in _batches(len(x), batch, rng):
            soft = (None if distill is None else
                    (distill.logits[idx], distill.temperature, distill.weight))
            _, grads = _loss_and_grads(graph, params, x[idx], y[idx], soft)
            steps = []
            for name in names:
                dw, db = grads[name]
                if weight_decay:
                    dw = dw + weight_decay * params[name][0]
                if name in masks:
                    dw = dw * masks[name]
                steps += [dw.astype(np.float32), db.astype(np.float32)]
            opt.step(flat, steps)
        for name, m in masks.items():
            params[name][0] *= m
        if progress:
            progress(epoch + 1, epochs)
    return params


def retrain(graph: Graph, masks, x, y, epochs: int = 10, lr: float = 1e-3, batch: int = 32,
            seed: int = SEED, weight_decay: float = 0.0, progress=None,
            distill: Distill | None = None) -> Graph:
    """Masked retraining after pruning: :func:`train` with ``masks`` (node name to a 0/1
    array of the weight's shape; nodes without a mask train densely) and a lower rate."""
    return train(graph, x, y, epochs=epochs, lr=lr, batch=batch, seed=seed,
                 weight_decay=weight_decay, masks=masks, progress=progress, distill=distill)


def teacher(graph: Graph, x, temperature: float = 4.0, weight: float = 0.5) -> Distill:
    """Distillation targets: ``graph``'s float logits (``graph.forward``) for the training
    inputs ``x``, to pass as ``distill`` to :func:`train` / :func:`retrain`."""
    x = np.asarray(x, np.float32).reshape(-1, *graph.input_shape)
    return Distill(np.asarray(graph.forward(x), np.float64), temperature, weight)


def accuracy(graph: Graph, x, y) -> float:
    """Fraction of ``x`` (reshaped to the graph's input) whose arg-max of ``graph.forward``,
    the IR's float reference, is ``y``."""
    x = np.asarray(x, np.float32).reshape(-1, *graph.input_shape)
    return float(np.mean(graph.forward(x).argmax(axis=1) == np.asarray(y)))


def train_digits_cnn(x_train, y_train, epochs: int = 30, seed: int = SEED,
                     channels=CHANNELS, progress=None) -> Graph:
    """The digits CNN (:func:`init_cnn` on 1×8×8 inputs) trained on ``x_train`` as
    :func:`quantize.digits.load_digits_split` returns it (rows of 64 pixels in [0, 1])."""
    x = np.asarray(x_train, np.float32).reshape(-1, 1, 8, 8)
    graph = init_cnn((1, 8, 8), channels, 10, seed)
    return train(graph, x, y_train, epochs=epochs, lr=3e-3, batch=32, seed=seed,
                 weight_decay=1e-4, progress=progress)
