"""Run a compressed network's image on a board through the host driver.

The same function serves ``nnaccel board run`` (a serial port) and the simulated board's
testbench (the cocotb transport): quantize the inputs as the image's manifest says, run
the layers, dequantize. A systolic image runs layer by layer (the host carries the
activations from one GEMM to the next); an EIE image is loaded once and each input runs
all its layers back to back on chip, only the last layer's outputs coming back.
"""

import numpy as np

from boards.engines import run_job
from boards.protocol import LinkError
from hw.eie.driver import act_beats, build_image, layer_program, load_beats

from .run import _chunks, _dequantize_output, check_inputs, eie_layers, quantize_input

__all__ = ["run_image_on_board"]


def run_image_on_board(image, x, client, progress=None) -> dict:
    """``{"outputs", "raw", "cycles", "layer_cycles"}`` of ``x`` (float[N, in]) on a board."""
    a = quantize_input(image, check_inputs(image, x))
    if image.engine == "eie":
        raw, layer_cycles = _run_eie(image, a, client, progress)
    else:
        raw, layer_cycles = _run_systolic(image, a, client, progress)
    if not layer_cycles:
        raise LinkError("the image has no layers")
    return {"outputs": _dequantize_output(image, raw), "raw": raw, "cycles": sum(layer_cycles),
            "layer_cycles": layer_cycles}


def _run_systolic(image, a, client, progress):
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
    return a, layer_cycles


def _run_eie(image, a, client, progress):
    """The image's memories go to the board with the first input; later inputs load
    their activations only (the engine keeps its memories between runs)."""
    config = image.config
    built = build_image(config, [{"csc": s["csc"], "codebook": s["codebook"],
                                  "bias": s["bias"], "relu": s["relu"]}
                                 for s in eie_layers(image)])
    program = layer_program(built)
    outputs, layer_cycles = [], [0] * len(program)
    for number, x in enumerate(a):
        beats = load_beats(built, x) if number == 0 else act_beats(built, x)
        result = run_job("eie", config, client, {"program": program, "beats": beats})
        outputs.append(result["y"])
        layer_cycles = [t + c for t, c in zip(layer_cycles, result["layer_cycles"],
                                              strict=True)]
        if progress:
            progress(f"input {number + 1}/{len(a)}: {result['cycles']} cycles")
    return np.array(outputs, dtype=np.int64), layer_cycles
