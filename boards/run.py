"""Run a compressed network's image on a board through the host driver.

The same function serves ``nnaccel board run`` (a serial port) and the simulated board's
testbench (the cocotb transport): quantize the inputs as the image's manifest says, run
layer after layer, dequantize.
"""

import numpy as np

from .engines import run_job
from .protocol import LinkError

__all__ = ["run_image_on_board"]


def run_image_on_board(image, x, client, progress=None) -> dict:
    """``{"outputs", "raw", "cycles", "layer_cycles"}`` of ``x`` (float[N, in]) on a board."""
    from quantize.run import _chunks, _dequantize_output, check_inputs, quantize_input
    if image.engine != "systolic":
        raise ValueError(f"board run supports systolic images; this one is for "
                         f"{image.engine}")
    a = quantize_input(image, check_inputs(image, x))
    layer_cycles = []
    for spec, arrays in zip(image.manifest["layers"], image.layers, strict=True):
        job = {"w": arrays["weight"], "bias": arrays["bias"],
               "multiplier": arrays["multiplier"], "shift": arrays["shift"],
               "input_zero_point": spec["input"]["zero_point"],
               "output_zero_point": spec["output"]["zero_point"],
               "act_min": spec["act_min"], "act_max": spec["act_max"]}
        outs, cycles = [], 0
        for part in _chunks(image, len(a)):
            result = run_job("systolic", image.config, client, {"a": a[part], **job})
            outs.append(np.asarray(result["y"]))
            cycles += int(result["cycles"])
        if progress:
            progress(f"{spec['name']}: {len(a)}x{spec['in']}x{spec['out']} in {cycles} cycles")
        a = np.concatenate(outs).astype(np.int64)
        layer_cycles.append(cycles)
    if not layer_cycles:
        raise LinkError("the image has no layers")
    return {"outputs": _dequantize_output(image, a), "raw": a, "cycles": sum(layer_cycles),
            "layer_cycles": layer_cycles}
