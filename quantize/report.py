"""The compression table, per-layer costs and plots of an image (``nnaccel report``).

Cycles come from the engine's cost model; given the cycles a run measured (the sidecar
:func:`quantize.run.read_cycles` reads), the per-layer table shows them beside it.
"""

from pathlib import Path

import numpy as np

from hw.systolic.driver import model_cycles

from .graph_run import _tiles, lut_fusions, winograd_cycles, winograd_gemm
from .image import GraphImage, is_graph, load_report_weights
from .lower import lower

__all__ = ["format_table", "report_json", "write_plots", "layer_image_bytes", "layer_rows",
           "graph_rows", "format_layers"]


def _x(ratio) -> str:
    """A ratio as ``12.3x``; a layer that stores no weight at all has none (``-``)."""
    return "-" if ratio is None else f"{ratio:.1f}x"


def layer_image_bytes(spec: dict) -> int:
    return sum(f["bytes"] for f in spec["files"].values() if f["memory"])


def _specs(image) -> list[dict]:
    """Per compressed layer, the manifest entry holding its files."""
    if is_graph(image):
        nodes = {n["name"]: n for n in image.manifest["graph"]["nodes"]}
        return [nodes[row["name"]] for row in image.manifest["compression"]["layers"]]
    return image.manifest["layers"]


def report_json(image) -> dict:
    c = image.manifest["compression"]
    layers = []
    for row, spec in zip(c["layers"], _specs(image), strict=True):
        layers.append({**row, "image_bytes": layer_image_bytes(spec)})
    return {"engine": image.engine, "config": image.manifest["config"],
            "accounting": c["accounting"], "layers": layers, "totals": c["totals"],
            "compression_ratio": c["compression_ratio"], "image_bytes": c["image_bytes"],
            "dense_weight_bytes": c["dense_weight_bytes"],
            "image_compression_ratio": c["image_compression_ratio"]}


def format_table(image) -> str:
    """The per-layer table of Deep Compression's accounting, then the real image bytes."""
    r = report_json(image)
    head = (f"{'layer':<8}{'shape':>11}{'kept':>8}{'bits':>5}{'idx':>4}{'dense KB':>10}"
            f"{'final KB':>10}{'pruned':>9}{'P+Q':>8}{'+Huff':>8}{'image B':>10}")
    lines = [f"{image.engine} engine, {r['accounting']}", head, "-" * len(head)]

    def row(name, shape, d, img):
        return (f"{name:<8}{shape:>11}{d['density'] * 100:>7.1f}%{d.get('bits', ''):>5}"
                f"{d.get('index_bits', ''):>4}{d['dense_bits'] / 8192:>10.1f}"
                f"{d['huffman_bits'] / 8192:>10.2f}"
                f"{_x(d['ratio_pruned']):>9}{_x(d['ratio_pq']):>8}{_x(d['ratio_huffman']):>8}"
                f"{img:>10}")
    for d in r["layers"]:
        lines.append(row(d["name"], "x".join(map(str, d["shape"])), d, d["image_bytes"]))
    lines.append("-" * len(head))
    lines.append(row("total", "", r["totals"], r["image_bytes"]))
    lines.append(f"compression_ratio (paper's accounting) {r['compression_ratio']:.1f}x; "
                 f"image_compression_ratio (real image bytes, pointers, padding and biases "
                 f"included) {r['image_compression_ratio']:.1f}x")
    return "\n".join(lines)


def graph_rows(image: GraphImage, batch: int = 1) -> list[dict]:
    """Per node of the image (fused activations folded into their layer): ``name``, ``op``,
    ``where``, ``shape``, ``macs``, ``kept``/``weights``/``bits`` (weight layers),
    ``cycles`` (the engine's cost model, :func:`hw.systolic.driver.model_cycles`, for
    ``batch`` inputs cut into the jobs a run makes) and ``utilization``."""
    cfg = image.config
    storage = {r["name"]: r for r in image.manifest["compression"]["layers"]}
    # The table activations a run puts into the engine's output stage (their words ride
    # on the parameter stream of their GEMM's jobs).
    fusions = lut_fusions(image.qgraph) if cfg.act_lut else {}
    fused = {id(la) for la in fusions.values()}
    rows = []
    for i, layer in enumerate(image.qgraph.layers):
        r = {"name": layer.name, "op": "+".join((layer.op, *layer.fused)),
             "where": "fused" if id(layer) in fused else "host",
             "shape": "x".join(map(str, layer.shape)), "macs": 0, "kept": None,
             "weights": None, "bits": None, "cycles": None, "utilization": None}
        if layer.name in image.qgraph.winograd:   # the 16 GEMMs a run makes instead
            m, k, n = winograd_gemm(layer, batch)
            macs, cycles = 16 * m * k * n, winograd_cycles(cfg, layer, batch)[1]
            op, shape = r["op"] + " wino", f"16x {m}x{k}x{n}"
        elif layer.kind == "gemm":
            lw = lower(layer.node, layer.in_shape, batch)
            m_rows, n_cols = _tiles(cfg, layer, lw.m, lw.k, lw.n)
            cycles = lw.count * sum(model_cycles(cfg, rs.stop - rs.start, lw.k,
                                                 cs.stop - cs.start, lut=i in fusions)
                                    for rs in m_rows for cs in n_cols)
            macs, op = lw.macs, r["op"]
            shape = (f"{lw.count}x " if lw.count > 1 else "") + f"{lw.m}x{lw.k}x{lw.n}"
        if layer.kind == "gemm":
            s = storage.get(layer.name, {})
            r.update(where="engine", op=op, macs=macs, cycles=cycles,
                     utilization=macs / (cycles * cfg.macs), shape=shape,
                     kept=s.get("kept"), weights=s.get("weights"), bits=s.get("bits"))
        rows.append(r)
    return rows


def _mlp_rows(image, batch: int) -> list[dict]:
    """Per layer of an MLP image: what :func:`graph_rows` gives for a
    graph. Systolic cycles: the cost model over the chunks a run makes; EIE cycles: every
    input non-zero, the busiest PE's entries (padding included) per layer and input."""
    cfg, specs = image.config, image.manifest["layers"]
    storage = {r["name"]: r for r in image.manifest["compression"]["layers"]}
    rows = []
    for spec in specs:
        k, n = spec["in"], spec["out"]
        s = storage.get(spec["name"], {})
        if image.engine == "systolic":
            kt = max(-(-x["in"] // cfg.rows) for x in specs)
            step = max(1, min(cfg.acc_depth, cfg.act_depth // kt))
            cycles = sum(model_cycles(cfg, min(step, batch - i), k, n)
                         for i in range(0, batch, step))
            lanes, shape = cfg.macs, f"{batch}x{k}x{n}"
            macs = batch * k * n
        else:
            cycles = batch * max(spec["pe_entries"])
            lanes, shape = cfg.pes, f"{n}x{k}"
            macs = batch * int(s.get("kept", 0))
        rows.append({"name": spec["name"], "op": "Linear+Relu" if spec["relu"] else "Linear",
                     "where": "engine", "shape": shape, "macs": macs, "kept": s.get("kept"),
                     "weights": s.get("weights"), "bits": s.get("bits"), "cycles": cycles,
                     "utilization": macs / (cycles * lanes) if cycles else None})
    return rows


def layer_rows(image, batch: int = 1, measured: dict | None = None) -> list[dict]:
    """Per layer of any image: ``name``, ``op``, ``where`` (engine, fused or host),
    ``shape``, ``macs``, ``kept``/``weights``/``bits``, ``cycles`` (cost model, ``batch``
    inputs) and ``utilization``; with ``measured`` (a cycles sidecar of a run of ``batch``
    inputs, :func:`quantize.run.read_cycles`) also ``measured_cycles`` per engine layer
    (``None`` where the run measured only its total)."""
    rows = graph_rows(image, batch) if is_graph(image) else _mlp_rows(image, batch)
    if measured is not None:
        cycles = {r["name"]: r["cycles"] for r in measured["layers"]}
        for r in rows:
            r["measured_cycles"] = cycles.get(r["name"]) if r["where"] == "engine" else None
    return rows


def format_layers(image, batch: int = 1, measured: dict | None = None) -> str:
    """The per-layer cost table (:func:`layer_rows`) as text, with the total; with
    ``measured`` (a run's cycles sidecar) the measured cycles beside the model's."""
    rows = layer_rows(image, batch, measured)
    cfg = image.config
    array = f"{cfg.rows}x{cfg.cols}" if image.engine == "systolic" else f"{cfg.pes} PEs"
    head = (f"{'layer':<16}{'op':<18}{'shape':<22}{'MACs':>11}{'kept':>16}{'bits':>5}"
            f"{'engine':>17}{'cycles':>10}{'util':>7}")
    source = "cycles from the cost model"
    if measured is not None:
        head += f"{'measured':>10}{'ratio':>7}"
        source += f", measured on {measured['backend']}"
    lines = [f"per layer, {batch} input{'s' if batch > 1 else ''}, {source}:", head,
             "-" * len(head)]

    def beside(model, real) -> str:
        if measured is None:
            return ""
        if real is None or not model:
            return f"{'-' if real is None else real:>10}{'-':>7}"
        return f"{real:>10}{real / model:>7.2f}"
    for r in rows:
        kept = f"{r['kept']}/{r['weights']}" if r["kept"] is not None else "-"
        where = {"engine": f"{image.engine} {array}", "fused": "engine (table)"}.get(
            r["where"], "host")
        util = f"{r['utilization']:.1%}" if r["utilization"] is not None else "-"
        cycles = str(r["cycles"]) if r["cycles"] is not None else "-"
        lines.append(f"{r['name'][:15]:<16}{r['op'][:17]:<18}{r['shape'][:21]:<22}"
                     f"{r['macs']:>11}{kept:>16}{r['bits'] or '-':>5}{where:>17}{cycles:>10}"
                     f"{util:>7}" + (beside(r["cycles"], r.get("measured_cycles"))
                                     if r["where"] == "engine" else beside(None, None)))
    total = sum(r["cycles"] or 0 for r in rows)
    macs = sum(r["macs"] for r in rows)
    lanes = cfg.macs if image.engine == "systolic" else cfg.pes
    lines.append("-" * len(head))
    lines.append(f"{'total':<56}{macs:>11}{'':>38}{total:>10}"
                 f"{(f'{macs / (total * lanes):.1%}' if total else '-'):>7}"
                 + (beside(total, measured["total_cycles"]) if measured is not None else ""))
    return "\n".join(lines)


def write_plots(image, out_dir: Path) -> list[Path]:
    """Weight distributions (before pruning, after pruning, after sharing) per layer and
    per-layer sizes, as PNG files in ``out_dir``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    paths = []
    names = [spec["name"] for spec in _specs(image)]
    if "report" in image.manifest:
        data = load_report_weights(image)
        fig, axes = plt.subplots(len(names), 3, figsize=(12, 2.6 * len(names)),
                                 squeeze=False)
        for i, name in enumerate(names):
            for j, (stage, title) in enumerate((("original", "before pruning"),
                                                ("pruned", "after pruning"),
                                                ("shared", "after weight sharing"))):
                w = data[f"{stage}/{name}"].reshape(-1)
                ax = axes[i, j]
                if stage == "original":
                    ax.hist(w, bins=100)
                elif stage == "pruned":
                    ax.hist(w[w != 0], bins=100)
                else:
                    values, counts = np.unique(w[w != 0], return_counts=True)
                    ax.bar(values, counts, width=(np.ptp(w) or 1) / 150)
                ax.set_title(f"{name}: {title}", fontsize=9)
                ax.tick_params(labelsize=7)
        fig.tight_layout()
        path = out_dir / "weights.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    r = report_json(image)
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(names))
    series = [("dense", [d["dense_bits"] / 8 for d in r["layers"]]),
              ("pruned", [d["pruned_bits"] / 8 for d in r["layers"]]),
              ("P+Q", [d["pq_bits"] / 8 for d in r["layers"]]),
              ("P+Q+Huffman", [d["huffman_bits"] / 8 for d in r["layers"]]),
              (f"{image.engine} image", [d["image_bytes"] for d in r["layers"]])]
    for k, (label, values) in enumerate(series):
        ax.bar(x + (k - 2) * 0.16, values, 0.16, label=label)
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("bytes")
    ax.set_title("per-layer size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "sizes.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return paths
