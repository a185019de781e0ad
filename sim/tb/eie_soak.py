"""cocotb test module of the EIE soak: many input vectors through each loaded network.

Driven by :mod:`sim.soak_eie` through ``job_params()``: a list of networks, each a ``.npz``
holding the layer commands, the image's ``i_load`` beats (as a hex file, with the first
vector's inputs) and every vector's input beats. A network's image is loaded once; each
further vector loads only its inputs (``i_load`` beats to the activation memory, which the
engine takes while idle) and runs the layers again. The stream drivers are
:class:`sim.tb.eie.TB`'s, with the network's stall probability on ``i_load`` (the beat
source), ``i_cmd`` and ``o_result``. Outputs go back raw; the caller compares.
"""

import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.utils import get_sim_time

from hw.eie import EieConfig
from sim.eie import parse_result
from sim.rtl import job_params, write_result
from sim.tb.eie import CLOCK_NS, TB

__all__ = ["soak_networks"]


@cocotb.test()
async def soak_networks(dut):
    params = job_params()
    config = EieConfig(**params["config"])
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    tb = TB(dut, random.Random(0), 0.0)
    await tb.reset()
    here = Path.cwd()
    networks = []
    for net in params["networks"]:
        with np.load(net["file"]) as f:
            cmds = [int(x, 16) for x in f["cmds"]]
            emits, rows = f["emits"].tolist(), f["rows"].tolist()
            out_features = f["out_features"].tolist()
            act_lines = f["act_lines"].tolist()     # (vectors, beats) hex strings
        tb.set_stalls(net["stalls"], random.Random(net["seed"]))
        counters_before = hex(int(dut.o_counters.value))
        outputs = []
        for v, lines in enumerate(act_lines):
            if v == 0:
                await tb.load(net["load_file"], net["beats"])
            else:
                # A new file each time: truncating one for rewriting makes ext4 flush it
                # on close (auto_da_alloc), milliseconds a vector.
                vector_file = here / f"vector{len(networks)}_{v}.hex"
                vector_file.write_text("\n".join(lines) + "\n")
                await tb.load(str(vector_file), len(lines))
                vector_file.unlink()
            sender = cocotb.start_soon(tb.send("i_cmd", cmds))
            emitted = []
            for layer, emit in enumerate(emits):
                if emit:
                    raw = await tb.receive(rows[layer])
                    values = [x for beat in raw for x in parse_result(config, beat)]
                    emitted.append(values[:out_features[layer]])
            await sender
            await tb.wait_idle()
            outputs.append(emitted)
        networks.append({"outputs": outputs, "counters_before": counters_before,
                         "counters_after": hex(int(dut.o_counters.value))})
    write_result({"networks": networks, "sim_cycles": int(get_sim_time("ns") // CLOCK_NS)})
