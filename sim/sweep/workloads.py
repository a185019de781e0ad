"""The workloads a sweep runs, named by short strings in its spec.

Systolic engine (each workload is a list of GEMMs run one after another; cycles add up):

``gemm:MxKxN``
    One M×K×N GEMM.
``conv:NET`` / ``conv:NET/LAYER``
    The convolutions of AlexNet, VGG-16 or ResNet-18 at their ImageNet shapes (batch 1),
    each lowered to its im2col GEMM as suite ``convs`` of ``make bench`` does.
``image:DIR`` / ``image:DIR:BATCH``
    The GEMMs of a compressed network (``nnaccel compress``; an MLP or a graph image made
    for either engine) for a batch of inputs (default 1): an MLP layer is BATCH×in×out, a
    graph's convolutions and linear layers are lowered as the runtime lowers them (each
    GEMM whole, not cut into the jobs a run makes).

EIE engine (each workload is one sparse layer with one input vector):

``eie:NAME`` / ``eie:all``
    One of EIE's nine benchmark layers (suite ``eie``: the paper's sizes and densities,
    the same random matrices and inputs); ``all`` stands for the nine.
``layer:IxO:DENSITY:ACT_DENSITY``
    A random layer of I inputs and O outputs, weight and activation densities in (0, 1].
"""

import re
from functools import cache

from hw.eie import EieConfig
from quantize.image import is_graph, load_image
from quantize.lower import lower
from sim.bench.convs import LAYERS as CONV_LAYERS
from sim.bench.convs import gemm as conv_gemm
from sim.bench.eie import EIE_LAYERS
from sim.bench.eie import SEED as EIE_SEED
from sim.eie import random_layer

__all__ = ["ENGINE_OF", "expand", "gemms", "eie_layer"]

#: Workload kind -> the engine that runs it.
ENGINE_OF = {"gemm": "systolic", "conv": "systolic", "image": "systolic", "eie": "eie",
             "layer": "eie"}

#: Seed of the random ``layer:`` workloads (the matrix and its input).
LAYER_SEED = 7

_GEMM = re.compile(r"^(\d+)x(\d+)x(\d+)$")
_LAYER = re.compile(r"^(\d+)x(\d+):([0-9.eE+-]+):([0-9.eE+-]+)$")


def expand(engine: str, text: str) -> list[str]:
    """The workloads ``text`` stands for on ``engine`` (``eie:all`` is nine); raise
    ``ValueError`` saying what is wrong with it."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"workload {text!r}: use KIND:ARGS with KIND one of "
                         f"{', '.join(ENGINE_OF)}")
    kind, arg = text.split(":", 1)
    if kind not in ENGINE_OF:
        raise ValueError(f"workload {text!r}: unknown kind {kind!r} (kinds: "
                         f"{', '.join(ENGINE_OF)})")
    if ENGINE_OF[kind] != engine:
        raise ValueError(f"workload {text!r} runs on the {ENGINE_OF[kind]} engine, not "
                         f"{engine}")
    if kind == "eie" and arg == "all":
        return [f"eie:{name}" for name in EIE_LAYERS]
    if kind == "gemm":
        match = _GEMM.match(arg)
        if not match or min(int(x) for x in match.groups()) < 1:
            raise ValueError(f"workload {text!r}: use gemm:MxKxN with positive M, K, N")
    elif kind == "conv":
        _conv_layers(text, arg)
    elif kind == "image":
        _image(text)
    elif kind == "eie":
        if arg not in EIE_LAYERS:
            raise ValueError(f"workload {text!r}: no such benchmark layer (layers: "
                             f"{', '.join(EIE_LAYERS)}, or all)")
    else:
        match = _LAYER.match(arg)
        if not match:
            raise ValueError(f"workload {text!r}: use layer:IxO:DENSITY:ACT_DENSITY")
        i, o = int(match[1]), int(match[2])
        d, ad = float(match[3]), float(match[4])
        if i < 1 or o < 1 or not 0 < d <= 1 or not 0 < ad <= 1:
            raise ValueError(f"workload {text!r}: sizes must be positive and densities in "
                             f"(0, 1]")
    return [text]


def _conv_layers(text: str, arg: str):
    net, _, name = arg.partition("/")
    layers = [c for c in CONV_LAYERS if c.net == net and (not name or c.name == name)]
    if not layers:
        nets = sorted({c.net for c in CONV_LAYERS})
        raise ValueError(f"workload {text!r}: no such convolution (nets: {', '.join(nets)}; "
                         f"NET/LAYER for one layer, e.g. AlexNet/conv1)")
    return layers


def _image(text: str):
    """``(image, batch)`` of an ``image:`` workload."""
    arg = text.split(":", 1)[1]
    path, _, batch = arg.rpartition(":")
    if not path or not batch.isdigit():
        path, batch = arg, "1"
    if int(batch) < 1:
        raise ValueError(f"workload {text!r}: the batch must be at least 1")
    try:
        return load_image(path), int(batch)
    except (ValueError, OSError) as e:
        raise ValueError(f"workload {text!r}: {e}") from None


def digest(text: str) -> str:
    """What a workload's results depend on beyond its name: an image's manifest digest
    (which covers its files), or nothing."""
    return _image(text)[0].manifest["digest"] if text.startswith("image:") else ""


@cache
def gemms(text: str) -> tuple[tuple[int, int, int], ...]:
    """The M×K×N GEMMs of a systolic workload."""
    kind, arg = text.split(":", 1)
    if kind == "gemm":
        return (tuple(int(x) for x in _GEMM.match(arg).groups()),)
    if kind == "image":
        image, batch = _image(text)
        if not is_graph(image):
            return tuple((batch, spec["in"], spec["out"]) for spec in image.manifest["layers"])
        out = []
        for layer in image.qgraph.layers:
            if layer.kind == "gemm":
                low = lower(layer.node, layer.in_shape, batch)
                out += [(low.m, low.k, low.n)] * low.count
        return tuple(out)
    return tuple((g["m"], g["k"], g["n"]) for g in map(conv_gemm, _conv_layers(text, arg)))


def eie_layer(text: str, config: EieConfig):
    """``(layer, activations)`` of an EIE workload, with codebook and input in ``config``'s
    number formats (:func:`sim.eie.random_layer`)."""
    kind, arg = text.split(":", 1)
    if kind == "eie":
        i, o, d, ad, _ = EIE_LAYERS[arg]
        seed = EIE_SEED + list(EIE_LAYERS).index(arg)
    else:
        match = _LAYER.match(arg)
        i, o, d, ad = int(match[1]), int(match[2]), float(match[3]), float(match[4])
        seed = LAYER_SEED
    return random_layer(config, i, o, d, ad, seed=seed)

