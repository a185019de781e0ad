"""``nnaccel gemm``: one random requantized int8 GEMM on the golden model or the RTL."""

import json

import numpy as np

from hw.commands import add_systolic_arguments, systolic_config_from_args

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


def _gemm(args):
    cfg = gemm_config(args)
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
    p.set_defaults(func=_gemm)
