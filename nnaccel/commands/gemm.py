"""``nnaccel gemm``: one random requantized int8 GEMM on the golden model or the RTL."""

import json

import numpy as np

from hw.systolic import SystolicConfig
from sim import budget
from sim.systolic import model_cycles, random_job, run_gemm

from .verilog import add_systolic_arguments

__all__ = ["register", "gemm_report"]


def gemm_config(args):
    """A config whose buffers hold the requested GEMM (the defaults, or powers of two above
    them, so builds get reused); depths given on the command line are taken as they are."""
    base = SystolicConfig(rows=args.rows, cols=args.cols, rounding=args.rounding)
    given = {name: getattr(args, name) for name in SystolicConfig.DEPTHS
             if getattr(args, name) is not None}
    return SystolicConfig.fit([(args.m, args.k, args.n)], base=base, **given)


def gemm_report(cfg, m, k, n, seed, engine, stall=0.0) -> dict:
    """Cycles, MACs and utilization of one random GEMM; on ``engine="rtl"`` also the engine's
    counters and the output words that differ from the golden model (the golden model has
    nothing to differ from: it is the reference)."""
    cfg.check_gemm(m, k, n)
    job = random_job(np.random.default_rng(seed), m, k, n)
    run = run_gemm(cfg, job.a, job.w, job.bias, job.multiplier, job.shift,
                   job.input_zero_point, job.output_zero_point, engine=engine, stall=stall,
                   seed=seed)
    rtl = engine == "rtl"
    cycles = run.cycles if rtl else model_cycles(cfg, m, k, n)
    macs = m * k * n
    report = {
        "engine": engine, "rows": cfg.rows, "cols": cfg.cols, "m": m, "k": k, "n": n,
        "seed": seed, "cycles": cycles, "cycles_source": "rtl" if rtl else "model",
        "useful_macs": macs,
        "utilization": macs / (cfg.rows * cfg.cols * cycles),
        "counters": run.counters if rtl else {},
    }
    if rtl:
        report["mismatches"] = int((run.output != job.golden(cfg.rounding)).sum())
    return report


def _check_gemm_args(args) -> None:
    SystolicConfig(rows=args.rows, cols=args.cols)       # says what is wrong with a size
    for name in ("m", "k", "n"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)}: use a positive integer")
    if not 0.0 <= args.stall < 1.0:
        raise ValueError(f"--stall {args.stall}: use a probability in [0, 1)")
    if args.stall and args.engine != "rtl":
        raise ValueError("--stall only applies to --engine rtl (the golden model has no "
                         "streams)")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer")
    m, k, n = args.m, args.k, args.n
    words = m * -(-k // args.rows) + -(-k // args.rows) * -(-n // args.cols) * args.rows
    budget.check(8 * (m * k + k * n + 4 * m * n) + 100 * words,
                 f"a {m}x{k}x{n} GEMM", "lower --m, --k or --n")


def _gemm(args):
    budget.set_limit(args.max_memory)
    _check_gemm_args(args)
    cfg = gemm_config(args)
    if args.engine == "rtl":
        budget.check_generator(cfg)
    report = gemm_report(cfg, args.m, args.k, args.n, args.seed, args.engine, args.stall)
    source = "simulated" if args.engine == "rtl" else "performance model"
    print(f"GEMM {args.m}x{args.k}x{args.n} on a {cfg.rows}x{cfg.cols} array ({args.engine})")
    print(f"  cycles       {report['cycles']} ({source}; loads, fill, drain, weight loads "
          f"included)")
    print(f"  useful MACs  {report['useful_macs']}")
    print(f"  utilization  {100 * report['utilization']:.1f} %")
    if args.engine == "rtl":
        print(f"  mismatches   {report['mismatches']} of {args.m * args.n} words vs golden")
    if args.json:
        print(json.dumps(report))
    return 1 if report.get("mismatches") else 0


def register(sub):
    p = sub.add_parser("gemm", help="run one random int8 GEMM on the systolic engine")
    add_systolic_arguments(p)
    p.add_argument("--m", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=["golden", "rtl"], default="golden")
    p.add_argument("--stall", type=float, default=0.0,
                   help="probability of idle/backpressure cycles on every stream (rtl)")
    p.add_argument("--json", action="store_true", help="one JSON object on the last line")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=_gemm)
