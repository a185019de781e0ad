"""Host side of the EIE engine: memory images, load beats, and running layers.

``build_image(config, layers)`` turns layers into the engine's per-PE memory images and
layer commands; ``run_layers(config, layers, activations, engine=...)`` runs them on the
golden model or on the Verilator model of :class:`hw.eie.EieTop` and returns the outputs
and, for the RTL, the counters.

A layer is a dict::

    {"indices": uint8 (out × in), 0 = pruned, else codebook index  # or "csc": CscLayer
     "codebook": 2**index_bits signed ints, entry 0 == 0,
     "bias": optional (out,) signed act_width-bit ints,
     "relu": bool (default True)}

Layer ``l + 1`` takes layer ``l``'s outputs (``in_features`` of ``l + 1`` must equal
``out_features`` of ``l``); all layers run back to back on chip.
"""

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.eie.config import EieConfig
from quantize.csc import CscLayer, balanced_row_order, check_codebook, decode, encode, pack_words

from .golden import eie as golden

__all__ = ["EieImage", "build_image", "load_beats", "cmd_payload", "parse_result",
           "parse_counters", "run_layers", "run_rtl_cases", "ideal_cycles", "work_cycles",
           "padding_processed", "random_layer",
           "balance_layers", "unpermute"]


@dataclass
class EieImage:
    """Everything the engine's memories hold for a run, and the layer commands."""

    config: EieConfig
    layers: list                    # CscLayer per layer
    spmat: np.ndarray               # (pes, words) uint64
    pointers: np.ndarray            # (pes, n) int64, absolute entry addresses
    bias: np.ndarray                # (pes, n) int64
    codebooks: np.ndarray           # (layers, codebook_size) int64
    commands: list = field(default_factory=list)

    def manifest(self) -> dict:
        return {"config": self.config.__dict__, "commands": self.commands,
                "spmat_words": int(self.spmat.shape[1]),
                "pointers": int(self.pointers.shape[1])}


def _ceil_div(a, b):
    return -(-a // b)


def _as_csc(spec, config) -> CscLayer:
    if "csc" in spec:
        csc = spec["csc"]
        if csc.pes != config.pes or csc.index_bits != config.index_bits or \
                csc.zrun_bits != config.zrun_bits:
            raise ValueError(f"a CSC layer was encoded for pes={csc.pes}, "
                             f"index_bits={csc.index_bits}, zrun_bits={csc.zrun_bits}; this "
                             f"engine has pes={config.pes}, index_bits={config.index_bits}, "
                             f"zrun_bits={config.zrun_bits}: encode it again for this config")
        return csc
    return encode(spec["indices"], config, spec["codebook"])


def balance_layers(config: EieConfig, layers):
    """Assign every layer's rows to PEs by load (:func:`quantize.csc.balanced_row_order`)
    instead of ``i mod pes``; the next layer's columns follow the permutation, so the
    network still runs on chip. Returns ``(engine_layers, orders)``; the engine's outputs
    of layer ``l`` map back by ``y[orders[l][k]] = y_engine[k]`` (``-1``: unused row)."""
    out, orders, prev = [], [], None
    for spec in layers:
        if "indices" not in spec:
            raise ValueError("balance needs layers given as dense 'indices'")
        idx = np.asarray(spec["indices"])
        if prev is not None:
            moved = np.zeros((idx.shape[0], len(prev)), dtype=idx.dtype)
            keep = prev >= 0
            moved[:, keep] = idx[:, prev[keep]]
            idx = moved
        order = balanced_row_order(idx, config.pes)
        keep = order >= 0
        permuted = np.zeros((len(order), idx.shape[1]), dtype=idx.dtype)
        permuted[keep] = idx[order[keep]]
        new = dict(spec, indices=permuted)
        if spec.get("bias") is not None:
            bias = np.zeros(len(order), dtype=np.int64)
            bias[keep] = np.asarray(spec["bias"], dtype=np.int64)[order[keep]]
            new["bias"] = bias
        out.append(new)
        orders.append(order)
        prev = order
    return out, orders


def unpermute(values, order) -> np.ndarray:
    """Outputs of a balanced layer back in the original row order."""
    values = np.asarray(values)
    keep = order >= 0
    out = np.zeros(int(order.max()) + 1 if keep.any() else 0, dtype=values.dtype)
    out[order[keep]] = values[keep]
    return out


def build_image(config: EieConfig, layers) -> EieImage:
    """Per-PE memory images for ``layers``; raises ``ValueError`` naming the memory that is
    too small and what it needs."""
    c, n = config, config.pes
    if not 1 <= len(layers) <= c.max_layers:
        raise ValueError(f"{len(layers)} layers: the engine has max_layers={c.max_layers} "
                         f"codebook slots; raise EieConfig.max_layers")
    cscs, cbs, commands = [], [], []
    ptr_base = bias_base = 0
    entry_base = np.zeros(n, dtype=np.int64)
    entries, pointers, biases = [[] for _ in range(n)], [], []
    for number, spec in enumerate(layers):
        csc = _as_csc(spec, c)
        cb = check_codebook(spec["codebook"] if "codebook" in spec else csc.codebook,
                            c.index_bits, c.weight_width)
        if number and csc.cols != cscs[-1].rows:
            raise ValueError(f"layer {number} has {csc.cols} inputs but layer {number - 1} "
                             f"has {cscs[-1].rows} outputs")
        if csc.cols > c.max_in_features or csc.cols < 1:
            raise ValueError(f"layer {number}: {csc.cols} inputs; this config takes 1 to "
                             f"{c.max_in_features} (ptr_depth - 1, act_depth * pes)")
        rows_pe = _ceil_div(csc.rows, n)
        if rows_pe > c.act_depth or csc.rows < 1:
            raise ValueError(f"layer {number}: {csc.rows} outputs need act_depth >= {rows_pe} "
                             f"per PE, the config has {c.act_depth}")
        for p in range(n):
            entries[p].append(csc.pe_entries(p))
        pointers.append(csc.pointers + entry_base[:, None])
        entry_base += csc.entry_counts
        bias = np.zeros(csc.rows if spec.get("bias") is None else 0, dtype=np.int64)
        if spec.get("bias") is not None:
            bias = np.asarray(spec["bias"], dtype=np.int64)
            if bias.shape != (csc.rows,):
                raise ValueError(f"layer {number}: bias needs {csc.rows} values, got "
                                 f"shape {bias.shape}")
            _check_range(bias, c.act_width, f"layer {number} bias")
        padded = np.zeros(rows_pe * n, dtype=np.int64)
        padded[:csc.rows] = bias
        biases.append(padded.reshape(rows_pe, n).T)
        commands.append({"slot": number, "in_features": csc.cols, "out_features": csc.rows,
                         "ptr_base": ptr_base, "bias_base": bias_base,
                         "use_bias": int(spec.get("bias") is not None),
                         "relu": int(spec.get("relu", True)), "emit": 0,
                         "queue_limit": 0})
        ptr_base += csc.cols + 1
        bias_base += rows_pe
        cscs.append(csc)
        cbs.append(cb)
    commands[-1]["emit"] = 1
    if ptr_base > c.ptr_depth:
        raise ValueError(f"pointer memory: the layers need {ptr_base} pointers per PE, "
                         f"ptr_depth is {c.ptr_depth}; raise EieConfig.ptr_depth")
    if bias_base > c.bias_depth:
        raise ValueError(f"bias memory: the layers need {bias_base} words per PE, "
                         f"bias_depth is {c.bias_depth}; raise EieConfig.bias_depth")
    worst = int(np.argmax(entry_base))
    words_needed = _ceil_div(int(entry_base[worst]), c.entries_per_word)
    if words_needed > c.spmat_depth:
        raise ValueError(f"sparse-matrix memory: PE {worst} needs {words_needed} words "
                         f"({int(entry_base[worst])} entries, padding included), spmat_depth "
                         f"is {c.spmat_depth}; raise EieConfig.spmat_depth or use more PEs")
    words = [pack_words(np.concatenate(e) if e else np.zeros(0), c) for e in entries]
    spmat = np.zeros((n, max(1, max(len(w) for w in words))), dtype=np.uint64)
    for p, w in enumerate(words):
        spmat[p, :len(w)] = w
    ptrs = np.concatenate([pt for pt in pointers], axis=1)
    return EieImage(c, cscs, spmat, ptrs, np.concatenate(biases, axis=1), np.stack(cbs),
                    commands)


def _check_range(values, width, what):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    v = np.asarray(values)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{what} must fit {width}-bit signed ({lo}..{hi})")


def _pack_lanes(lanes: np.ndarray, lane_bits: int) -> int:
    lanes = np.asarray(lanes)
    if lane_bits == 64:
        return int.from_bytes(lanes.astype("<u8").tobytes(), "little")
    mask = (1 << lane_bits) - 1
    value = 0
    for k, x in enumerate(lanes.tolist()):
        value |= (int(x) & mask) << (k * lane_bits)
    return value


def load_beats(image: EieImage, activations) -> list[int]:
    """Payloads of ``i_load`` beats that load ``image`` and the first layer's inputs."""
    from hw.eie.layouts import Mem, load_layout
    c, n = image.config, image.config.pes
    layout = load_layout(c)
    a_off, d_off = layout["addr"].offset, layout["data"].offset

    def beat(mem, addr, lanes):
        return int(mem) | (addr << a_off) | (_pack_lanes(lanes, c.lane_bits) << d_off)

    beats = []
    for addr in range(image.spmat.shape[1]):
        beats.append(beat(Mem.SPMAT, addr, image.spmat[:, addr]))
    ptrs = image.pointers
    if ptrs.shape[1] % 2:
        ptrs = np.concatenate([ptrs, np.zeros((n, 1), dtype=np.int64)], axis=1)
    pairs = ptrs[:, 0::2] | (ptrs[:, 1::2] << c.ptr_bits)
    for addr in range(pairs.shape[1]):
        beats.append(beat(Mem.PTR, addr, pairs[:, addr]))
    mask = (1 << c.act_width) - 1
    for addr in range(image.bias.shape[1]):
        beats.append(beat(Mem.BIAS, addr, image.bias[:, addr] & mask))
    beats += act_beats(image, activations)
    wmask = (1 << c.weight_width) - 1
    for slot, cb in enumerate(image.codebooks):
        for k, value in enumerate(cb.tolist()):
            lanes = np.zeros(n, dtype=np.int64)
            lanes[0] = value & wmask
            beats.append(beat(Mem.CODEBOOK, slot * c.codebook_size + k, lanes))
    return beats


def act_beats(image: EieImage, activations) -> list[int]:
    """``i_load`` beats that write the first layer's input activations."""
    from hw.eie.layouts import Mem, load_layout
    c, n = image.config, image.config.pes
    a = np.asarray(activations, dtype=np.int64)
    cols = image.layers[0].cols
    if a.shape != (cols,):
        raise ValueError(f"activations must have {cols} values, got shape {a.shape}")
    _check_range(a, c.act_width, "activations")
    layout = load_layout(c)
    rows = _ceil_div(cols, n)
    padded = np.zeros(rows * n, dtype=np.int64)
    padded[:cols] = a & ((1 << c.act_width) - 1)
    grid = padded.reshape(rows, n)
    return [int(Mem.ACT) | (r << layout["addr"].offset) |
            (_pack_lanes(grid[r], c.lane_bits) << layout["data"].offset) for r in range(rows)]


def cmd_payload(config: EieConfig, command: dict) -> int:
    from hw.eie.layouts import cmd_layout
    layout = cmd_layout(config)
    value = 0
    for name, fld in layout:
        value |= (int(command[name]) & ((1 << fld.width) - 1)) << fld.offset
    return value


def parse_result(config: EieConfig, payload: int) -> list[int]:
    w = config.act_width
    out = []
    for k in range(config.pes):
        x = (payload >> (k * w)) & ((1 << w) - 1)
        out.append(x - (1 << w) if x >> (w - 1) else x)
    return out


def parse_counters(config: EieConfig, value: int) -> dict:
    from amaranth.lib import data

    from hw.eie.layouts import counter_layout
    result = {}
    for name, fld in counter_layout(config):
        raw = (value >> fld.offset) & ((1 << fld.width) - 1)
        if not isinstance(fld.shape, data.ArrayLayout):     # one counter, not one per PE
            result[name] = raw
        else:
            result[name] = [(raw >> (32 * k)) & 0xFFFFFFFF for k in range(config.pes)]
    return result


def ideal_cycles(image: EieImage, layer_inputs) -> int:
    """Sum over layers of the busiest PE's entries (padding included) over the columns
    whose activation is non-zero: the cycles a perfectly balanced schedule needs."""
    total = 0
    for csc, a in zip(image.layers, layer_inputs, strict=True):
        cols = np.nonzero(np.asarray(a))[0]
        total += int(csc.column_entries(cols).max()) if len(cols) else 0
    return total


def work_cycles(image: EieImage, layer_inputs) -> np.ndarray:
    """Per PE, the MAC-stage cycles this engine needs: for every non-zero activation's
    column and every sparse-matrix word it touches, one cycle per real (non-padding) entry,
    or one cycle for a word holding only padding of that column. The busiest PE's figure
    bounds the layer's time from below."""
    c = image.config
    epw, mask = c.entries_per_word, (1 << c.index_bits) - 1
    total = np.zeros(c.pes, dtype=np.int64)
    for p in range(c.pes):
        real = np.concatenate([(csc.pe_entries(p) & mask) != 0 for csc in image.layers])
        cum = np.concatenate([[0], np.cumsum(real)])
        for cmd, csc, a in zip(image.commands, image.layers, layer_inputs, strict=True):
            cols = np.nonzero(np.asarray(a))[0]
            ptr = image.pointers[p, cmd["ptr_base"]:cmd["ptr_base"] + csc.cols + 1]
            s, e = ptr[cols], ptr[cols + 1]
            keep = e > s
            s, e = s[keep], e[keep]
            if not len(s):
                continue
            ws, we = s // epw, (e - 1) // epw
            nw = we - ws + 1
            piece = np.repeat(np.arange(len(s)), nw)
            offset = np.arange(int(nw.sum())) - np.repeat(np.cumsum(nw) - nw, nw)
            word = ws[piece] + offset
            lo = np.maximum(s[piece], word * epw)
            hi = np.minimum(e[piece], word * epw + epw)
            total[p] += int(np.maximum(cum[hi] - cum[lo], 1).sum())
    return total


def _golden_outputs(image: EieImage, layers, activations) -> list[np.ndarray]:
    specs = []
    for csc, cb, spec in zip(image.layers, image.codebooks, layers, strict=True):
        specs.append({"weights": decode(csc), "codebook": cb, "bias": spec.get("bias"),
                      "relu": spec.get("relu", True)})
    return golden.run(specs, activations, image.config)


def run_layers(config: EieConfig, layers, activations, engine: str = "golden",
               image: EieImage | None = None, balance: bool = False, **rtl_options) -> dict:
    """Run ``layers`` on ``activations``; return ``{"outputs": final outputs (list),
    "layer_outputs": every layer's golden outputs, "ideal_cycles", "padding_entries",
    and for ``engine="rtl"`` the counters, "cycles", "load_seconds", "load_cycles",
    "run_seconds"}``.

    ``engine="golden"`` computes from the decoded image with :mod:`sim.golden.eie`;
    ``engine="rtl"`` builds (or reuses) the Verilator model of ``EieTop(config)``.
    ``balance=True`` assigns rows to PEs by load (:func:`balance_layers`); outputs come
    back in the original order.
    """
    if engine not in ("golden", "rtl"):
        raise ValueError(f"engine={engine!r}: use 'golden' or 'rtl'")
    if balance:
        if image is not None:
            raise ValueError("pass either image or balance=True, not both")
        engine_layers, orders = balance_layers(config, layers)
        result = run_layers(config, engine_layers, activations, engine, **rtl_options)
        result["outputs"] = unpermute(result["outputs"], orders[-1]).tolist()
        result["layer_outputs"] = [unpermute(o, order).tolist() for o, order in
                                   zip(result["layer_outputs"], orders, strict=True)]
        if "emitted" in result:
            result["emitted"] = [unpermute(e, orders[-1]).tolist()
                                 for e in result["emitted"][-1:]]
        result["row_orders"] = [o.tolist() for o in orders]
        return result
    if image is None:
        image = build_image(config, layers)
    elif image.config != config:
        raise ValueError(f"the image was built for {image.config}, not for {config}: "
                         f"build it again for this config")
    outs = _golden_outputs(image, layers, activations)
    inputs = [np.asarray(activations)] + outs[:-1]
    result = {"layer_outputs": [o.tolist() for o in outs],
              "ideal_cycles": ideal_cycles(image, inputs),
              "work_cycles": int(work_cycles(image, inputs).max()),
              "padding_entries": padding_processed(image, inputs)}
    if engine == "golden":
        result.update(outputs=outs[-1].tolist(), cycles=None)
        return result
    rtl = run_rtl_cases(config, [{"image": image, "activations": activations,
                                  **rtl_options}])[0]
    result.update(rtl)
    return result


def padding_processed(image: EieImage, inputs) -> int:
    """Padding entries in the columns of non-zero activations, all PEs and layers."""
    total = 0
    ib = image.config.index_bits
    for csc, a in zip(image.layers, inputs, strict=True):
        cols = np.nonzero(np.asarray(a))[0]
        if not len(cols):
            continue
        pad = ((csc.entries & ((1 << ib) - 1)) == 0).astype(np.int64)
        cum = np.concatenate([[0], np.cumsum(pad)])
        for p in range(csc.pes):
            base = csc.pe_offsets[p]
            lo = base + csc.pointers[p, cols]
            hi = base + csc.pointers[p, cols + 1]
            total += int((cum[hi] - cum[lo]).sum())
    return total


def run_rtl_cases(config: EieConfig, cases: list[dict], workdir: Path | None = None) -> list:
    """Run several cases in one cocotb simulation of ``EieTop(config)``.

    Each case: ``image`` (:class:`EieImage`), ``activations``, and optional ``stalls``
    (probability of idle/backpressure cycles on every stream, default 0), ``seed``,
    ``reset_after`` (cycles into the first layer at which to pulse reset, then reload the
    inputs and run again), ``emit_all`` (emit every layer's outputs), ``queue_limit``
    (run with activation queues capped at this depth).
    Returns per case: ``outputs`` (final), ``emitted`` (every emitted layer), counter
    deltas, ``cycles`` and wall times.
    """
    build = _build(config)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="eie-", dir=_sim_dir()))
    jobs = []
    from hw.eie.layouts import load_layout
    digits = -(-load_layout(config).size // 4)
    for number, case in enumerate(cases):
        image = case["image"]
        if image.config != config:
            raise ValueError(f"case {number}: image built for another config "
                             f"({image.config}); build it for {config}")
        path = workdir / f"case{number}.npz"
        commands = [dict(cmd) for cmd in image.commands]
        for cmd in commands:
            if case.get("emit_all"):
                cmd["emit"] = 1
            if case.get("queue_limit"):
                if not 1 <= case["queue_limit"] <= config.queue_depth:
                    raise ValueError(f"queue_limit={case['queue_limit']}: use 1 to "
                                     f"queue_depth={config.queue_depth}")
                cmd["queue_limit"] = int(case["queue_limit"])
        # Load beats go to files the simulation's beat source reads ($readmemh).
        loads = {"load": load_beats(image, case["activations"]),
                 "acts": act_beats(image, case["activations"])}
        for suffix, words in loads.items():
            (workdir / f"case{number}_{suffix}.hex").write_text(
                "".join(f"{w:0{digits}x}\n" for w in words))
        np.savez(path, beats=np.array(len(loads["load"])), acts=np.array(len(loads["acts"])),
                 cmds=np.array([hex(cmd_payload(config, cmd)) for cmd in commands]),
                 emits=np.array([cmd["emit"] for cmd in commands]),
                 rows=np.array([_ceil_div(cmd["out_features"], config.pes)
                                for cmd in commands]),
                 out_features=np.array([cmd["out_features"] for cmd in commands]))
        jobs.append({"file": str(path), "stalls": float(case.get("stalls", 0.0)),
                     "load_file": str(workdir / f"case{number}_load.hex"),
                     "acts_file": str(workdir / f"case{number}_acts.hex"),
                     "seed": int(case.get("seed", number)),
                     "reset_after": case.get("reset_after")})
    start = time.monotonic()
    from . import rtl
    raw = rtl.run(build, "sim.tb.eie", {"config": config.__dict__, "cases": jobs},
                  workdir=workdir)
    wall = time.monotonic() - start
    results = []
    for got in raw["cases"]:
        before = parse_counters(config, int(got["counters_before"], 16))
        after = parse_counters(config, int(got["counters_after"], 16))
        delta = {}
        for key in before:
            if isinstance(before[key], list):
                delta[key] = [(b - a) & 0xFFFFFFFF for a, b in
                              zip(before[key], after[key], strict=True)]
            else:
                delta[key] = (after[key] - before[key]) & 0xFFFFFFFF
        results.append({"outputs": got["emitted"][-1], "emitted": got["emitted"],
                        "counters": delta, "cycles": delta["cycles"],
                        "load_seconds": got["load_seconds"],
                        "load_cycles": got["load_cycles"],
                        "run_seconds": got["run_seconds"],
                        "sim_cycles": got["sim_cycles"],
                        "build_seconds": build.build_seconds, "build_cached": build.cached,
                        "wall_seconds": wall})
    (workdir / "results.json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k not in ("outputs", "emitted")} for r in results]))
    return results


def _build(config: EieConfig):
    """The Verilator model of :class:`sim.eie_harness.EieHarness` (:func:`sim.rtl.build`): the
    engine with a beat source on its load stream, keyed by the config
    and the EIE engine's own sources, so work on other engines does not force a rebuild."""
    from . import rtl
    from .eie_harness import EieHarness
    return rtl.build("eie_top", config, lambda: EieHarness(config),
                     sources=("hw/eie", "hw/runtime_memory.py", "sim/eie_harness.py"),
                     verilog=("sim/tb/beat_source.v",))


def _sim_dir() -> Path:
    from .rtl import BUILD_ROOT
    path = BUILD_ROOT / "sim"
    path.mkdir(parents=True, exist_ok=True)
    return path


def random_layer(config: EieConfig, in_features: int, out_features: int, density: float,
                 act_density: float, seed: int = 0):
    """A random sparse layer and input, as in EIE's benchmark: uniformly random non-zero
    positions (``density``), codebook indices 1..15 uniform, a 16-entry codebook of
    weights in about ±0.1, and non-negative inputs (post-ReLU) with ``act_density``
    non-zeros. Returns ``(layer, activations)``."""
    for name, value in (("density", density), ("act_density", act_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value}: use a fraction from 0 to 1")
    if in_features < 1 or out_features < 1:
        raise ValueError("in_features and out_features must be at least 1")
    rng = np.random.default_rng(seed)
    k = config.codebook_size
    indices = np.zeros((out_features, in_features), dtype=np.uint8)
    step = max(1, (1 << 24) // in_features)
    for r0 in range(0, out_features, step):
        block = indices[r0:r0 + step]
        mask = rng.random(block.shape, dtype=np.float32) < density
        block[mask] = rng.integers(1, k, int(mask.sum()), dtype=np.uint8)
    scale = 1 << config.weight_frac
    codebook = np.concatenate([[0], np.round(np.linspace(-0.1, 0.1, k - 1) * scale)])
    codebook = np.clip(codebook, -(1 << (config.weight_width - 1)),
                       (1 << (config.weight_width - 1)) - 1).astype(np.int64)
    amax = min((1 << (config.act_width - 1)) - 1, 4 << config.act_frac)
    act = rng.integers(1, amax + 1, in_features) * (rng.random(in_features) < act_density)
    return {"indices": indices, "codebook": codebook, "relu": True}, act.astype(np.int64)
