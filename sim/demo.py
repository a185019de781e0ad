"""``make demo``: the digits MLP end to end.

A 64-300-100-10 MLP (LeNet-300-100's shape for 8×8 digits) is trained in NumPy on
scikit-learn's handwritten digits (fixed seed and split), compressed with Deep Compression
(prune → retrain → share → fine-tune centroids) into images for both engines, and run on
the whole test set through the golden models and through each engine's RTL under
Verilator. Prints float, compressed and RTL accuracy, whether RTL equals golden on every
test image, cycles per inference, and the compression table; writes the report into
``build/demo/``. An engine whose RTL cannot run here is reported as skipped, with why.
"""

import os
import sys
import time

import numpy as np

from quantize.commands import compress_to_image
from quantize.compress import CompressSpec
from quantize.digits import BITS, SIZES, SPARSITY, load_digits_split, train_digits_mlp
from quantize.image import load_image
from quantize.report import format_table, write_plots
from quantize.run import run_image
from sim import engines
from sim.rtl import BUILD_ROOT

__all__ = ["main"]


def _say(msg: str):
    print(msg, flush=True)


def _rtl(image, xte, golden, yte) -> dict | None:
    start = time.monotonic()
    try:
        result = run_image(image, xte, "rtl", progress=lambda m: _say(f"    {m}"))
    except ImportError as e:
        _say(f"  RTL: SKIPPED — the engine's RTL is not available here ({e})")
        return None
    except Exception as e:  # report and carry on with the other engine; exit status says it
        _say(f"  RTL: FAILED — {type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
        return {"error": f"{type(e).__name__}: {e}"}
    equal = bool(np.array_equal(result.raw, golden.raw))
    acc = float(np.mean(result.outputs.argmax(axis=1) == yte))
    per = result.cycles / len(xte)
    _say(f"  RTL accuracy {acc * 100:.2f} %; RTL == golden on all {len(xte)} test images: "
         f"{'yes' if equal else 'NO'}; {per:.0f} cycles per inference "
         f"({time.monotonic() - start:.0f} s wall)")
    if "ideal_cycles" in result.info:
        ideal = float(np.mean(result.info["ideal_cycles"]))
        _say(f"  EIE ideal (busiest PE's entries over non-zero inputs) {ideal:.0f} cycles per "
             f"inference: {ideal / per * 100:.0f} % of the measured cycles")
    if "layer_cycles" in result.info:
        _say(f"  cycles per layer over the test set: {result.info['layer_cycles']}")
    return {"accuracy": acc, "equal": equal, "cycles_per_inference": per}


def main(argv=None) -> int:

    os.environ.setdefault("NNACCEL_QUIET", "1")
    out = BUILD_ROOT / "demo"
    out.mkdir(parents=True, exist_ok=True)
    _say(f"== digits MLP {'-'.join(map(str, SIZES))}, trained in NumPy ==")
    xtr, ytr, xte, yte = load_digits_split()
    model = train_digits_mlp(xtr, ytr)
    float_acc = model.accuracy(xte, yte)
    _say(f"float accuracy on {len(xte)} test images: {float_acc * 100:.2f} %")
    np.savez(out / "digits_mlp.npz", **{f"{layer.name}.{k}": getattr(layer, k)
                                        for layer in model.layers for k in ("weight", "bias")})
    for name, arr in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte)):
        np.save(out / f"{name}.npy", arr)
    summary = {}
    for engine, opts in (("eie", {"pes": 8}), ("systolic", {"rows": 8, "cols": 8})):
        _say(f"\n== {engine}: prune ({SPARSITY}) -> retrain -> share ({BITS} bits) -> "
             f"fine-tune ==")
        spec = CompressSpec(bits=BITS, sparsity=SPARSITY,
                            reserve_zero=engines.engine(engine).zero_codebook_entry)
        c, _ = compress_to_image(model, engine, spec, out / engine, x_train=xtr,
                                 y_train=ytr, source="digits_mlp.npz",
                                 progress=lambda m: _say(f"  {m}"), **opts)
        image = load_image(out / engine)
        golden = run_image(image, xte, "golden")
        acc = float(np.mean(golden.outputs.argmax(axis=1) == yte))
        _say(f"  compressed float-model accuracy {c.final.accuracy(xte, yte) * 100:.2f} %; "
             f"golden {engine} (bit-exact engine arithmetic) accuracy {acc * 100:.2f} %")
        _say(format_table(image))
        for path in write_plots(image, out / engine):
            _say(f"  wrote {path}")
        summary[engine] = {"golden": acc, "rtl": _rtl(image, xte, golden, yte)}
    _say("\n== summary ==")
    _say(f"float {float_acc * 100:.2f} %")
    for engine, s in summary.items():
        rtl = s["rtl"]
        if rtl is None:
            rtl_txt = "RTL skipped (see above)"
        elif "error" in rtl:
            rtl_txt = "RTL FAILED (see above)"
        else:
            rtl_txt = (f"RTL {rtl['accuracy'] * 100:.2f} % (RTL == golden: "
                       f"{'yes' if rtl['equal'] else 'NO'}), {rtl['cycles_per_inference']:.0f} "
                       f"cycles/inference")
        _say(f"{engine:>8}: golden {s['golden'] * 100:.2f} %, {rtl_txt}")
    _say(f"report and images in {out}")
    failed = any(s["rtl"] is not None and not s["rtl"].get("equal") for s in summary.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
