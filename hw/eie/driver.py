"""Host driver of the EIE engine: images and layer commands in, stream beats out; result
and counter words in, outputs and counts out.

The driver knows the engine's memories and words (:mod:`hw.eie.layouts`, the sparse-matrix
format of :mod:`hw.eie.csc`) and nothing of how beats travel: the Verilator testbench
(:mod:`sim.tb.eie`), the board adapter's host side (:mod:`boards.engines`) and the image
runners hand these beats to their transport and give result beats back here.

A layer is a dict::

    {"indices": uint8 (out × in), 0 = pruned, else codebook index  # or "csc": CscLayer
     "codebook": 2**index_bits signed ints, entry 0 == 0,
     "bias": optional (out,) signed act_width-bit ints,
     "relu": bool (default True)}

::

    image = build_image(config, layers)     # per-PE memories and layer commands
    beats = load_beats(image, x)            # i_load payloads: memories and inputs
    program = layer_program(image)          # i_cmd payloads, which layers emit, rows
    y = parse_results(config, beats, n)     # o_result beats → n outputs
    delta = counter_delta(config, before, after)

The cost model (:func:`ideal_cycles`, :func:`work_cycles`, :func:`padding_processed`)
reads the same images.
"""

from dataclasses import dataclass, field

import numpy as np

from ..words import pack, unpack
from .config import EieConfig
from .csc import CscLayer, balanced_row_order, check_codebook, encode, pack_words
from .layouts import Mem, cmd_layout, counter_layout, load_layout, result_layout

__all__ = ["EieImage", "build_image", "load_beats", "act_beats", "cmd_payload",
           "layer_program", "parse_result", "parse_results", "parse_counters",
           "counter_delta", "balance_layers", "unpermute", "ideal_cycles", "work_cycles",
           "span_work", "padding_processed", "COUNTER_MODULUS"]

#: The counters are 32 bits wide and wrap; differences are taken modulo this.
COUNTER_MODULUS = 1 << 32


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
        return {"config": self.config.to_dict(), "commands": self.commands,
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
    """Assign every layer's rows to PEs by load (:func:`hw.eie.csc.balanced_row_order`)
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


def _check_range(values, width, what):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    v = np.asarray(values)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{what} must fit {width}-bit signed ({lo}..{hi})")


def load_beats(image: EieImage, activations) -> list[int]:
    """Payloads of ``i_load`` beats that load ``image`` and the first layer's inputs."""
    c, n = image.config, image.config.pes
    layout = load_layout(c)

    def beat(mem, addr, lanes):
        return pack(layout, {"mem": mem, "addr": addr, "data": lanes})

    beats = [beat(Mem.SPMAT, addr, image.spmat[:, addr]) for addr in range(image.spmat.shape[1])]
    ptrs = image.pointers
    if ptrs.shape[1] % 2:
        ptrs = np.concatenate([ptrs, np.zeros((n, 1), dtype=np.int64)], axis=1)
    pairs = ptrs[:, 0::2] | (ptrs[:, 1::2] << c.ptr_bits)
    beats += [beat(Mem.PTR, addr, pairs[:, addr]) for addr in range(pairs.shape[1])]
    mask = (1 << c.act_width) - 1
    beats += [beat(Mem.BIAS, addr, image.bias[:, addr] & mask)
              for addr in range(image.bias.shape[1])]
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
    return [pack(layout, {"mem": Mem.ACT, "addr": r, "data": grid[r]}) for r in range(rows)]


def cmd_payload(config: EieConfig, command: dict) -> int:
    """The ``i_cmd`` payload of one layer command (a dict of :func:`hw.eie.cmd_layout`'s
    fields, as :func:`build_image` makes them)."""
    return pack(cmd_layout(config), command)


def layer_program(image: EieImage, *, emit_all: bool = False,
                  queue_limit: int | None = None) -> list[dict]:
    """The run of ``image``'s layers: per layer its ``i_cmd`` ``payload``, whether it emits
    its outputs (``emit``), how many result beats (``rows``) and ``out_features`` it has.

    ``emit_all`` emits every layer's outputs; ``queue_limit`` (1 .. queue_depth) caps the
    activation queues' fill level."""
    config = image.config
    if queue_limit and not 1 <= queue_limit <= config.queue_depth:
        raise ValueError(f"queue_limit={queue_limit}: use 1 to "
                         f"queue_depth={config.queue_depth}")
    program = []
    for cmd in image.commands:
        cmd = dict(cmd)
        if emit_all:
            cmd["emit"] = 1
        if queue_limit:
            cmd["queue_limit"] = int(queue_limit)
        program.append({"payload": cmd_payload(config, cmd), "emit": int(cmd["emit"]),
                        "rows": _ceil_div(cmd["out_features"], config.pes),
                        "out_features": int(cmd["out_features"])})
    return program


def parse_result(config: EieConfig, payload: int) -> list[int]:
    """One ``o_result`` beat: local row ``r`` of every PE, as signed integers."""
    return unpack(result_layout(config), payload)


def parse_results(config: EieConfig, beats, out_features: int) -> list[int]:
    """A layer's ``o_result`` beats → its ``out_features`` outputs in row order."""
    layout = result_layout(config)
    return [v for beat in beats for v in unpack(layout, beat)][:out_features]


def parse_counters(config: EieConfig, value: int) -> dict:
    """The ``o_counters`` word: cumulative counters, per-PE ones as lists."""
    return unpack(counter_layout(config), value)


def counter_delta(config: EieConfig, before: int, after: int) -> dict:
    """Counts between two ``o_counters`` words (the counters wrap at 32 bits)."""
    a, b = parse_counters(config, before), parse_counters(config, after)
    return {k: ([(y - x) % COUNTER_MODULUS for x, y in zip(a[k], b[k], strict=True)]
                if isinstance(a[k], list) else (b[k] - a[k]) % COUNTER_MODULUS) for k in a}


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
            total[p] += int(span_work(ptr[cols], ptr[cols + 1], cum, epw).sum())
    return total


def span_work(start: np.ndarray, end: np.ndarray, cum: np.ndarray, epw: int) -> np.ndarray:
    """The MAC-stage cycles of each column span ``[start, end)`` of one PE's entries: per
    sparse-matrix word of ``epw`` entries it touches, its real entries (``cum`` is the
    running count of real entries, ``cum[i]`` before entry ``i``), or one cycle for a word
    holding only padding. Empty spans take 0."""
    work = np.zeros(len(start), dtype=np.int64)
    where = np.nonzero(end > start)[0]
    if not len(where):
        return work
    s, e = start[where], end[where]
    ws, we = s // epw, (e - 1) // epw
    nw = we - ws + 1
    piece = np.repeat(np.arange(len(s)), nw)
    offset = np.arange(int(nw.sum())) - np.repeat(np.cumsum(nw) - nw, nw)
    word = ws[piece] + offset
    lo = np.maximum(s[piece], word * epw)
    hi = np.minimum(e[piece], word * epw + epw)
    work[where] = np.bincount(piece, np.maximum(cum[hi] - cum[lo], 1), minlength=len(s))
    return work


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
