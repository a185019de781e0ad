"""Suite ``tflite``: the committed fully-integer ``.tflite`` fixtures against LiteRT.

Each fixture (``tests/fixtures/tflite``: a 64-32-10 MLP and a small CNN with depthwise,
residual add, pools, concatenation, logistic/tanh and softmax) is imported by
:mod:`quantize.tflite_import` for each LiteRT kernel path it claims (``reference``: the
``BUILTIN_REF`` op resolver; ``optimized``: the builtin kernels without the XNNPACK
delegate) and run on the golden model over 10,000 int8 input vectors (all -128, all 127,
the zero point, the 1,797 digits at the input's quantization, vectors of {-128, zp, 127},
uniform random codes); a batch also runs on the systolic 8×8 RTL (cycles measured).
LiteRT's default path (XNNPACK, which requantizes in float) is compared too, as a figure
the engine does not claim.
"""

import json
import time
from pathlib import Path

import numpy as np

from quantize.graph_run import run_graph
from quantize.tflite_import import load_tflite, raw_inputs, raw_outputs

__all__ = ["FIXTURES", "MODELS", "PATHS", "vectors", "litert", "main"]

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tflite"
MODELS = ("mlp", "cnn")
#: Our path name -> LiteRT's op resolver.
PATHS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
VECTORS = 10_000
RTL_BATCH = 16


def vectors(model: str, qgraph, n: int = VECTORS, seed: int = 0) -> np.ndarray:
    """``n`` int8 inputs in the model's (NHWC) layout, corners first."""
    from sklearn.datasets import load_digits
    rng = np.random.default_rng(seed)
    p = qgraph.input_params
    shape = (8, 8, 1) if model == "cnn" else (64,)
    size = int(np.prod(shape))
    digits = load_digits().data / 16.0
    q_digits = np.clip(np.floor(digits / p.scale + 0.5) + p.zero_point, -128, 127)
    corners = rng.choice([-128, p.zero_point, 127], (1000, size))
    fixed = np.array([np.full(size, v) for v in (-128, 127, p.zero_point)])
    rest = rng.integers(-128, 128, (n - len(fixed) - len(q_digits) - len(corners), size))
    return np.concatenate([fixed, q_digits, corners, rest]).astype(np.int8).reshape(-1, *shape)


def litert(model: str, x: np.ndarray, resolver: str) -> np.ndarray:
    """LiteRT's int8 outputs of batch ``x`` with op resolver ``resolver`` (a name of
    ``OpResolverType``; ``AUTO`` is the interpreter's default, XNNPACK)."""
    from ai_edge_litert import interpreter as it
    interp = it.Interpreter(model_path=str(FIXTURES / f"{model}.tflite"),
                            experimental_op_resolver_type=getattr(it.OpResolverType, resolver))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"])


def _compare(got: np.ndarray, want: np.ndarray) -> dict:
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    return {"bytes": int(want.size), "bytes_differ": int((diff != 0).sum()),
            "max_steps": int(diff.max()) if diff.size else 0}


def main(out_dir) -> dict:
    out_dir = Path(out_dir)
    figures = {"vectors": VECTORS, "rtl_batch": RTL_BATCH, "rtl_array": "8x8", "models": []}
    for model in MODELS:
        for path, resolver in PATHS.items():
            start = time.monotonic()
            qgraph = load_tflite(FIXTURES / f"{model}.tflite", path)
            x = vectors(model, qgraph)
            golden = raw_outputs(run_graph(qgraph, raw_inputs(qgraph, x), "golden").output)
            row = {"model": model, "path": path, "resolver": resolver, "vectors": len(x),
                   "golden": _compare(golden, litert(model, x, resolver))}
            if path == "reference":
                row["xnnpack"] = _compare(golden, litert(model, x, "AUTO"))
            rtl = run_graph(qgraph, raw_inputs(qgraph, x[:RTL_BATCH]), "rtl", rows=8, cols=8)
            row["rtl"] = {**_compare(raw_outputs(rtl.output),
                                     litert(model, x[:RTL_BATCH], resolver)),
                          "vectors": RTL_BATCH, "cycles": int(rtl.cycles),
                          "cycles_per_inference": rtl.cycles / RTL_BATCH}
            row["seconds"] = round(time.monotonic() - start, 1)
            figures["models"].append(row)
            print(f"  {model} {path}: golden {row['golden']['bytes_differ']} of "
                  f"{row['golden']['bytes']} bytes differ; RTL {row['rtl']['bytes_differ']} "
                  f"of {row['rtl']['bytes']}, {row['rtl']['cycles']} cycles for {RTL_BATCH}"
                  + (f"; XNNPACK {row['xnnpack']['bytes_differ']} differ"
                     if "xnnpack" in row else ""), flush=True)
            (out_dir / "tflite.json").write_text(json.dumps(figures, indent=2))
    rows = figures["models"]
    figures["summary"] = {"claimed_bytes_differ": sum(r["golden"]["bytes_differ"]
                                                      + r["rtl"]["bytes_differ"] for r in rows),
                          "vectors_compared": sum(r["vectors"] for r in rows)}
    (out_dir / "tflite.json").write_text(json.dumps(figures, indent=2))
    return figures["summary"]
