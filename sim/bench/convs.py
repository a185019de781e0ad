"""Real CNN convolutions on the systolic cost model, beside SCALE-Sim v3.

The conv layers of AlexNet (conv1-5), VGG-16 (13) and ResNet-18 (20, with the 1×1
downsample projections) at their ImageNet shapes (224×224 input, batch 1), each lowered to
its im2col GEMM by :func:`quantize.lower.lower` (``M`` output pixels, ``K = C·kh·kw``,
``N`` output channels). For arrays 16×16 and 32×32:

* **ours**: :func:`hw.systolic.driver.model_cycles` (loads included: the weights and
  parameters before the command, ``serial_load_cycles``; the activations stream in while
  the GEMM runs) on a :meth:`SystolicConfig.fit` config sized for the layer. A layer that
  config refuses keeps its one-line reason; its cycles are still the model's (the model
  reads only ``rows`` and ``cols``), marked as such.
* **SCALE-Sim v3** (PyPI ``scalesim``, weight stationary, in its own venv since it needs
  numpy < 2): every layer through its compute model (its operand and demand matrices;
  the cycles are the demand rows, which its memory simulation reports as "Total Cycles"
  when nothing stalls), and the small layers also through its full simulation, whose
  COMPUTE_REPORT.csv gives total cycles, stalls and cycles including the DRAM prefetch.

An RTL check runs three real-channel layers at reduced spatial size on the 8×8 array
(Verilator) against the model.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.systolic import SystolicConfig
from hw.systolic.driver import model_cycles, serial_load_cycles
from quantize.graph import Node, infer_shape
from quantize.lower import lower
from sim.rtl import BUILD_ROOT
from sim.systolic import random_job, run_jobs

__all__ = ["ConvLayer", "LAYERS", "RTL_LAYERS", "RTL_LAYERS_16", "ARRAYS", "gemm", "our_figures",
           "scalesim_venv", "main"]

ARRAYS = (16, 32)
#: Layers whose SCALE-Sim demand has at most this many rows also run its full (memory)
#: simulation, a Python loop of about 15 k rows a second.
FULL_SIM_ROWS = 120_000
SCALESIM_VENV = BUILD_ROOT / "scalesim-venv"
#: scalesim 3.0.0 fails on numpy 2, so it gets a venv of its own; pinned because the runner
#: below calls its compute classes (operand_matrix, systolic_compute_ws) directly.
SCALESIM_REQUIREMENTS = ("scalesim==3.0.0", "numpy<2")
#: SRAM per operand (kB): 64 MiB holds the largest operand here (VGG conv1_2's im2col
#: activations are 28.9 MB), so no layer stalls on SRAM.
SRAM_KB = 65536


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: ``c`` input channels of ``h × w``, ``o`` filters of ``k × k``."""

    net: str
    name: str
    c: int
    h: int
    o: int
    k: int
    stride: int = 1
    pad: int = 0

    @property
    def label(self) -> str:
        return f"{self.net} {self.name}"


def _alexnet():
    # Krizhevsky et al. (one-tower form, 96-256-384-384-256 filters), 55×55 after conv1.
    return [ConvLayer("AlexNet", "conv1", 3, 224, 96, 11, 4, 2),
            ConvLayer("AlexNet", "conv2", 96, 27, 256, 5, 1, 2),
            ConvLayer("AlexNet", "conv3", 256, 13, 384, 3, 1, 1),
            ConvLayer("AlexNet", "conv4", 384, 13, 384, 3, 1, 1),
            ConvLayer("AlexNet", "conv5", 384, 13, 256, 3, 1, 1)]


def _vgg16():
    out, c, h = [], 3, 224
    for block, (o, count) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for i in range(1, count + 1):
            out.append(ConvLayer("VGG-16", f"conv{block}_{i}", c, h, o, 3, 1, 1))
            c = o
        h //= 2
    return out


def _resnet18():
    out = [ConvLayer("ResNet-18", "conv1", 3, 224, 64, 7, 2, 3)]
    c, h = 64, 56
    for stage, o in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            name = f"layer{stage}.{block}"
            out.append(ConvLayer("ResNet-18", f"{name}.conv1", c, h, o, 3, stride, 1))
            if stride == 2:
                out.append(ConvLayer("ResNet-18", f"{name}.downsample", c, h, o, 1, 2, 0))
            h //= stride
            out.append(ConvLayer("ResNet-18", f"{name}.conv2", o, h, o, 3, 1, 1))
            c = o
    return out


LAYERS = _alexnet() + _vgg16() + _resnet18()

#: Real channel counts at reduced spatial size, small enough for one 8×8 Verilator build.
RTL_LAYERS = [ConvLayer("ResNet-18", "layer1.0.conv1 @ 8×8", 64, 8, 64, 3, 1, 1),
              ConvLayer("ResNet-18", "layer2.0.downsample @ 16×16", 64, 16, 128, 1, 2, 0),
              ConvLayer("AlexNet", "conv1 @ 35×35", 3, 35, 96, 11, 4, 2)]


#: Real shapes on the 16×16 array (one Verilator build sized by ``fit`` for the three).
RTL_LAYERS_16 = [next(la for la in LAYERS if (la.net, la.name) == key)
                 for key in (("VGG-16", "conv1_1"), ("AlexNet", "conv1"), ("VGG-16", "conv5_1"))]


def gemm(layer: ConvLayer) -> dict:
    """``layer``'s im2col GEMM as :func:`quantize.lower.lower` gives it."""
    p = layer.pad
    weight = np.zeros((layer.o, layer.c, layer.k, layer.k), np.float32)
    node = Node(layer.name, "Conv2d", ("x",), "y",
                attrs={"stride": (layer.stride,) * 2, "pads": (p,) * 4},
                params={"weight": weight, "bias": np.zeros(layer.o, np.float32)})
    in_shape = (layer.c, layer.h, layer.h)
    shape = infer_shape(node, [in_shape])
    node = Node(node.name, node.op, node.inputs, node.output, node.attrs, node.params, shape)
    low = lower(node, in_shape)
    return {"out_h": shape[1], "out_w": shape[2], "m": low.m, "k": low.k, "n": low.n,
            "macs": low.macs}


def our_figures(g: dict, rows: int) -> dict:
    """Cost-model figures of GEMM ``g`` on a ``rows × rows`` array."""
    m, k, n = g["m"], g["k"], g["n"]
    try:
        cfg, error = SystolicConfig.fit([(m, k, n)], rows=rows, cols=rows), None
    except ValueError as e:
        # The model reads rows and cols only; any valid config of this array gives it.
        cfg, error = SystolicConfig(rows=rows, cols=rows), str(e)
    cycles = model_cycles(cfg, m, k, n)
    out = {"cycles": cycles, "utilization": g["macs"] / (rows * rows * cycles),
           "serial_load_cycles": serial_load_cycles(cfg, m, k, n)}
    if error:
        out["config_error"] = error
    else:
        out["config"] = {d: getattr(cfg, d) for d in SystolicConfig.DEPTHS}
    return out


# SCALE-Sim, in its own interpreter.

_SCALESIM_CFG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {rows}
IfmapSramSzkB: {sram}
FilterSramSzkB: {sram}
OfmapSramSzkB: {sram}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: ws
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

_TOPOLOGY_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\n")
_LAYOUT_HEADER = ("Layer name, IFMAP SRAM Bank, IFMAP SRAM Bank Port, IFMAP Row, IFMAP Col, "
                  "Filter SRAM Bank, Filter Row, Filter Col,\n")

# Run in SCALE-Sim's venv: argv = mode (compute | full), folder with scale.cfg,
# topology.csv and layout.csv. Prints one JSON line.
_RUNNER = r'''
import json, sys
mode, folder = sys.argv[1], sys.argv[2]
cfg_path, topo_path = folder + "/scale.cfg", folder + "/topology.csv"
layout_path = folder + "/layout.csv"
if mode == "compute":
    from scalesim.compute.operand_matrix import operand_matrix
    from scalesim.compute.systolic_compute_ws import systolic_compute_ws
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.topology_utils import topologies
    cfg = scale_config()
    cfg.read_conf_file(cfg_path)
    topo = topologies()
    topo.load_arrays(topofile=topo_path)
    lay = layouts()
    lay.load_arrays(layoutfile=layout_path)
    op = operand_matrix()
    op.set_params(config_obj=cfg, topoutil_obj=topo, layoututil_obj=lay, layer_id=0)
    _, ifmap = op.get_ifmap_matrix()
    _, filt = op.get_filter_matrix()
    _, ofmap = op.get_ofmap_matrix()
    ws = systolic_compute_ws()
    ws.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap,
                  ifmap_op_mat_original=op.ifmap_addr_matrix_original,
                  sparsity_filter_array=op.sparse_filter_array)
    demand, _, _ = ws.get_demand_matrices()
    print(json.dumps({"demand_rows": int(demand.shape[0]),
                      "mapping_efficiency": float(ws.get_avg_mapping_efficiency())}))
else:
    from scalesim.scale_sim import scalesim
    s = scalesim(save_disk_space=True, verbose=False, config=cfg_path, topology=topo_path,
                 layout=layout_path)
    s.run_scale(top_path=folder + "/out")
    import glob
    report = glob.glob(folder + "/out/*/COMPUTE_REPORT.csv")[0]
    row = [x.strip() for x in open(report).read().splitlines()[1].split(",")]
    print(json.dumps({"total_cycles_incl_prefetch": int(row[1]), "total_cycles": int(row[2]),
                      "stall_cycles": int(row[3])}))
'''


def scalesim_venv() -> Path:
    """SCALE-Sim's interpreter, creating ``build/scalesim-venv`` the first time."""
    python = SCALESIM_VENV / "bin" / "python"
    probe = [str(python), "-c", "import scalesim, numpy; assert numpy.__version__ < '2'"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"  creating {SCALESIM_VENV} ({', '.join(SCALESIM_REQUIREMENTS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(SCALESIM_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *SCALESIM_REQUIREMENTS],
                   check=True)
    return python


def _scalesim_rows(g: dict, rows: int) -> int:
    """Demand rows SCALE-Sim's weight-stationary compute model produces: one fold per
    ``rows × rows`` weight tile, each ``rows`` cycles of weight fill, ``M`` rows skewed over
    ``rows − 1`` more, and ``cols − 1`` of drain. Only to choose which layers also run the
    full simulation; the figures recorded are SCALE-Sim's own."""
    folds = -(-g["k"] // rows) * -(-g["n"] // rows)
    return folds * (g["m"] + 3 * rows - 2)


def _scalesim(python: Path, layer: ConvLayer, g: dict, rows: int, work: Path) -> dict:
    folder = work / f"{rows}x{rows}" / layer.label.replace(" ", "_").replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scale.cfg").write_text(_SCALESIM_CFG.format(name="run", rows=rows,
                                                           sram=SRAM_KB))
    # SCALE-Sim takes no padding and rounds its output size up (ceil((H - k + s) / s)):
    # give it the padded input's extent that the windows read, so its M is ours.
    side = (g["out_h"] - 1) * layer.stride + layer.k
    (folder / "topology.csv").write_text(
        _TOPOLOGY_HEADER + f"{layer.name}, {side}, {side}, {layer.k}, {layer.k}, {layer.c}, "
                           f"{layer.o}, {layer.stride},\n")
    (folder / "layout.csv").write_text(_LAYOUT_HEADER)
    runner = work / "runner.py"
    runner.write_text(_RUNNER)
    modes = ["compute"] + (["full"] if _scalesim_rows(g, rows) <= FULL_SIM_ROWS else [])
    out = {}
    for mode in modes:
        start = time.monotonic()
        done = subprocess.run([str(python), str(runner), mode, str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            out[f"{mode}_error"] = tail[:200]
            continue
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
        out[f"{mode}_seconds"] = round(time.monotonic() - start, 1)
    out["ifmap_side"] = side
    if "demand_rows" in out:
        # Its memory simulation numbers cycles from 0: "Total Cycles" is the last row's.
        out["cycles"] = out["demand_rows"] - 1
    return out


def _rtl_check(layers=RTL_LAYERS, size: int = 8) -> dict:
    """Each of ``layers``' GEMMs on the ``size × size`` RTL with random int8 data: measured
    cycles against the model and wrong words against the golden model."""
    gemms = [gemm(layer) for layer in layers]
    shapes = [(g["m"], g["k"], g["n"]) for g in gemms]
    cfg = SystolicConfig.fit(shapes, rows=size, cols=size)
    rng = np.random.default_rng(0)
    jobs = [random_job(rng, *s) for s in shapes]
    start = time.monotonic()
    runs = run_jobs(cfg, jobs)
    rows = []
    for layer, g, job, run in zip(layers, gemms, jobs, runs, strict=True):
        model = model_cycles(cfg, g["m"], g["k"], g["n"])
        rows.append({"layer": layer.label, "m": g["m"], "k": g["k"], "n": g["n"],
                     "rtl_cycles": run.cycles, "model_cycles": model,
                     "model_error": (model - run.cycles) / run.cycles,
                     "mismatches": int((run.output != job.golden(cfg.rounding)).sum())})
        print(f"  RTL {size}x{size} {layer.label} {g['m']}x{g['k']}x{g['n']}: "
              f"{run.cycles} cycles, "
              f"model {model} ({100 * rows[-1]['model_error']:+.2f} %), "
              f"{rows[-1]['mismatches']} wrong words", flush=True)
    return {"array": f"{size}x{size}",
            "config": {d: getattr(cfg, d) for d in SystolicConfig.DEPTHS},
            "seconds": round(time.monotonic() - start), "layers": rows}


def main(out_dir):
    out_dir = Path(out_dir)
    work = out_dir / "scalesim"
    figures = {"sram_kb": SRAM_KB, "full_sim_rows": FULL_SIM_ROWS,
               "scalesim": " ".join(SCALESIM_REQUIREMENTS), "layers": []}
    python = scalesim_venv()
    for layer in LAYERS:
        g = gemm(layer)
        row = {"net": layer.net, "layer": layer.name, "c": layer.c, "h": layer.h,
               "o": layer.o, "kernel": layer.k, "stride": layer.stride, "pad": layer.pad,
               **g, "arrays": {}}
        for rows in ARRAYS:
            ours = our_figures(g, rows)
            ss = _scalesim(python, layer, g, rows, work)
            if "cycles" in ss:
                ours["ratio"] = ours["cycles"] / ss["cycles"]
            row["arrays"][f"{rows}x{rows}"] = {**ours, "scalesim": ss}
            print(f"  {layer.label} {rows}x{rows} {g['m']}x{g['k']}x{g['n']}: ours "
                  f"{ours['cycles']} ({100 * ours['utilization']:.1f} %), serial loads "
                  f"{ours['serial_load_cycles']}, SCALE-Sim {ss.get('cycles')}"
                  + (f", full sim {ss['total_cycles']} (stalls {ss['stall_cycles']})"
                     if "total_cycles" in ss else "")
                  + (" [config refused]" if "config_error" in ours else ""), flush=True)
        figures["layers"].append(row)
        (out_dir / "convs.json").write_text(json.dumps(figures, indent=2))
    if os.environ.get("NNACCEL_CONVS_RTL", "1") != "0":
        figures["rtl_check"] = _rtl_check()
        (out_dir / "convs.json").write_text(json.dumps(figures, indent=2))
        figures["rtl_check_16"] = _rtl_check(RTL_LAYERS_16, 16)
    figures["summary"] = summary(figures["layers"])
    (out_dir / "convs.json").write_text(json.dumps(figures, indent=2))
    return figures["summary"]


def summary(layers: list[dict]) -> dict:
    """Per array: mean utilization (all layers; configurable ones; VGG-16), refused count,
    and how many VGG-16 layers are at or below SCALE-Sim's cycles."""
    out = {}
    for rows in ARRAYS:
        a = f"{rows}x{rows}"
        figs = [r["arrays"][a] for r in layers]
        ok = [f for f in figs if "config_error" not in f]
        vgg = [r["arrays"][a] for r in layers if r["net"] == "VGG-16"]
        out[a] = {
            "layers": len(figs),
            "mean_utilization": sum(f["utilization"] for f in figs) / len(figs),
            "mean_utilization_configurable": (sum(f["utilization"] for f in ok) / len(ok)
                                              if ok else None),
            "vgg16_mean_utilization": (sum(f["utilization"] for f in vgg) / len(vgg)
                                       if vgg else None),
            "config_refused": len(figs) - len(ok),
            "vgg16_layers": len(vgg),
            "vgg16_at_or_below_scalesim": sum(1 for f in vgg if f.get("ratio", 2) <= 1),
            "vgg16_at_or_below_scalesim_configurable": sum(
                1 for f in vgg if f.get("ratio", 2) <= 1 and "config_error" not in f),
        }
    return out
