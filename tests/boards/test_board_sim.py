"""End to end without hardware: host driver → simulated UART → board top level (Verilator)."""

import tempfile

import numpy as np
import pytest

from boards.core import BoardCore, source_hash
from boards.engines import config_to_dict, engine_config, make_adapter
from boards.link import MAGIC
from boards.mac_engine import mac_golden
from sim import rtl

DIVISOR = 8
TIMEOUT = 40 * DIVISOR


def _board(engine, config):
    # sim.rtl hashes hw/ into the key; the board's own sources go in here.
    return rtl.build(f"board_{engine}", (engine, config, DIVISOR, TIMEOUT, source_hash()),
                     lambda: BoardCore(make_adapter(engine, config), divisor=DIVISOR,
                                       timeout_cycles=TIMEOUT, max_payload=256))


def _run(engine, config, arrays, testcase="test_job"):
    with tempfile.TemporaryDirectory(dir=rtl.BUILD_ROOT) as tmp:
        path = f"{tmp}/job.npz"
        np.savez(path, **arrays)
        params = {"engine": engine, "config": config_to_dict(config), "divisor": DIVISOR,
                  "timeout_cycles": TIMEOUT, "job": path}
        return rtl.run(_board(engine, config), "sim.tb.board", params, testcase=testcase)


@pytest.mark.rtl
def test_mac_board_end_to_end():
    config = engine_config("mac", {"rows": 5, "cols": 7})
    rng = np.random.default_rng(11)
    arrays = {"weights": rng.integers(-128, 128, (5, 7)), "x": rng.integers(-128, 128, 7)}
    result = _run("mac", config, arrays)
    assert result["y"] == mac_golden(arrays["weights"], arrays["x"]).tolist()
    assert result["cycles"] == 5 * 7 + 1
    assert result["counters"][0] == 1 and result["counters"][2] == 35


@pytest.mark.rtl
def test_errors_over_the_uart():
    config = engine_config("mac", {"rows": 5, "cols": 7})   # the same build as above
    result = _run("mac", config, {"x": np.zeros(7)}, testcase="test_errors")
    assert result == {"bad_crc": "BAD_CRC", "truncated": "TRUNCATED",
                      "bad_command": "BAD_COMMAND", "info_after": MAGIC}
