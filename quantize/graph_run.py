"""Run a quantized graph (:class:`~quantize.graph_quant.QuantGraph`) end to end in int8.

Convolutions and Linear layers run on the systolic engine through a backend of
:mod:`quantize.backends` (``"golden"``: the bit-exact NumPy model, cycles from
:func:`hw.systolic.driver.model_cycles`; ``"rtl"``: the generated Verilog under Verilator,
cycles measured), lowered by :mod:`quantize.lower` (im2col patches on the host). Every
other op runs on the host in TFLite's integer arithmetic (:mod:`sim.golden.host_ops`),
and a final Softmax in float.

One :class:`~hw.systolic.config.SystolicConfig` serves the whole graph (so the RTL is
built once): :func:`plan_config` sizes its buffers with ``SystolicConfig.fit`` for every
layer's GEMMs, with M capped at ``max_m`` rows per job. Each GEMM is then cut into jobs
the config admits: M in chunks of at most ``min(acc_depth, act_depth / ceil(K/rows))``
rows, N in groups the weight and parameter buffers hold. K is never split (the engine
requantizes each job's int32 sums), so a layer whose K does not fit is refused.

A table activation (Gelu, Sigmoid, Tanh, HardSwish, Silu: a ``"lut"`` layer) that reads
only a GEMM layer's output runs on the engine on backends that carry the table
(:data:`LUT_BACKENDS`): its 256-entry table goes with each of that layer's jobs
(``GemmJob.lut``) and the engine's output stage applies it after the clamp; its own
record says ``where="fused"``. Elsewhere it runs on the host.

A 3×3 stride-1 convolution the quantized graph lists in ``qgraph.winograd`` (calibrated
by :func:`add_winograd`) runs as Winograd F(2×2, 3×3) (:mod:`quantize.winograd`): the host
transforms its input, the engine runs the 16 GEMMs ``[tiles, C] × [C, O]`` (cut into jobs
as any GEMM), the host transforms the products back and requantizes them with the layer's
own parameters. A table activation after it runs on the host.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from hw.systolic.config import SystolicConfig
from hw.systolic.driver import GemmJob, model_cycles
from sim.golden import host_ops
from sim.golden.softmax import int8_softmax

from .backends import backend as backend_of
from .graph_kernels import KERNELS
from .lower import lower
from .winograd import POSITIONS, WinogradConv

__all__ = ["GraphRun", "run_graph", "plan_config", "engine_gemms", "lut_fusions",
           "LUT_BACKENDS", "winograd_unfit", "winograd_names", "add_winograd",
           "winograd_gemm", "winograd_cycles"]

#: Backends whose GEMM jobs carry an activation table (the board driver sends none).
LUT_BACKENDS = ("golden", "rtl")


@dataclass
class GraphRun:
    """The result of :func:`run_graph`.

    Members
    -------
    output : int8 array
        The int8 graph output, ``[batch, *shape]`` (a final Softmax's input).
    float_output : float64 array
        ``output`` dequantized (and, for a graph ending in Softmax, the softmax of that).
    layers : list of dict
        Per layer: ``name``, ``op``, ``where`` (``"engine"``/``"host"``), ``shape``
        (``"MxKxN"`` per GEMM and ``count`` of them, or the output shape), ``macs``
        (the engine's multiplies), ``jobs``, ``cycles`` (model or measured; ``None`` on
        the host), ``utilization`` (MACs / (cycles · rows · cols)), ``expansion``
        (activation words the engine reads over the layer input's size) and, for a
        Winograd layer, ``schedule="winograd"``.
    config : SystolicConfig
        The engine configuration every GEMM ran on.
    engine : str
        The backend's name.
    """

    output: np.ndarray
    float_output: np.ndarray
    layers: list
    config: SystolicConfig
    engine: str

    @property
    def cycles(self) -> int:
        return sum(r["cycles"] for r in self.layers if r["cycles"] is not None)

    @property
    def macs(self) -> int:
        return sum(r["macs"] for r in self.layers)

    def table(self) -> str:
        """The per-layer table as text."""
        head = (f"{'layer':<14}{'op':<18}{'where':<7}{'shape':<22}{'MACs':>10}{'cycles':>9}"
                f"{'util':>7}{'im2col':>8}")
        lines = [head]
        for r in self.layers:
            util = f"{r['utilization']:.1%}" if r["utilization"] is not None else "-"
            exp = f"{r['expansion']:.2f}" if r["expansion"] is not None else "-"
            cyc = str(r["cycles"]) if r["cycles"] is not None else "-"
            op = r["op"] + (" wino" if r.get("schedule") == "winograd" else "")
            lines.append(f"{r['name']:<14}{op:<18}{r['where']:<7}{r['shape']:<22}"
                         f"{r['macs']:>10}{cyc:>9}{util:>7}{exp:>8}")
        total = self.macs / (self.cycles * self.config.macs) if self.cycles else None
        lines.append(f"{'total':<61}{self.macs:>10}{self.cycles:>9}"
                     f"{(f'{total:.1%}' if total is not None else '-'):>7}")
        return "\n".join(lines)


def engine_gemms(qgraph, batch: int) -> list:
    """``(layer, Lowered)`` for every engine layer of ``qgraph`` at ``batch`` samples."""
    return [(layer, lower(layer.node, layer.in_shape, batch))
            for layer in qgraph.layers if layer.kind == "gemm"]


def plan_config(qgraph, batch: int, rows: int = 8, cols: int = 8, base=None,
                max_m: int = 256) -> SystolicConfig:
    """A :class:`SystolicConfig` (``rows × cols``, or ``base``'s array) whose buffers hold
    every GEMM of ``qgraph`` for ``batch`` samples with at most ``max_m`` rows per job.

    With a ``base``, M and N are first cut to what its buffers hold (as :func:`run_graph`
    cuts them), and ``SystolicConfig.fit`` keeps its depths where they suffice: a preset
    that holds every layer's K is returned unchanged.
    """
    if max_m < 1:
        raise ValueError(f"max_m={max_m}: must be at least 1")
    gemms = []
    shapes = [(lw.m, lw.k, lw.n) if layer.name not in qgraph.winograd
              else winograd_gemm(layer, batch) for layer, lw in engine_gemms(qgraph, batch)]
    for m, k, n in shapes:
        m = min(m, max_m)
        if base is not None:
            kt = -(-k // base.rows)
            m = min(m, base.acc_depth, max(1, base.act_depth // kt))
            n = min(n, base.param_depth * base.cols,
                    max(1, base.weight_depth // (kt * base.rows)) * base.cols)
        gemms.append((m, k, n))
    if not gemms:
        gemms = [(1, 1, 1)]
    fields = {} if base is not None else {"rows": rows, "cols": cols,
                                          "act_lut": bool(lut_fusions(qgraph))}
    return SystolicConfig.fit(gemms, base=base, **fields)


def _tiles(cfg: SystolicConfig, layer, m: int, k: int, n: int):
    """Row slices of M and column slices of N whose jobs ``cfg`` admits."""
    kt = -(-k // cfg.rows)
    m_step = min(cfg.acc_depth, cfg.act_depth // kt)
    n_step = min(cfg.param_depth, cfg.weight_depth // (kt * cfg.rows)) * cfg.cols
    if m_step < 1 or n_step < 1:
        raise ValueError(f"node {layer.name!r} ({layer.op}): K={k} does not fit the engine "
                         f"(act_depth={cfg.act_depth}, weight_depth={cfg.weight_depth}); "
                         f"K is not split because each job requantizes")
    rows = [slice(i, min(i + m_step, m)) for i in range(0, m, m_step)]
    cols = [slice(j, min(j + n_step, n)) for j in range(0, n, n_step)]
    for r in rows:
        for c in cols:
            cfg.check_gemm(r.stop - r.start, k, c.stop - c.start)
    return rows, cols


def lut_fusions(qgraph) -> dict:
    """``{index of a GEMM layer: the "lut" layer that reads only its output}``, for the
    table activations the engine can apply in its output stage."""
    readers = {}
    for layer in qgraph.layers:
        for v in layer.inputs:
            readers.setdefault(v, []).append(layer)
    fused = {}
    for i, layer in enumerate(qgraph.layers):
        after = readers.get(layer.output, [])
        if (layer.kind == "gemm" and layer.name not in qgraph.winograd
                and layer.output != qgraph.output and len(after) == 1
                and after[0].kind == "lut" and list(after[0].inputs) == [layer.output]):
            fused[i] = after[0]
    return fused


def _gemm_layer(layer, x, cfg, engine, progress, lut=None):
    """Run one engine layer on int8 input ``x`` (batch first), through the activation
    table ``lut`` if given; ``(y, record)``."""
    p = layer.p
    if p.get("rounding", cfg.rounding) != cfg.rounding:   # an imported kernel's own rounding
        cfg = cfg.replace(rounding=p["rounding"])
    batch = x.shape[0]
    lw = lower(layer.node, layer.in_shape, batch)
    if lw.kind == "linear":
        groups = [x.reshape(-1, lw.k)]
    else:
        node = layer.node
        a = host_ops.im2col(x, node.weight.shape[2:], node.attrs["stride"],
                            node.attrs["pads"], p["input_zero_point"])
        if lw.kind == "conv":
            groups = [a]
        else:   # im2col columns are (channel, kh, kw): channel c owns one block of kh·kw
            groups = [a[:, c * lw.k:(c + 1) * lw.k] for c in range(lw.count)]
    rows, cols = _tiles(cfg, layer, lw.m, lw.k, lw.n)
    jobs, where = [], []
    for g, (a, w) in enumerate(zip(groups, p["weights"], strict=True)):
        ch = g * lw.n
        for c in cols:
            chan = slice(ch + c.start, ch + c.stop)
            args = (w[:, c], p["bias"][chan], p["multiplier"][chan], p["shift"][chan],
                    p["input_zero_point"], p["output_zero_point"], p["act_min"], p["act_max"])
            for r in rows:
                jobs.append(GemmJob(a[r], *args, lut))
                where.append((g, r, c))
    results = engine.gemms(cfg, jobs, f"{layer.name}: {lw.count}x {lw.m}x{lw.k}x{lw.n}",
                           progress)
    y = np.zeros((lw.count, lw.m, lw.n), np.int64)
    for (g, r, c), res in zip(where, results, strict=True):
        y[g, r, c] = np.asarray(res["output"])
    if engine.timed:
        cycles = sum(int(res["cycles"]) for res in results)
    else:
        cycles = sum(model_cycles(cfg, *job.shape, lut=lut is not None) for job in jobs)
    if lw.kind == "linear":
        out = y[0].reshape(batch, *layer.shape)
    else:
        o, oh, ow = layer.shape
        # (group, batch·OH·OW, mult) -> (batch, OH, OW, group·mult) -> NCHW
        out = y.transpose(1, 0, 2).reshape(batch, oh, ow, o).transpose(0, 3, 1, 2)
    record = {"name": layer.name, "op": "+".join((layer.op, *layer.fused)), "where": "engine",
              "shape": (f"{lw.count}x " if lw.count > 1 else "") + f"{lw.m}x{lw.k}x{lw.n}",
              "macs": lw.macs, "jobs": len(jobs), "cycles": cycles,
              "utilization": lw.macs / (cycles * cfg.macs), "expansion": lw.expansion}
    return out.astype(np.int8), record


def winograd_unfit(layer) -> str | None:
    """Why ``layer`` cannot run as Winograd F(2×2, 3×3) (one phrase), or ``None``."""
    if layer.kind != "gemm" or layer.op != "Conv2d":
        return f"a {layer.op}, not a convolution"
    a, kernel = layer.node.attrs, tuple(layer.node.weight.shape[2:])
    if a["groups"] != 1:
        return f"a grouped convolution (groups={a['groups']})"
    if kernel != (3, 3) or tuple(a["stride"]) != (1, 1):
        return f"a {kernel[0]}x{kernel[1]} stride-{a['stride'][0]},{a['stride'][1]} convolution"
    return None


def winograd_names(qgraph, names=None) -> list:
    """The layers of ``qgraph`` to run as Winograd: ``names`` checked (one-line
    ``ValueError`` for a node that is not in the graph or is not a 3×3 stride-1, groups=1
    convolution), or with ``None`` every such convolution (at least one)."""
    layers = {layer.name: layer for layer in qgraph.layers}
    fit = [la.name for la in qgraph.layers if winograd_unfit(la) is None]
    takes = (f"the graph's 3x3 stride-1 convolutions: {', '.join(fit)}" if fit
             else "the graph has none")
    if names is None:
        if not fit:
            raise ValueError("Winograd F(2x2,3x3) runs 3x3 stride-1 convolutions (groups=1); "
                             "the graph has none")
        return fit
    names = list(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"Winograd: give distinct layer names; {takes}")
    for name in names:
        if name not in layers:
            fused = any(name in la.fused for la in qgraph.layers)
            what = "an activation fused into a layer" if fused else "not a layer of the graph"
            raise ValueError(f"Winograd: node {name!r} is {what}; {takes}")
        why = winograd_unfit(layers[name])
        if why is not None:
            raise ValueError(f"Winograd F(2x2,3x3): node {name!r} is {why}; it runs 3x3 "
                             f"stride-1 convolutions ({takes})")
    return [la.name for la in qgraph.layers if la.name in names]


def winograd_gemm(layer, batch: int) -> tuple:
    """``(M, K, N)`` of each of the 16 Winograd GEMMs of ``layer`` for ``batch`` samples:
    the 2×2 output tiles, the input channels, the output channels."""
    o, oh, ow = layer.shape
    return batch * -(-oh // 2) * -(-ow // 2), layer.in_shape[0], o


def winograd_cycles(cfg: SystolicConfig, layer, batch: int) -> tuple:
    """The cost model of a Winograd layer for ``batch`` samples, cut into the jobs a run
    makes: ``(jobs, cycles)``."""
    m, k, n = winograd_gemm(layer, batch)
    rows, cols = _tiles(cfg, layer, m, k, n)
    cycles = sum(model_cycles(cfg, r.stop - r.start, k, c.stop - c.start)
                 for r in rows for c in cols)
    return POSITIONS * len(rows) * len(cols), POSITIONS * cycles


def _winograd_layer(layer, wc, x, cfg, engine, progress):
    """Run ``layer`` as the 16 Winograd GEMMs of ``wc`` on int8 input ``x``;
    ``(y, record)``."""
    rounding = layer.p.get("rounding", cfg.rounding)
    cfg = cfg.replace(rounding=rounding) if rounding != cfg.rounding else cfg
    if wc.rounding != rounding:     # the host's final requantization rounds as the engine
        wc = dataclasses.replace(wc, rounding=rounding)
    gemms, grid, out = wc.jobs(x)
    m, k, n = gemms[0].shape
    rows, cols = _tiles(cfg, layer, m, k, n)
    jobs, where = [], []
    for xi, g in enumerate(gemms):
        for c in cols:
            args = (g.w[:, c], g.bias[c], g.multiplier[c], g.shift[c], g.input_zero_point,
                    g.output_zero_point)
            for r in rows:
                jobs.append(GemmJob(g.a[r], *args))
                where.append((xi, r, c))
    results = engine.gemms(cfg, jobs, f"{layer.name}: Winograd {POSITIONS}x {m}x{k}x{n}",
                           progress)
    p = np.zeros((POSITIONS, m, n), np.int64)
    for (xi, r, c), res in zip(where, results, strict=True):
        p[xi, r, c] = np.asarray(res["output"])
    if engine.timed:
        cycles = sum(int(res["cycles"]) for res in results)
    else:
        cycles = sum(model_cycles(cfg, *job.shape) for job in jobs)
    macs = POSITIONS * m * k * n
    record = {"name": layer.name, "op": "+".join((layer.op, *layer.fused)), "where": "engine",
              "shape": f"{POSITIONS}x {m}x{k}x{n}", "macs": macs, "jobs": len(jobs),
              "cycles": cycles, "utilization": macs / (cycles * cfg.macs),
              "expansion": POSITIONS * m * k / x.size, "schedule": "winograd"}
    return wc.finish(p, grid, out).astype(np.int8), record


def add_winograd(qgraph, x, names=None, headroom: float = 1.0, progress=None):
    """``qgraph`` with the convolutions ``names`` (:func:`winograd_names`; ``None``: all
    3×3 stride-1 ones) on Winograd, calibrated on float inputs ``x``: the graph runs on the
    golden engine, and each such layer's ``V`` and ``P`` ranges come from the int8 inputs it
    sees there, earlier Winograd layers included (:meth:`WinogradConv.calibrate`, ranges
    widened by ``headroom``). Returns a new :class:`QuantGraph`; ``qgraph`` is unchanged."""
    chosen = winograd_names(qgraph, names)
    x = _check_inputs(qgraph, x)
    wino = {}

    def calibrate(layer, a):
        if layer.name in chosen:
            wino[layer.name] = WinogradConv.from_layer(layer).calibrate(a, headroom)
    work = dataclasses.replace(qgraph, winograd=wino)
    engine = backend_of("golden")
    _walk(work, x, plan_config(qgraph, len(x)), engine, progress, {}, calibrate)
    return work


def _check_inputs(qgraph, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    shape = qgraph.graph.input_shape
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or len(x) == 0:
        raise ValueError(f"inputs must have shape (batch, {', '.join(map(str, shape))}) with "
                         f"batch >= 1, got {x.shape}")
    return x


def _host_layer(layer, values):
    p = layer.p
    x = values[layer.inputs[0]]
    kind = layer.kind
    if kind == "maxpool":
        return host_ops.max_pool(x, p["kernel"], p["stride"], p["pads"])
    if kind == "avgpool":
        return host_ops.avg_pool(x, p["kernel"], p["stride"], p["pads"],
                                 p["count_include_pad"], p["zero_point"])
    if kind == "mean":
        return host_ops.global_avg_pool(x, p["input_zero_point"], p["output_zero_point"],
                                        p["multiplier"], p["shift"])
    if kind == "add":
        return host_ops.add(x, values[layer.inputs[1]], **p)
    if kind == "concat":
        return host_ops.concat([values[v] for v in layer.inputs], **p)
    if kind == "clamp":
        return host_ops.clamp(x, p["act_min"], p["act_max"])
    if kind == "lut":
        return host_ops.lut(x, p["table"])
    if kind == "reshape":
        return x.reshape(x.shape[0], *layer.shape)
    if kind == "int8_softmax":
        return int8_softmax(x, **p)
    raise ValueError(f"node {layer.name!r} ({layer.op}): no host op {kind!r}")


def run_graph(qgraph, x, engine="golden", config: SystolicConfig | None = None,
              rows: int = 8, cols: int = 8, max_m: int = 256, progress=None,
              stall: float = 0.0, seed: int = 0) -> GraphRun:
    """Run float inputs ``x[batch, *input_shape]`` through the int8 graph ``qgraph``.

    ``engine`` is ``"golden"``, ``"rtl"`` or a backend object (:mod:`quantize.backends`).
    ``config`` is the engine's configuration; without one, :func:`plan_config` sizes one
    for ``rows × cols`` (the RTL is built once per distinct configuration). ``stall``
    (rtl only) is the probability of a random idle or backpressure cycle on every engine
    stream, ``seed`` its pattern; the measured cycles then include the stalls.

    Raises
    ------
    ValueError
        Inputs of the wrong shape, or a layer the configuration cannot hold.
    """
    x = _check_inputs(qgraph, x)
    engine = backend_of(engine, stall, seed)
    cfg = config or plan_config(qgraph, len(x), rows, cols, max_m=max_m)
    fusions = lut_fusions(qgraph) if engine.name in LUT_BACKENDS and cfg.act_lut else {}
    out, table = _walk(qgraph, x, cfg, engine, progress, fusions)
    real = qgraph.dequantize_output(out)
    if qgraph.softmax:
        last_node = qgraph.graph.nodes[-1]
        real = KERNELS["Softmax"](last_node, real)
        table.append({"name": last_node.name, "op": "Softmax (float)", "where": "host",
                      "shape": "x".join(map(str, last_node.shape)), "macs": 0, "jobs": 0,
                      "cycles": None, "utilization": None, "expansion": None})
    return GraphRun(out, real, table, cfg, engine.name)


def _walk(qgraph, x, cfg, engine, progress, fusions, before=None):
    """The int8 graph on float inputs ``x``: ``(int8 output, per-layer records)``.
    ``before(layer, a)`` sees every engine layer's int8 input before the layer runs."""
    values = {qgraph.graph.input_name: qgraph.quantize_input(x)}
    last = {v: i for i, layer in enumerate(qgraph.layers) for v in layer.inputs}
    fused = {id(la): i for i, la in fusions.items()}
    table = []
    for i, layer in enumerate(qgraph.layers):
        if layer.kind == "gemm" and before is not None:
            before(layer, values[layer.inputs[0]])
        if layer.kind == "gemm" and i in fusions:
            # The GEMM's own output never exists: the engine writes the table's.
            lut = fusions[i]
            y, record = _gemm_layer(layer, values[layer.inputs[0]], cfg, engine, progress,
                                    lut=np.asarray(lut.p["table"]))
            values[lut.output] = y
            y = None
        elif id(layer) in fused:
            y = values[layer.output]
            record = {"name": layer.name, "op": "+".join((layer.op, *layer.fused)),
                      "where": "fused", "shape": "x".join(map(str, layer.shape)), "macs": 0,
                      "jobs": 0, "cycles": None, "utilization": None, "expansion": None}
        elif layer.name in qgraph.winograd:
            y, record = _winograd_layer(layer, qgraph.winograd[layer.name],
                                        values[layer.inputs[0]], cfg, engine, progress)
        elif layer.kind == "gemm":
            y, record = _gemm_layer(layer, values[layer.inputs[0]], cfg, engine, progress)
        else:
            y = _host_layer(layer, values)
            record = {"name": layer.name, "op": "+".join((layer.op, *layer.fused)),
                      "where": "host", "shape": "x".join(map(str, layer.shape)), "macs": 0,
                      "jobs": 0, "cycles": None, "utilization": None, "expansion": None}
        if y is not None:
            values[layer.output] = y
        table.append(record)
        for v in set(layer.inputs):
            if last[v] == i and v != qgraph.output:
                values.pop(v, None)     # a fused GEMM's own output was never stored
    return values[qgraph.output], table
