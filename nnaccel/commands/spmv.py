"""``nnaccel spmv``: one random sparse layer on the EIE engine (golden model or RTL)."""

import json

import numpy as np

from hw.eie import EieConfig
from hw.eie.csc import encode
from sim import budget
from sim.eie import random_layer, run_layers
from sim.golden import eie as golden

__all__ = ["register", "spmv"]


def register(subparsers):
    p = subparsers.add_parser(
        "spmv", help="run one random sparse layer on the EIE engine",
        description="Run one random sparse layer (uniform non-zeros, 16-entry codebook, "
                    "fixed seed) on the EIE engine and compare every output word with the "
                    "golden model.")
    p.add_argument("--pes", type=int, default=64, help="processing elements (default 64)")
    p.add_argument("--in-features", type=int, default=4096)
    p.add_argument("--out-features", type=int, default=4096)
    p.add_argument("--density", type=float, default=0.09, help="weight density (0..1)")
    p.add_argument("--act-density", type=float, default=0.35,
                   help="input activation density (0..1)")
    p.add_argument("--queue-depth", type=int, default=8, help="activation queue depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=["golden", "rtl"], default="golden")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=spmv)


def spmv(args) -> int:
    budget.set_limit(args.max_memory)
    base = EieConfig(pes=args.pes, queue_depth=args.queue_depth)
    if args.in_features < 1 or args.out_features < 1:
        raise ValueError("--in-features and --out-features must be at least 1")
    for flag, value in (("--density", args.density), ("--act-density", args.act_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} {value}: use a fraction from 0 to 1")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer")
    cells = args.in_features * args.out_features
    budget.check(cells * (2 + 48 * args.density) + 64 * (args.in_features + args.out_features),
                 f"a {args.out_features}x{args.in_features} sparse layer",
                 "lower --in-features, --out-features or --density")
    layer, acts = random_layer(base, args.in_features, args.out_features, args.density,
                               args.act_density, args.seed)
    config = EieConfig.fit([encode(layer["indices"], base)], base=base)
    if args.engine == "rtl":
        budget.check_generator(config)
    result = run_layers(config, [layer], acts, engine=args.engine)
    want = golden.layer(layer["indices"], acts, config, codebook=layer["codebook"],
                        relu=layer["relu"])
    got = np.asarray(result["outputs"])
    mismatches = int(np.count_nonzero(got != want))
    cycles = result.get("cycles")
    efficiency = None
    if cycles:
        busy = result["counters"]["busy"]
        bubble = cycles - max(busy)          # the busiest PE's idle cycles
        efficiency = 1 - bubble / cycles
    summary = {
        "engine": args.engine, "pes": config.pes, "queue_depth": config.queue_depth,
        "in_features": args.in_features, "out_features": args.out_features,
        "density": args.density, "act_density": args.act_density, "seed": args.seed,
        "cycles": cycles, "ideal_cycles": result["ideal_cycles"],
        "work_cycles": result["work_cycles"],
        "load_balance_efficiency": efficiency,
        "padding_entries": result["padding_entries"], "mismatches": mismatches,
    }
    if args.engine == "rtl":
        c = result["counters"]
        summary.update(broadcasts=c["broadcasts"], stall_cycles=c["stall_cycles"],
                       load_seconds=round(result["load_seconds"], 3),
                       run_seconds=round(result["run_seconds"], 3))
    labels = {
        "cycles": "cycles (command to write-back done)",
        "ideal_cycles": "ideal cycles (busiest PE's entries, padding included)",
        "work_cycles": "work cycles (busiest PE's MAC cycles; padding is free here)",
        "load_balance_efficiency": "load-balance efficiency (1 - bubble / total)",
        "padding_entries": "padding entries (in the non-zero columns)",
        "mismatches": "mismatching output words",
    }
    for key, label in labels.items():
        value = summary[key]
        shown = "n/a (golden model has no timing)" if value is None else (
            f"{value:.4f}" if isinstance(value, float) else value)
        print(f"{label:<62} {shown}")
    if args.json:
        print(json.dumps(summary))
    return 1 if mismatches else 0
