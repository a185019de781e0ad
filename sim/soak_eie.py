"""The EIE engine's part of the soak: random sparse networks, many input vectors each.

A *vector* is one input activation vector run through a network of one to
``max_layers`` layers on chip. A batch is a list of random networks (random sizes from one
row to many per PE, random density from empty to dense, empty columns, PEs with no rows,
long zero runs, saturating codebooks, bias or not, ReLU or not, capped queues), each with
up to a few hundred vectors (all-zero ones among them), run in one simulation by
:mod:`sim.tb.eie_soak` with a random stall probability on every stream. Every emitted
word is compared with :func:`sim.golden.eie.run`.
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hw.eie import PRESETS, EieConfig
from hw.eie.layouts import load_layout
from sim import rtl
from sim.eie import _build, act_beats, build_image, cmd_payload, load_beats, parse_counters
from sim.golden import eie as golden

__all__ = ["CONFIGS", "SHARES", "BATCH_VECTORS", "random_network", "random_vectors",
           "run_batch"]

#: The builds the RTL tests make (tests/eie/test_rtl.py), so the Verilator cache is shared.
CONFIGS = {
    "pes4": PRESETS["test4"],
    "pes16": EieConfig(pes=16, spmat_depth=512, ptr_depth=1024, act_depth=64, bias_depth=128),
}
SHARES = {"pes4": 0.8, "pes16": 0.2}
#: Vectors per simulation.
BATCH_VECTORS = 10000


def _size(rng: np.random.Generator, pes: int, cap: int) -> int:
    pick = rng.random()
    if pick < 0.15:
        hi = pes                        # at most one row per PE: some PEs have none
    elif pick < 0.8:
        hi = 6 * pes
    else:
        hi = 16 * pes
    return int(rng.integers(1, min(hi, cap) + 1))


def _codebook(config: EieConfig, rng: np.random.Generator) -> np.ndarray:
    hi = (1 << (config.weight_width - 1)) - 1
    k = config.codebook_size
    pick = rng.random()
    if pick < 0.4:
        values = rng.integers(-hi - 1, hi + 1, k - 1)
    elif pick < 0.8:
        small = min(hi, 4000)
        values = rng.integers(-small, small + 1, k - 1)
    else:
        values = rng.choice([hi, -hi - 1, 1, -1], k - 1)
    return np.concatenate([[0], values]).astype(np.int64)


def _indices(config, rng, rows, cols) -> np.ndarray:
    density = float(rng.choice([0.0, 0.02, 0.1, 0.3, 0.6, 1.0]))
    mask = rng.random((rows, cols)) < density
    idx = (mask * rng.integers(1, config.codebook_size, (rows, cols))).astype(np.uint8)
    if rng.random() < 0.3:                              # empty columns
        idx[:, rng.random(cols) < 0.4] = 0
    if rng.random() < 0.3:                              # a PE without entries
        idx[int(rng.integers(config.pes))::config.pes] = 0
    if rng.random() < 0.1:                              # entries in one PE only
        keep = int(rng.integers(config.pes))
        for p in range(config.pes):
            if p != keep:
                idx[p::config.pes] = 0
    return idx


def random_network(config: EieConfig, rng: np.random.Generator) -> list[dict]:
    """Layers (as :func:`sim.eie.build_image` takes them) that fit ``config``'s memories."""
    while True:
        count = int(rng.integers(1, config.max_layers + 1))
        cap = min(config.max_in_features, config.max_out_features,
                  config.ptr_depth // (count + 1) - 1)
        sizes = [_size(rng, config.pes, cap) for _ in range(count + 1)]
        if rng.random() < 0.9:
            # Mostly one or two result beats: the testbench spends Python time per beat.
            sizes[-1] = int(rng.integers(1, min(cap, 2 * config.pes) + 1))
        hi = (1 << (config.act_width - 1)) - 1
        layers = []
        for out_f, in_f in zip(sizes[1:], sizes[:-1], strict=True):
            bias = None
            if rng.random() < 0.5:
                bound = hi if rng.random() < 0.5 else 500
                bias = rng.integers(-bound - 1, bound + 1, out_f)
            layers.append({"indices": _indices(config, rng, out_f, in_f),
                           "codebook": _codebook(config, rng), "bias": bias,
                           "relu": bool(rng.random() < 0.5)})
        try:
            build_image(config, layers)
        except ValueError:
            continue                    # too many entries for the memories: draw again
        return layers


def random_vectors(config: EieConfig, rng: np.random.Generator, features: int,
                   count: int) -> np.ndarray:
    """``count`` input vectors: all-zero, sparse to dense, small positive to full range."""
    hi = (1 << (config.act_width - 1)) - 1
    small = min(hi, 4 << config.act_frac)
    out = np.zeros((count, features), dtype=np.int64)
    for v in range(count):
        if rng.random() < 0.05:
            continue
        density = float(rng.choice([0.05, 0.3, 0.7, 1.0]))
        pick = rng.random()
        if pick < 0.5:
            values = rng.integers(-hi - 1, hi + 1, features)
        elif pick < 0.8:
            values = rng.integers(1, small + 1, features)
        else:
            values = rng.choice([hi, -hi - 1, 1, -1], features)
        out[v] = values * (rng.random(features) < density)
    return out


def _hex(words, digits) -> list[str]:
    return [f"{w:0{digits}x}" for w in words]


def run_batch(config: EieConfig, vectors: int, seed: int, keep_dir: Path) -> dict:
    """Run the batch of ``seed`` (``vectors`` vectors); return its counts and first mismatch.

    The simulation's folder is kept as ``keep_dir/<seed>`` when a word mismatches."""
    rng = np.random.default_rng(seed)
    # A folder of its own: two soaks may run the same batch at the same time.
    (rtl.BUILD_ROOT / "soak" / "work").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"eie-{seed}-", dir=rtl.BUILD_ROOT / "soak" / "work"))
    digits = -(-load_layout(config).size // 4)
    nets, expect, done = [], [], 0
    while done < vectors:
        count = min(vectors - done, int(rng.integers(1, 8) if rng.random() < 0.1
                                        else rng.integers(50, 400)))
        layers = random_network(config, rng)
        image = build_image(config, layers)
        acts = random_vectors(config, rng, layers[0]["indices"].shape[1], count)
        emit_all = bool(rng.random() < 0.1)
        queue_limit = int(rng.integers(1, config.queue_depth + 1)) if rng.random() < 0.2 else 0
        commands = [dict(cmd, emit=int(emit_all or cmd["emit"]), queue_limit=queue_limit)
                    for cmd in image.commands]
        specs = [{"weights": lay["indices"], "codebook": lay["codebook"],
                  "bias": lay["bias"], "relu": lay["relu"]} for lay in layers]
        want, broadcasts = [], 0
        for a in acts:
            outs = golden.run(specs, a, config)
            broadcasts += sum(int(np.count_nonzero(x)) for x in [a] + outs[:-1])
            want.append([o.tolist() for o in (outs if emit_all else outs[-1:])])
        number = len(nets)
        load = workdir / f"net{number}_load.hex"
        load_words = load_beats(image, acts[0])
        load.write_text("\n".join(_hex(load_words, digits)) + "\n")
        np.savez(workdir / f"net{number}.npz",
                 cmds=np.array([hex(cmd_payload(config, cmd)) for cmd in commands]),
                 emits=np.array([cmd["emit"] for cmd in commands]),
                 rows=np.array([-(-cmd["out_features"] // config.pes) for cmd in commands]),
                 out_features=np.array([cmd["out_features"] for cmd in commands]),
                 act_lines=np.array([_hex(act_beats(image, a), digits) for a in acts]))
        nets.append({"file": str(workdir / f"net{number}.npz"), "load_file": str(load),
                     "beats": len(load_words), "stalls": float(rng.uniform(0.05, 0.5)),
                     "seed": int(rng.integers(1 << 31))})
        expect.append((want, broadcasts, [lay["indices"].shape for lay in layers]))
        done += count
    build = _build(config)
    raw = rtl.run(build, "sim.tb.eie_soak", {"config": config.__dict__,
                                                      "networks": nets},
                  workdir=workdir / "sim")
    out = {"vectors": 0, "words": 0, "mismatches": 0, "cycles": raw["sim_cycles"],
           "networks": len(nets), "build": build.directory.name, "first": None,
           "failures": []}
    for number, ((want, broadcasts, shapes), got) in enumerate(
            zip(expect, raw["networks"], strict=True)):
        out["vectors"] += len(want)
        for v, (w_vec, g_vec) in enumerate(zip(want, got["outputs"], strict=True)):
            for layer, w in enumerate(w_vec):
                g = g_vec[layer] if layer < len(g_vec) else []
                out["words"] += len(w)
                bad = [r for r in range(len(w)) if r >= len(g) or g[r] != w[r]]
                out["mismatches"] += len(bad)
                if bad and out["first"] is None:
                    row = bad[0]
                    out["first"] = {"network": number, "vector": v, "layer": layer,
                                    "row": row, "shapes": [list(s) for s in shapes],
                                    "rtl": g[row] if row < len(g) else None,
                                    "golden": w[row], "kept": str(keep_dir / str(seed))}
        before = parse_counters(config, int(got["counters_before"], 16))["broadcasts"]
        after = parse_counters(config, int(got["counters_after"], 16))["broadcasts"]
        if (after - before) & 0xFFFFFFFF != broadcasts & 0xFFFFFFFF:
            out["failures"].append(f"network {number}: {(after - before) & 0xFFFFFFFF} "
                                   f"broadcasts, the inputs have {broadcasts} non-zeros")
    if out["first"] is not None or out["failures"]:
        keep_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(keep_dir / str(seed), ignore_errors=True)
        shutil.move(workdir, keep_dir / str(seed))
        (keep_dir / str(seed) / "result.json").write_text(json.dumps(raw))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return out
