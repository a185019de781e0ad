"""``nnaccel gemm``: one random requantized int8 GEMM on the golden model or the RTL."""

import json

import numpy as np

from hw.commands import add_systolic_arguments, systolic_config_from_args

from . import budget

__all__ = ["register", "gemm_report"]


def _pow2_at_least(n: int, floor: int) -> int:
    return max(floor, 1 << max(0, (n - 1).bit_length()))


def gemm_config(args):
    """A config whose buffers hold the requested GEMM (powers of two, so builds get reused)."""
    kt = -(-args.k // args.rows)
    nt = -(-args.n // args.cols)
    return systolic_config_from_args(
        args,
        act_depth=_pow2_at_least(kt * args.m, 2048),
        weight_depth=_pow2_at_least(nt * kt * args.rows, 2048),
        acc_depth=_pow2_at_least(args.m, 512),
        param_depth=_pow2_at_least(nt, 64),
    )


def gemm_report(cfg, m, k, n, seed, engine, stall=0.0) -> dict:
    from sim.systolic import model_cycles, random_job, run_gemm
    cfg.check_gemm(m, k, n)
    job = random_job(np.random.default_rng(seed), m, k, n)
    run = run_gemm(cfg, job.a, job.w, job.bias, job.multiplier, job.shift,
                   job.input_zero_point, job.output_zero_point, engine=engine, stall=stall,
                   seed=seed)
    golden = job.golden(cfg.rounding)
    cycles = run.cycles if engine == "rtl" else model_cycles(cfg, m, k, n)
    macs = m * k * n
    return {
        "engine": engine, "rows": cfg.rows, "cols": cfg.cols, "m": m, "k": k, "n": n,
        "seed": seed, "cycles": cycles, "cycles_source": "rtl" if engine == "rtl" else "model",
        "useful_macs": macs,
        "utilization": macs / (cfg.rows * cfg.cols * cycles),
        "mismatches": int((run.output != golden).sum()),
        "counters": run.counters if engine == "rtl" else {},
    }


def _check_gemm_args(args) -> None:
    from hw.systolic import SystolicConfig
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
    else:
        print("  mismatches   0 (the golden model is the reference; use --engine rtl)")
    if args.json:
        print(json.dumps(report))
    return 1 if report["mismatches"] else 0


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
