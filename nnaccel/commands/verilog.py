"""``nnaccel verilog``: synthesizable Verilog for an engine config."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hw.eie import EieConfig
from hw.systolic import ROUNDING_MODES, SystolicConfig
from quantize.atomic import output_file
from sim import budget
from sim.engines import ENGINES, engine
from sim.rtl import to_verilog

__all__ = ["register", "systolic_config_from_args", "add_systolic_arguments"]


def add_systolic_arguments(parser, *, depths_default=None):
    parser.add_argument("--rows", type=int, default=8, help="array rows (K per tile)")
    parser.add_argument("--cols", type=int, default=8, help="array columns (N per tile)")
    parser.add_argument("--act-depth", type=int, default=depths_default,
                        help="activation buffer words")
    parser.add_argument("--weight-depth", type=int, default=depths_default,
                        help="weight buffer words")
    parser.add_argument("--acc-depth", type=int, default=depths_default,
                        help="accumulator words (max M)")
    parser.add_argument("--param-depth", type=int, default=depths_default,
                        help="parameter words (max N / cols)")
    parser.add_argument("--rounding", choices=list(ROUNDING_MODES), default="double",
                        help="requantization rounding: the LiteRT kernels each matches are "
                             "in docs/systolic.md")


def systolic_config_from_args(args, **defaults):
    fields = {"rows": args.rows, "cols": args.cols, "rounding": args.rounding}
    for name in ("act_depth", "weight_depth", "acc_depth", "param_depth"):
        value = getattr(args, name)
        if value is None:
            value = defaults.get(name)
        if value is not None:
            fields[name] = value
    return SystolicConfig(**fields)


@dataclass(frozen=True)
class _Options:
    """An engine's options of ``nnaccel verilog``: ``flags`` as ``(flag, dest, value when
    not given)``, the message when another engine is given them (``{flags}``,
    ``{engine}``), and the config they make."""

    flags: tuple
    foreign: str
    config: Callable


#: Each engine's options.
_OPTIONS = {
    "systolic": _Options(
        tuple((f"--{name.replace('_', '-')}", name, None)
              for name in ("act_depth", "weight_depth", "acc_depth", "param_depth"))
        + (("--rows", "rows", 8), ("--cols", "cols", 8), ("--rounding", "rounding", "double")),
        "{flags}: systolic options, not used by --engine {engine}; drop them",
        systolic_config_from_args),
    "eie": _Options((("--pes", "pes", 8),),
                    "{flags} is an EIE option, not used by --engine {engine}; drop it",
                    lambda args: EieConfig(pes=args.pes)),
}


def _verilog(args):
    for other, options in _OPTIONS.items():
        given = [flag for flag, dest, unset in options.flags if getattr(args, dest) != unset]
        if other != args.engine and given:
            raise ValueError(options.foreign.format(flags=", ".join(given), engine=args.engine))
    cfg = _OPTIONS[args.engine].config(args)
    entry = engine(args.engine)
    name = entry.top_name
    budget.set_limit(args.max_memory)
    budget.check_generator(cfg)
    text = to_verilog(entry.top(cfg), name)
    out = Path(args.output)
    with output_file(out) as tmp:
        tmp.write_text(text)
    print(f"wrote {out} ({len(text.splitlines())} lines, top module {name}) for {cfg}")
    return 0


def register(sub):
    p = sub.add_parser("verilog", help="write synthesizable Verilog for an engine config")
    p.add_argument("--engine", choices=list(ENGINES), required=True)
    add_systolic_arguments(p)
    p.add_argument("--pes", type=int, default=8, help="EIE processing elements")
    p.add_argument("-o", "--output", required=True, help="Verilog file to write")
    p.add_argument("--max-memory", help="memory budget, e.g. 8G (default: half the RAM, or "
                                        "NNACCEL_MAX_MEMORY)")
    p.set_defaults(func=_verilog)
