"""Run a compressed network's image on a board through the host driver.

The same function serves ``nnaccel board run`` (a serial port) and the simulated board's
testbench (the cocotb transport): quantize the inputs as the image's manifest says, run
the layers, dequantize. A systolic image runs layer by layer (the host carries the
activations from one GEMM to the next); an EIE image is loaded once and each input runs
all its layers back to back on chip, only the last layer's outputs coming back.
"""

import numpy as np

from .engines import run_job
from .protocol import LinkError

__all__ = ["run_image_on_board"]


def run_image_on_board(image, x, client, progress=None) -> dict:
    """``{"outputs", "raw", "cycles", "layer_cycles"}`` of ``x`` (float[N, in]) on a board."""
    from quantize.run import check_inputs, quantize_input
    a = quantize_input(image, check_inputs(image, x))
    if image.engine == "eie":
        raw, layer_cycles = _run_eie(image, a, client, progress)
    else:
        raw, layer_cycles = _run_systolic(image, a, client, progress)
    if not layer_cycles:
        raise LinkError("the image has no layers")
    from quantize.run import _dequantize_output
    return {"outputs": _dequantize_output(image, raw), "raw": raw, "cycles": sum(layer_cycles),
            "layer_cycles": layer_cycles}


def _run_systolic(image, a, client, progress):
    from quantize.run import _chunks
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
    from quantize.run import eie_layers
    from sim.eie import act_beats, build_image, cmd_payload, load_beats
    config = image.config
    built = build_image(config, [{"csc": s["csc"], "codebook": s["codebook"],
                                  "bias": s["bias"], "relu": s["relu"]}
                                 for s in eie_layers(image)])
    commands = built.commands
    arrays = {"cmds": [hex(cmd_payload(config, cmd)) for cmd in commands],
              "emits": [int(cmd["emit"]) for cmd in commands],
              "rows": [-(-cmd["out_features"] // config.pes) for cmd in commands],
              "out_features": [cmd["out_features"] for cmd in commands]}
    outputs, layer_cycles = [], [0] * len(commands)
    for number, x in enumerate(a):
        beats = load_beats(built, x) if number == 0 else act_beats(built, x)
        result = run_job("eie", config, client, {**arrays, "beats": [hex(b) for b in beats]})
        outputs.append(result["y"])
        layer_cycles = [t + c for t, c in zip(layer_cycles, result["layer_cycles"],
                                              strict=True)]
        if progress:
            progress(f"input {number + 1}/{len(a)}: {result['cycles']} cycles")
    return np.array(outputs, dtype=np.int64), layer_cycles
