"""``nnaccel gemm``: one requantized int8 GEMM, random or replayed from given operands, on
the golden model or the RTL."""

import json

import numpy as np

from hw.systolic import SystolicConfig
from quantize.atomic import check_outputs, output_file
from quantize.gemm_replay import WEIGHT_LAYOUTS, load_operands, run_report
from sim import budget
from sim.systolic import random_job

from .verilog import add_systolic_arguments

__all__ = ["register", "gemm_report"]

_DEFAULT_ROUNDING = "double"


def gemm_config(args, shape, rounding):
    """A config whose buffers hold the M×K×N GEMM ``shape`` (the defaults, or powers of two
    above them, so builds get reused); depths given on the command line are taken as they
    are."""
    base = SystolicConfig(rows=args.rows, cols=args.cols, rounding=rounding)
    given = {name: getattr(args, name) for name in SystolicConfig.DEPTHS
             if getattr(args, name) is not None}
    return SystolicConfig.fit([shape], base=base, **given)


def gemm_report(cfg, m, k, n, seed, engine, stall=0.0) -> dict:
    """:func:`quantize.gemm_replay.run_report` of the random GEMM ``seed`` makes."""
    cfg.check_gemm(m, k, n)
    job = random_job(np.random.default_rng(seed), m, k, n)
    return run_report(cfg, job, engine, seed=seed, stall=stall)[0]


def _rounding(args, named) -> str:
    """--rounding, else the operands file's, else the default; the two must agree."""
    if args.rounding and named and args.rounding != named:
        raise ValueError(f"--rounding {args.rounding}: the operands file names {named!r}; "
                         f"drop --rounding or give {named}")
    return args.rounding or named or _DEFAULT_ROUNDING


def _check_gemm_args(args) -> None:
    SystolicConfig(rows=args.rows, cols=args.cols)       # says what is wrong with a size
    sizes = [f"--{name}" for name in ("m", "k", "n") if getattr(args, name) is not None]
    if args.operands is not None:
        if sizes:
            raise ValueError(f"{', '.join(sizes)}: the operands file gives the GEMM's size; "
                             f"drop them")
    elif len(sizes) < 3:
        raise ValueError("give --m, --k and --n (a random GEMM) or --operands FILE.npz")
    else:
        for name in ("m", "k", "n"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name} {getattr(args, name)}: use a positive integer")
    if args.operands is None and args.weights_layout:
        raise ValueError("--weights-layout only applies to --operands")
    if args.output is not None:
        check_outputs([("--output", args.output)], [("--operands", args.operands)])
    if not 0.0 <= args.stall < 1.0:
        raise ValueError(f"--stall {args.stall}: use a probability in [0, 1)")
    if args.stall and args.engine != "rtl":
        raise ValueError("--stall only applies to --engine rtl (the golden model has no "
                         "streams)")
    if args.seed < 0:
        raise ValueError(f"--seed {args.seed}: use a non-negative integer")


def _check_budget(args, m, k, n) -> None:
    words = m * -(-k // args.rows) + -(-k // args.rows) * -(-n // args.cols) * args.rows
    budget.check(8 * (m * k + k * n + 4 * m * n) + 100 * words,
                 f"a {m}x{k}x{n} GEMM", "lower --m, --k or --n" if args.operands is None
                 else "split the operands")


def _gemm(args):
    budget.set_limit(args.max_memory)
    _check_gemm_args(args)
    if args.operands is not None:
        operands = load_operands(args.operands, args.weights_layout or "kn")
        job, rounding = operands.job, _rounding(args, operands.rounding)
        m, k, n = job.shape
    else:
        job, rounding = None, _rounding(args, None)
        m, k, n = args.m, args.k, args.n
    _check_budget(args, m, k, n)
    cfg = gemm_config(args, (m, k, n), rounding)
    if args.engine == "rtl":
        budget.check_generator(cfg)
    if job is None:
        job = random_job(np.random.default_rng(args.seed), m, k, n)
    report, run = run_report(cfg, job, args.engine, seed=args.seed, stall=args.stall)
    if args.output is not None:
        with output_file(args.output) as tmp, open(tmp, "wb") as fh:
            np.save(fh, run.output.astype(np.int8))
    source = "simulated" if args.engine == "rtl" else "performance model"
    what = f"GEMM {m}x{k}x{n}" + (f" from {args.operands}" if args.operands else "")
    print(f"{what} on a {cfg.rows}x{cfg.cols} array ({args.engine}, rounding "
          f"{cfg.rounding})")
    print(f"  cycles       {report['cycles']} ({source}; loads, fill, drain, weight loads "
          f"included)")
    print(f"  useful MACs  {report['useful_macs']}")
    print(f"  utilization  {100 * report['utilization']:.1f} %")
    if args.engine == "rtl":
        print(f"  mismatches   {report['mismatches']} of {m * n} words vs golden")
    if args.output is not None:
        print(f"  output       {args.output} (int8 {m}x{n})")
    if args.json:
        print(json.dumps(report))
    return 1 if report.get("mismatches") else 0


def register(sub):
    p = sub.add_parser("gemm", help="run one int8 GEMM (random, or given with --operands) "
                                    "on the systolic engine")
    add_systolic_arguments(p)
    # none: the operands file's rounding, else double
    p.set_defaults(rounding=None)
    p.add_argument("--m", type=int, help="rows of A (random GEMM)")
    p.add_argument("--k", type=int, help="columns of A, rows of W (random GEMM)")
    p.add_argument("--n", type=int, help="output channels (random GEMM)")
    p.add_argument("--operands", metavar="FILE.npz",
                   help="replay this GEMM instead of a random one: keys a (int8 M x K), w "
                        "(int8, see --weights-layout), bias (int32 N), multiplier and shift "
                        "(int32 N, or one scalar each), optional input_zero_point, "
                        "output_zero_point, act_min, act_max (int8 scalars) and rounding "
                        "(a string; --rounding, if given, must agree). Default rounding: "
                        f"{_DEFAULT_ROUNDING}")
    p.add_argument("--weights-layout", choices=list(WEIGHT_LAYOUTS),
                   help="layout of w in --operands: "
                        + "; ".join(f"{k} = {v}" for k, v in WEIGHT_LAYOUTS.items())
                        + " (default: kn)")
    p.add_argument("--output", metavar="FILE.npy",
                   help="write the int8 M x N result (.npy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=["golden", "rtl"], default="golden")
    p.add_argument("--stall", type=float, default=0.0,
                   help="probability of idle/backpressure cycles on every stream (rtl)")
    p.add_argument("--json", action="store_true", help="one JSON object on the last line")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=_gemm)
