"""Run a compressed network's image on a board through the host driver.

The same function serves ``nnaccel board run`` (a serial port) and the simulated board's
testbench (the cocotb transport): quantize the inputs as the image's manifest says, run
the layers, dequantize. A systolic image runs layer by layer (the host carries the
activations from one GEMM to the next); an EIE image is loaded once and each input runs
all its layers back to back on chip, only the last layer's outputs coming back. A graph
image runs its engine layers on the board and its host ops (pooling, residual adds,
activation tables, im2col) on the host, as :func:`quantize.run.run_graph_image` does on
the other backends.
"""

from boards.protocol import LinkError

from .backends import Board
from .image import is_graph
from .run import run_graph_image, run_image

__all__ = ["run_image_on_board"]


def run_image_on_board(image, x, client, progress=None) -> dict:
    """``{"outputs", "raw", "cycles", "layer_cycles"}`` of ``x`` (float[N, in]) on a board
    (:func:`quantize.run.run_image` on :class:`quantize.backends.Board`). ``layer_cycles``:
    per engine layer; ``raw``: the int8 outputs."""
    if is_graph(image):
        run = run_graph_image(image, x, Board(client), progress=progress)
        return {"outputs": run.float_output, "raw": run.output, "cycles": run.cycles,
                "layer_cycles": [r["cycles"] for r in run.layers if r["where"] == "engine"]}
    if not image.manifest["layers"]:
        raise LinkError("the image has no layers")
    result = run_image(image, x, Board(client), progress=progress)
    return {"outputs": result.outputs, "raw": result.raw, "cycles": result.cycles,
            "layer_cycles": result.info["layer_cycles"]}
