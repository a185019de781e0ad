"""Corner cases of the EIE engine, built for any config, and their checks."""

import numpy as np

from sim.eie import build_image, load_beats, padding_processed, work_cycles
from sim.golden import eie as golden


def _indices(rng, rows, cols, density, k=16):
    mask = rng.random((rows, cols)) < density
    return (mask * rng.integers(1, k, (rows, cols))).astype(np.uint8)


def _codebook(rng, lo=-4000, hi=4000):
    return np.concatenate([[0], rng.integers(lo, hi, 15)]).astype(np.int64)


def _acts(rng, n, density, lo=-2000, hi=2000):
    values = rng.integers(lo, hi, n)
    values[values == 0] = 1
    return values * (rng.random(n) < density)


def make_cases(config, seed=0, queue_limit=None):
    """List of ``(name, layers, activations, options)``; ``queue_limit`` caps the queues of
    every case that does not set its own."""
    n = config.pes
    rng = np.random.default_rng(seed)
    cases = []

    def single(name, rows, cols, density, act_density, relu=False, **options):
        layer = {"indices": _indices(rng, rows, cols, density), "codebook": _codebook(rng),
                 "relu": relu}
        cases.append((name, [layer], _acts(rng, cols, act_density), options))

    # Densities from 1 % to 100 % (weights) and 0 % to 100 % (activations).
    single("w100_a100", 3 * n + 1, 2 * n + 3, 1.0, 1.0)
    single("w1_a100", 40 * n, 90, 0.01, 1.0)
    single("w10_a50_stalls", 5 * n + 3, 70, 0.10, 0.5, relu=True, stalls=0.3)
    single("w50_a10", 2 * n, 100, 0.5, 0.1)
    single("w30_a0", 2 * n + 1, 60, 0.3, 0.0)
    single("w5_a30_rows_not_multiple", 7 * n - 1, 33, 0.05, 0.3)
    single("one_row_one_col", 1, 1, 1.0, 1.0)
    single("w20_a80_queue_limit_1", 4 * n + 2, 50, 0.2, 0.8, queue_limit=1)
    # Columns where only PE 0 has entries; long zero runs forcing padding.
    rows = 40 * n
    idx = np.zeros((rows, 24), dtype=np.uint8)
    idx[0::n, :] = _indices(rng, len(range(0, rows, n)), 24, 0.3)
    cases.append(("only_pe0_entries", [{"indices": idx, "codebook": _codebook(rng),
                                        "relu": False}], _acts(rng, 24, 0.8), {}))
    idx = np.zeros((rows, 10), dtype=np.uint8)
    idx[-1, :] = 7                      # local row 39 in its PE: two padding entries first
    idx[16 * n, 3] = 2                  # exactly 16 zeros before it: one padding entry
    idx[15 * n + 1, 4] = 5              # 15 zeros: fits a zero run, no padding
    cases.append(("padding_runs", [{"indices": idx, "codebook": _codebook(rng),
                                    "relu": False}], _acts(rng, 10, 1.0), {}))
    # Saturation both ways, with bias and without ReLU.
    rows = 3 * n + 2
    cb = np.array([0] + [32767, -32768] * 7 + [32767], dtype=np.int64)
    sat = {"indices": _indices(rng, rows, 64, 0.8), "codebook": cb, "relu": False,
           "bias": rng.integers(-30000, 30000, rows)}
    cases.append(("saturation", [sat], _acts(rng, 64, 1.0, -32768, 32767), {}))
    # A 3-layer MLP chained on chip, bias and ReLU, with stalls on every stream.
    sizes = [3 * n + 5, 4 * n + 1, 2 * n + 3, n + 2]
    mlp = []
    for k in range(3):
        mlp.append({"indices": _indices(rng, sizes[k + 1], sizes[k], 0.3),
                    "codebook": _codebook(rng), "relu": k < 2,
                    "bias": rng.integers(-500, 500, sizes[k + 1]) if k != 1 else None})
    cases.append(("mlp3_chained", mlp, _acts(rng, sizes[0], 0.7),
                  {"emit_all": True, "stalls": 0.2}))
    # A reset in the middle of a layer, then the same layer again.
    single("reset_mid_layer", 8 * n, 120, 0.2, 0.9, reset_after=40)
    if queue_limit:
        cases = [(name, layers, acts, {"queue_limit": queue_limit, **options})
                 for name, layers, acts, options in cases]
    return cases


def make_small_cases(config, seed=2):
    """Single layers within a small config's memories (one codebook slot is enough),
    values over its whole widths."""
    rng = np.random.default_rng(seed)
    w_hi, a_hi = (1 << (config.weight_width - 1)) - 1, (1 << (config.act_width - 1)) - 1
    k = 1 << config.index_bits
    cases = []
    for name, rows, cols, density, act_density, options in (
            ("dense", 20, 24, 1.0, 1.0, {}),
            ("sparse_stalls", config.act_depth, config.act_depth, 0.1, 0.5, {"stalls": 0.3}),
            ("all_zero_acts", 12, 20, 0.4, 0.0, {}),
            ("one_row_one_col", 1, 1, 1.0, 1.0, {}),
            ("queue_limit_1", 17, 30, 0.3, 0.8, {"queue_limit": 1})):
        layer = {"indices": _indices(rng, rows, cols, density, k),
                 "codebook": np.concatenate([[0], rng.integers(-w_hi - 1, w_hi + 1, k - 1)]),
                 "relu": False, "bias": rng.integers(-a_hi - 1, a_hi + 1, rows)}
        cases.append((name, [layer], _acts(rng, cols, act_density, -a_hi - 1, a_hi + 1),
                      options))
    # Saturation both ways (no ReLU), and zero runs longer than the run field (padding).
    cb = np.array([0] + [w_hi, -w_hi - 1] * (k // 2 - 1) + [w_hi])
    idx = np.zeros((config.act_depth, 16), dtype=np.uint8)
    idx[-1, :], idx[0, :] = 3, 4
    cases.append(("saturation_padding", [{"indices": idx, "codebook": cb, "relu": False}],
                  np.full(16, a_hi), {}))
    return cases


def run_and_check(config, cases, runner):
    """Run ``cases`` with ``runner(config, rtl_cases) -> results``; return failures."""
    rtl_cases, expect = [], []
    for name, layers, acts, options in cases:
        image = build_image(config, layers)
        specs = [{"weights": lay["indices"], "codebook": lay["codebook"],
                  "bias": lay.get("bias"), "relu": lay.get("relu", True)} for lay in layers]
        outs = golden.run(specs, acts, config)
        inputs = [np.asarray(acts)] + outs[:-1]
        work = work_cycles(image, inputs)
        expect.append((name, image, outs, inputs, work, options))
        rtl_cases.append({"image": image, "activations": acts, **options})
    results = runner(config, rtl_cases)
    failures = []
    for (name, image, outs, inputs, work, options), got in zip(expect, results,
                                                                   strict=True):
        want = [o.tolist() for o in outs] if options.get("emit_all") else [outs[-1].tolist()]
        if got["emitted"] != want:
            bad = sum(int(x != y) for w, g in zip(want, got["emitted"], strict=False)
                      for x, y in zip(w, g, strict=False))
            failures.append(f"{name}: {bad} mismatching output words")
        c = got["counters"]
        broadcasts = sum(int(np.count_nonzero(a)) for a in inputs)
        if c["broadcasts"] != broadcasts:
            failures.append(f"{name}: {c['broadcasts']} broadcasts, {broadcasts} non-zeros")
        if c["busy"] != work.tolist():
            failures.append(f"{name}: MAC stages busy {c['busy']} cycles per PE, the image "
                            f"needs {work.tolist()}")
        pads = padding_processed(image, inputs)
        if sum(c["padding"]) != pads:
            failures.append(f"{name}: {sum(c['padding'])} padding entries passed, the image "
                            f"has {pads} in the non-zero columns")
        beats = len(load_beats(image, inputs[0]))
        if got["load_cycles"] < beats or (options.get("stalls") and
                                          got["load_cycles"] < beats * 1.1):
            failures.append(f"{name}: {beats} load beats took {got['load_cycles']} cycles "
                            f"(stalls {options.get('stalls', 0)})")
        if got["cycles"] < int(work.max()):
            failures.append(f"{name}: {got['cycles']} cycles, below the busiest PE's "
                            f"{int(work.max())}")
    return failures
