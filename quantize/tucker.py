"""Tucker-2 factorization of convolutions: one ``Conv2d`` becomes 1×1 → k×k → 1×1.

A ``Conv2d`` weight ``W`` (``O × C × k × k``, ``groups=1``) is factored on its two channel
modes (Kim et al. 2016, "Compression of deep convolutional neural networks for fast and
low power mobile applications")::

    W ≈ Ŵ = G ×₀ U₀ ×₁ U₁,    G = W ×₀ U₀ᵀ ×₁ U₁ᵀ   (r_out × r_in × k × k)

with ``U₀`` (``O × r_out``) and ``U₁`` (``C × r_in``) orthonormal. HOSVD takes each as the
leading left singular vectors of ``W``'s mode unfolding (mode 0: ``O × C·k·k``, mode 1:
``C × O·k·k``); HOOI then alternates, each factor the leading left singular vectors of ``W``
projected on the other, which never increases the error. Because the projections are
orthogonal, ``||W − Ŵ||²_F = ||W||²_F − ||G||²_F``; for HOSVD (de Lathauwer et al. 2000)
this lies between the larger and the sum of the two modes' discarded energies
``Σ_{i > r} σ_i²``, and equals it when only one mode is truncated.

As a graph, the convolution becomes three convolutions with no activation between:

1. ``{name}.in``: 1×1, ``C → r_in``, weight ``U₁ᵀ``, no bias;
2. ``{name}.core``: k×k, ``r_in → r_out``, weight ``G``, the original stride and padding,
   no bias (zero padding commutes with a bias-free 1×1 convolution, so padding the
   projected input equals projecting the padded input);
3. ``{name}.out``: 1×1, ``r_out → O``, weight ``U₀``, the original bias; it writes the
   original node's output value, so later nodes are untouched.

A layer is factored only if ``C·r_in + r_out·r_in·k² + r_out·O < O·C·k²``. The three
nodes are ordinary ``Conv2d`` nodes: :mod:`quantize.train_cnn` fine-tunes them and
:func:`quantize.compress_graph.compress_graph` prunes and shares them; the int8 runtime
runs them as three GEMMs, the first two with the full int8 range as their clamp.

:func:`choose_ranks` picks a layer's ranks on held-out data: each candidate is factored,
fine-tuned briefly on the fitting images and scored on validation images, and the one with
the fewest weights whose validation accuracy is within a budget of the unfactored graph's
wins.
"""

import numpy as np

from .graph import Graph, Node
from .lowrank import rank_for_energy
from .train_cnn import accuracy, train

__all__ = ["tucker2", "reconstruct", "tucker_params", "ranks_for_energy",
           "ranks_for_compression", "tucker_graph", "choose_ranks", "rank_grid", "SUFFIXES"]

#: Names of the three nodes a factored ``Conv2d`` becomes, appended to its name.
SUFFIXES = (".in", ".core", ".out")


def _unfold(w: np.ndarray, mode: int) -> np.ndarray:
    return np.moveaxis(w, mode, 0).reshape(w.shape[mode], -1)


def _leading(m: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading ``r`` left singular vectors of ``m`` and all its singular values."""
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, :r], s


def _core(w, u0, u1) -> np.ndarray:
    return np.einsum("ocij,or,cs->rsij", w, u0, u1)


def reconstruct(core: np.ndarray, u0: np.ndarray, u1: np.ndarray) -> np.ndarray:
    """``Ŵ = G ×₀ U₀ ×₁ U₁`` (``O × C × k × k``), in float64."""
    return np.einsum("rsij,or,cs->ocij", np.asarray(core, np.float64),
                     np.asarray(u0, np.float64), np.asarray(u1, np.float64))


def _feasible(shape, r_out: int, r_in: int) -> bool:
    """A multilinear rank: neither channel rank above the other times ``kh·kw``."""
    k = shape[2] * shape[3]
    return r_out <= r_in * k and r_in <= r_out * k


def tucker2(weight: np.ndarray, r_out: int, r_in: int, hooi: int = 0) -> dict:
    """Tucker-2 of a ``Conv2d`` weight ``O × C × kh × kw`` at ranks ``(r_out, r_in)``.

    Parameters
    ----------
    weight : array
        The convolution weight.
    r_out, r_in : int
        Ranks of the output-channel (mode 0) and input-channel (mode 1) factors.
    hooi : int
        HOOI iterations after the HOSVD start (0: plain truncated HOSVD).

    Returns
    -------
    dict
        ``core`` (``r_out × r_in × kh × kw``), ``u0`` (``O × r_out``), ``u1``
        (``C × r_in``), all float64; ``s0``, ``s1`` (the two unfoldings' singular values,
        descending); ``error2`` (``||W − Ŵ||²_F``); ``discarded2`` (``Σ`` of both modes'
        discarded ``σ²``); ``energy2`` (``||W||²_F``).

    Raises
    ------
    ValueError
        A weight that is not 4-D, a rank outside ``1 .. O`` / ``1 .. C``, or one rank above
        the other times ``kh·kw`` (no core has it).
    """
    w = np.asarray(weight, np.float64)
    if w.ndim != 4:
        raise ValueError(f"Tucker-2 takes a Conv2d weight O x C x kh x kw, got shape {w.shape}")
    o, c, kh, kw = w.shape
    if not 1 <= r_out <= o or not 1 <= r_in <= c:
        raise ValueError(f"ranks ({r_out}, {r_in}): use 1..{o} output and 1..{c} input "
                         f"ranks for a {o} x {c} x {kh} x {kw} weight")
    if not _feasible(w.shape, r_out, r_in):
        raise ValueError(f"ranks ({r_out}, {r_in}): a core of {r_out} x {r_in} x {kh} x {kw} "
                         f"has mode ranks of at most {min(r_out, r_in * kh * kw)} and "
                         f"{min(r_in, r_out * kh * kw)}; use r_out <= {kh * kw}*r_in and "
                         f"r_in <= {kh * kw}*r_out")
    u0, s0 = _leading(_unfold(w, 0), r_out)
    u1, s1 = _leading(_unfold(w, 1), r_in)
    for _ in range(hooi):
        u0, _ = _leading(_unfold(np.einsum("ocij,cs->osij", w, u1), 0), r_out)
        u1, _ = _leading(_unfold(np.einsum("ocij,or->rcij", w, u0), 1), r_in)
    core = _core(w, u0, u1)
    energy = float(np.sum(w * w))
    return {"core": core, "u0": u0, "u1": u1, "s0": s0, "s1": s1,
            "error2": float(np.sum((w - reconstruct(core, u0, u1)) ** 2)),
            "discarded2": float(np.sum(s0[r_out:] ** 2) + np.sum(s1[r_in:] ** 2)),
            "energy2": energy}


def tucker_params(shape, r_out: int, r_in: int) -> int:
    """Weights of the three convolutions for a weight of ``shape`` (``O, C, kh, kw``)."""
    o, c, kh, kw = shape
    return c * r_in + r_out * r_in * kh * kw + r_out * o


def ranks_for_energy(weight: np.ndarray, energy: float) -> tuple[int, int]:
    """``(r_out, r_in)``: per mode, the smallest rank keeping ``energy`` of its ``Σ σ²``."""
    w = np.asarray(weight, np.float64)
    return tuple(rank_for_energy(np.linalg.svd(_unfold(w, m), compute_uv=False), energy)
                 for m in (0, 1))


def ranks_for_compression(shape, ratio: float) -> tuple[int, int]:
    """The largest ``(r_out, r_in)`` in the proportion ``O : C`` whose three convolutions
    hold at most ``O·C·kh·kw / ratio`` weights (at least ``(1, 1)``)."""
    if ratio <= 1.0:
        raise ValueError(f"Tucker-2 compression {ratio}: use a ratio above 1")
    o, c, kh, kw = shape
    budget = o * c * kh * kw / ratio
    best = (1, 1)
    for r_out in range(1, o + 1):
        r_in = max(1, round(r_out * c / o))
        if tucker_params(shape, r_out, min(r_in, c)) <= budget:
            best = (r_out, min(r_in, c))
    return best


def tucker_graph(graph: Graph, ranks: dict | None = None, energy: float | None = None,
                 hooi: int = 0) -> tuple[Graph, dict]:
    """``(graph with the chosen convolutions factored, {node: info})``.

    Parameters
    ----------
    graph : Graph
    ranks : dict, optional
        Node name → ``(r_out, r_in)``; only these nodes are factored.
    energy : float, optional
        Instead of ``ranks``: every ``groups=1`` ``Conv2d`` at :func:`ranks_for_energy`.
    hooi : int
        HOOI iterations (:func:`tucker2`).

    Returns
    -------
    Graph, dict
        Per factored node: ``ranks``, ``params`` (three convolutions) and ``original``
        weights, and :func:`tucker2`'s ``error2``, ``discarded2``, ``energy2``. A node
        whose factors would not be smaller stays whole and has no entry.

    Raises
    ------
    ValueError
        Both or neither of ``ranks`` and ``energy``; a name that is not a ``groups=1``
        ``Conv2d`` of the graph.
    """
    if (ranks is None) == (energy is None):
        raise ValueError("Tucker-2: give ranks per node ({'conv2': (r_out, r_in)}) or a "
                         "retained energy, one of them")
    convs = {n.name: n for n in graph.nodes if n.op == "Conv2d" and n.attrs["groups"] == 1}
    for name in ranks or {}:
        if name not in convs:
            raise ValueError(f"Tucker-2 names node {name!r}, which is not a groups=1 Conv2d "
                             f"of the graph ({', '.join(convs) or 'none'})")
    nodes, info = [], {}
    for n in graph.nodes:
        if n.name not in convs or (ranks is not None and n.name not in ranks):
            nodes.append(n)
            continue
        r = tuple(ranks[n.name]) if ranks is not None else ranks_for_energy(n.weight, energy)
        params = tucker_params(n.weight.shape, *r)
        if params >= n.weight.size:
            nodes.append(n)
            continue
        t = tucker2(n.weight, *r, hooi=hooi)
        first, core, last = (n.name + s for s in SUFFIXES)
        nodes += [
            Node(first, "Conv2d", n.inputs, first, {},
                 {"weight": t["u1"].T[:, :, None, None], "bias": np.zeros(r[1])}),
            Node(core, "Conv2d", first, core,
                 {"stride": n.attrs["stride"], "pads": n.attrs["pads"]},
                 {"weight": t["core"], "bias": np.zeros(r[0])}),
            Node(last, "Conv2d", core, n.output, {},
                 {"weight": t["u0"][:, :, None, None], "bias": n.bias})]
        info[n.name] = {"ranks": list(r), "params": params, "original": int(n.weight.size),
                        **{k: t[k] for k in ("error2", "discarded2", "energy2")}}
    return Graph(graph.input_name, graph.input_shape, nodes), info


def rank_grid(shape, fractions=(0.125, 0.25, 0.375, 0.5, 0.75)) -> list[tuple[int, int]]:
    """Candidate ``(r_out, r_in)``: every pair of ``fractions`` of ``O`` and of ``C`` (at
    least 1) that :func:`tucker2` takes and that has fewer weights than the layer, most
    compressive first."""
    o, c = shape[:2]
    outs = sorted({max(1, round(f * o)) for f in fractions})
    ins = sorted({max(1, round(f * c)) for f in fractions})
    grid = [(a, b) for a in outs for b in ins
            if tucker_params(shape, a, b) < int(np.prod(shape)) and _feasible(shape, a, b)]
    return sorted(grid, key=lambda r: (tucker_params(shape, *r), r))


def choose_ranks(graph: Graph, name: str, x_fit, y_fit, x_val, y_val, candidates=None,
                 budget: float = 0.005, epochs: int = 5, lr: float = 1e-3, hooi: int = 0,
                 seed: int = 0, distill=None) -> dict:
    """Ranks for node ``name`` chosen on validation data.

    Each candidate ``(r_out, r_in)`` is factored (:func:`tucker_graph`), fine-tuned
    ``epochs`` on ``x_fit``/``y_fit`` (:func:`quantize.train_cnn.train`, every weight
    trainable) and scored on ``x_val``/``y_val``; the candidate with the fewest weights whose
    validation accuracy is at least the unfactored graph's minus ``budget`` (a fraction:
    0.005 is half a point) is chosen, ties going to the higher accuracy.

    Parameters
    ----------
    graph : Graph
        A trainable chain (:mod:`quantize.train_cnn`), already trained on ``x_fit``.
    name : str
        A ``groups=1`` ``Conv2d`` of ``graph``.
    x_fit, y_fit, x_val, y_val : arrays
        Fitting and validation inputs (``[batch, *input_shape]``) and labels; the
        validation images take no part in training.
    candidates : list of (int, int), optional
        ``(r_out, r_in)`` pairs; default :func:`rank_grid` of the weight's shape.
    budget : float
        Allowed validation accuracy loss, as a fraction.
    distill : quantize.train.Distill, optional
        Teacher logits for ``x_fit`` mixed into the fine-tuning targets.

    Returns
    -------
    dict
        ``ranks`` (the chosen pair, or ``None`` when no candidate is within the budget:
        keep the layer whole), ``reference_accuracy`` (the unfactored graph's validation
        accuracy), ``floor``, ``validation_images`` and ``scan``: per candidate its
        ``ranks``, ``params``, ``original`` weights, ``relative_error`` of the factors,
        ``factored_accuracy`` (before fine-tuning) and ``validation_accuracy``.

    Raises
    ------
    ValueError
        ``name`` is not a ``groups=1`` ``Conv2d`` of ``graph``, or no candidates.
    """
    node = {n.name: n for n in graph.nodes}.get(name)
    if node is None or node.op != "Conv2d" or node.attrs["groups"] != 1:
        raise ValueError(f"choose_ranks: {name!r} is not a groups=1 Conv2d of the graph")
    cands = [tuple(int(v) for v in r) for r in
             (rank_grid(node.weight.shape) if candidates is None else candidates)]
    if not cands:
        raise ValueError(f"choose_ranks: no candidate ranks for {name!r}")
    reference = accuracy(graph, x_val, y_val)
    floor = reference - budget
    scan = []
    for r in cands:
        tg, info = tucker_graph(graph, {name: r}, hooi=hooi)
        if name not in info:        # factors no smaller than the layer
            continue
        row = {"ranks": list(r), "params": info[name]["params"],
               "original": info[name]["original"],
               "relative_error": float(np.sqrt(info[name]["error2"] / info[name]["energy2"])),
               "factored_accuracy": accuracy(tg, x_val, y_val)}
        tg = train(tg, x_fit, y_fit, epochs=epochs, lr=lr, seed=seed, distill=distill)
        row["validation_accuracy"] = accuracy(tg, x_val, y_val)
        scan.append(row)
    ok = [row for row in scan if row["validation_accuracy"] >= floor - 1e-12]
    best = min(ok, key=lambda row: (row["params"], -row["validation_accuracy"]),
               default=None)
    return {"ranks": None if best is None else tuple(best["ranks"]),
            "reference_accuracy": reference, "floor": floor,
            "validation_images": int(len(y_val)), "scan": scan}
