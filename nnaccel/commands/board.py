"""``nnaccel synth`` and ``nnaccel board run``."""

import json
import sys
from pathlib import Path

import numpy as np

from boards import host
from boards.engines import ENGINES, engine_config
from boards.platforms import BOARDS, board
from boards.synth import parse_seeds, synthesize
from quantize.atomic import check_outputs, output_file
from quantize.board import run_image_on_board
from quantize.image import load_image
from quantize.loaders import load_array
from quantize.run import cycles_path, record_cycles
from sim import budget

__all__ = ["register"]


def _config_options(p):
    g = p.add_argument_group("engine config (defaults: the engine's own)")
    g.add_argument("--rows", type=int, help="systolic/mac array rows")
    g.add_argument("--cols", type=int, help="systolic/mac array columns")
    g.add_argument("--pes", type=int, help="EIE processing elements")
    g.add_argument("--preset", help="systolic preset (4x4, 8x8, 16x16, 32x32)")
    for name in ("act_depth", "weight_depth", "acc_depth", "param_depth", "spmat_depth",
                 "ptr_depth", "bias_depth"):
        g.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name,
                       help=f"engine config field {name}")


def _options(args) -> dict:
    return {k: getattr(args, k) for k in ("rows", "cols", "pes", "preset", "act_depth",
                                           "weight_depth", "acc_depth", "param_depth",
                                           "spmat_depth", "ptr_depth", "bias_depth")}


def _synth(args):
    board(args.board)
    seeds = parse_seeds(args.seed)
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give 1 or more place-and-route runs at a time")
    if args.clock_mhz is not None and not 0 < args.clock_mhz <= 1000:
        raise ValueError(f"--clock-mhz {args.clock_mhz}: give a clock in (0, 1000] MHz")
    if args.baud < 1:
        raise ValueError(f"--baud {args.baud}: give a positive baud rate")
    if args.pnr_timeout is not None and not 0 < args.pnr_timeout < float("inf"):
        raise ValueError(f"--pnr-timeout {args.pnr_timeout}: give place and route's time "
                         f"limit per seed in minutes, more than 0")
    config = engine_config(args.engine, _options(args))
    budget.check_generator(config)
    build_dir = Path(args.build_dir or Path("build") / "synth" / f"{args.board}-{args.engine}")
    report = synthesize(args.board, args.engine, config, build_dir=build_dir,
                        clock_mhz=args.clock_mhz, baud=args.baud, seeds=seeds, jobs=args.jobs,
                        progress=lambda line: print(line, file=sys.stderr, flush=True),
                        pnr_timeout=None if args.pnr_timeout is None else args.pnr_timeout * 60)
    if not report.bitstream and report.fmax_mhz == {}:
        print(f"{args.board} ({report.device}): build tree for the vendor tool written to "
              f"{report.build_dir} (run build_top.sh where Vivado is installed); its "
              f"Verilog passes Verilator's lint")
    else:
        print(report.text())
    if args.json:
        d = report.to_json()
        print(json.dumps({"fmax_mhz": d["fmax_mhz"], "resources": d["resources"],
                          "bitstream": d["bitstream"], **d}))
    return 0


def _board_run(args):
    board(args.board)
    if args.baud < 1 or not args.timeout > 0:
        raise ValueError("--baud and --timeout must be positive")
    if Path(args.output).suffix != ".npy":
        raise ValueError(f"-o {args.output}: outputs are written as a NumPy .npy file; name "
                         f"it *.npy")
    check_outputs([("-o", args.output), ("-o", cycles_path(args.output))],
                  [("--input", args.input), ("the image", args.image)])
    image = load_image(args.image)
    x = load_array(args.input, "--input")
    transport = host.SerialTransport(args.port, args.baud, timeout=args.timeout)
    try:
        result = run_image_on_board(image, x, host.BoardClient(transport),
                                    progress=lambda s: print(s, file=sys.stderr))
    finally:
        transport.close()
    with output_file(args.output) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, result["outputs"], allow_pickle=False)
    sidecar = record_cycles(args.output, image, "board", len(result["outputs"]),
                            result["cycles"], result["layer_cycles"])
    print(f"{len(result['outputs'])} outputs -> {args.output}; "
          f"{result['cycles']} engine cycles (per layer in {sidecar})")
    return 0


def register(subparsers):
    p = subparsers.add_parser("synth", help="synthesize, place and route an engine for a board")
    p.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    p.add_argument("--engine", required=True, help=f"one of {', '.join(ENGINES)}")
    _config_options(p)
    p.add_argument("--clock-mhz", type=float, help="design clock (PLL boards)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--seed", default="1",
                   help="nextpnr placement seed, or several (1-4, 1,3,5): the netlist is "
                        "placed and routed with each and the best Fmax kept")
    p.add_argument("--jobs", type=int, default=2,
                   help="place-and-route runs at a time with several seeds (default 2)")
    p.add_argument("--pnr-timeout", type=float, metavar="MINUTES",
                   help="stop a seed's place and route after this long (a congested design "
                        "can keep the router going for hours); default: no limit")
    p.add_argument("--build-dir", help="default build/synth/BOARD-ENGINE")
    p.add_argument("--max-memory", help="memory budget for elaborating the design, e.g. 8G "
                                        "(default: half the RAM, or NNACCEL_MAX_MEMORY)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (fmax_mhz, resources, bitstream) last")
    p.set_defaults(func=_synth)

    b = subparsers.add_parser("board", help="talk to an FPGA board over its UART")
    bs = b.add_subparsers(dest="board_command", required=True, metavar="ACTION")
    r = bs.add_parser("run", help="run a compressed net's image on the board")
    r.add_argument("image", help="image directory (manifest.json) from nnaccel compress")
    r.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    r.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    r.add_argument("--baud", type=int, default=115200)
    r.add_argument("--timeout", type=float, default=5.0, help="seconds per reply")
    r.add_argument("--input", required=True, help="inputs .npy (float, N x in)")
    r.add_argument("-o", "--output", required=True, help="outputs .npy")
    r.set_defaults(func=_board_run)
