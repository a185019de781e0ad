"""The sweep's derived figures, the EIE queue model, source hashes and the report files."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from hw.eie import EieConfig
from hw.eie.csc import encode
from nnaccel.cli import main
from sim.eie import build_image, random_layer, work_cycles
from sim.rtl import REPO
from sim.sweep.eie_model import (
    LAYER_OVERHEAD,
    column_work,
    layer_cycles,
    queue_cycles,
    useful_macs,
)
from sim.sweep.measures import SOURCES, source_hash
from sim.sweep.report import (
    fit_reason,
    largest_fitting,
    makespan,
    model_markdown,
    perf_rows,
    plot_names,
    summary_markdown,
    synth_rows,
    wall_seconds,
    write_report,
)
from sim.sweep.store import ResultStore

AXES = {"rows": 8, "cols": 8}
CONFIG = {"rows": 8, "cols": 8, "act_depth": 64}


def _perf_record(workload, cycles, macs):
    return {"key": workload, "status": "ok", "error": None,
            "point": {"measure": "model", "engine": "systolic", "axes": AXES, "fit": ["w"],
                      "workload": workload, "board": "", "clock_mhz": 0.0, "seed": 0},
            "result": {"config": CONFIG, "cycles": cycles, "macs": macs,
                       "macs_per_cycle": macs / cycles, "utilization": macs / 64 / cycles}}


def _synth_record(seed, fmax, fits=True):
    result = {"config": CONFIG, "board": "ulx3s", "seed": seed, "fits": fits}
    if fits:
        result |= {"fmax_mhz": fmax, "clock_met": False,
                   "resources": {"lut": 8000, "ff": 9000, "dsp": 64, "bram": 12}}
    else:
        result["reason"] = "LUT4 120 % of the device"
    return {"key": f"s{seed}", "status": "ok", "error": None, "result": result,
            "point": {"measure": "synth", "engine": "systolic", "axes": AXES, "fit": ["w"],
                      "workload": "", "board": "ulx3s", "clock_mhz": 0.0, "seed": seed}}


def _sized(record, rows, fmax=None, fits=True, seconds=60.0, finished=None):
    """``record`` moved to a rows x rows array (axes and config), synthesized at ``fmax``."""
    axes = {"rows": rows, "cols": rows}
    record = {**record, "key": f"{record['key']}-{rows}", "seconds": seconds,
              "finished": finished,
              "point": {**record["point"], "axes": axes},
              "result": {**record["result"], "config": {**CONFIG, **axes}}}
    if fmax is not None and fits:
        record["result"]["fmax_mhz"] = fmax
    return record


def test_largest_fitting_config_and_its_throughput():
    records = [_sized(_perf_record("gemm:a", 1000, 50_000), 4),
               _sized(_perf_record("gemm:a", 500, 50_000), 6),
               _sized(_synth_record(1, 0), 4, fmax=140.0),
               _sized(_synth_record(1, 0), 6, fmax=120.0),
               _sized(_synth_record(2, 0), 6, fmax=100.0),
               _sized(_synth_record(1, 0, fits=False), 10),
               _sized(_synth_record(1, 0, fits=False), 8)]
    (found,) = largest_fitting(records, {"boards": ["ulx3s"]})
    assert found["largest"]["config"] == "6x6"
    assert found["largest"]["fmax_best_mhz"] == 120.0
    assert found["next_too_large"]["config"] == "8x8"             # the smallest that fails
    (run,) = found["perf"]
    assert run["gops"] == pytest.approx(2 * 50_000 / (500 / 120e6) / 1e9)
    text = "\n".join(summary_markdown("s.toml", records, {"boards": ["ulx3s"]}, expected=9))
    assert "5 of 9 synthesis tasks finished" in text
    assert "the largest that fits so far is **6x6** at 120.0 MHz" in text
    assert "8x8 does not fit" in text
    failed = {**records[2], "key": "lost", "status": "failed", "result": None, "error": "x"}
    tasks = sum(r["point"]["measure"] == "synth" for r in records) + 1   # every one has run
    text = "\n".join(summary_markdown("s.toml", records + [failed], {"boards": ["ulx3s"]},
                                      expected=tasks))
    assert "the largest that fits is **6x6**" in text


def test_fit_reason_keeps_the_resources():
    error = ("systolic (rows=12, cols=12, ...) does not fit the LFE5U-85F: DSP (MULT18X18D) "
             "193/156 — choose a smaller config")
    assert fit_reason(error) == "DSP (MULT18X18D) 193/156"
    assert fit_reason("nextpnr crashed") == "nextpnr crashed"
    assert fit_reason("the ulx3s flow failed (see log); log: build/x/top.log") == \
        "the ulx3s flow failed (see log)"
    timeout = ("eie (pes=16, ...) was not placed and routed on the LFE5U-85F within 60 min: "
               "router2 iteration 26, 7,053 overused wires — give a longer --pnr-timeout")
    assert fit_reason(timeout) == \
        "not routed within 60 min: router2 iteration 26, 7,053 overused wires"
    records = [_sized(_synth_record(1, 0, fits=False), 12)]
    records[0]["error"] = error
    text = "\n".join(summary_markdown("s.toml", records, {}))
    assert "| no: DSP (MULT18X18D) 193/156 |" in text


def test_a_config_placed_by_some_seeds_says_which():
    records = [_sized(_synth_record(seed, 0, fits=seed == 2), 4, fmax=35.0)
               for seed in (1, 2, 3)]
    (row,) = synth_rows(records)
    assert row["fits"] is True and row["seeds_fit"] == "2"
    text = "\n".join(summary_markdown("s.toml", records, {}))
    assert "| yes (seed 2; not seed 1 3: LUT4 120 % of the device) |" in text
    failed = {**records[2], "status": "failed", "result": None,
              "error": "OSError: the ulx3s flow failed (see log); log: build/x/top.log"}
    text = "\n".join(summary_markdown("s.toml", records[:2] + [failed], {}))
    assert ("| yes (seed 2; not seed 1: LUT4 120 % of the device; "
            "not seed 3: OSError: the ulx3s flow failed (see log)) |") in text
    records = [_sized(_synth_record(seed, 0), 4, fmax=35.0) for seed in (1, 2)]
    assert "| yes |" in "\n".join(summary_markdown("s.toml", records, {}))


def _eie_record(pes, queue, workload, cycles, macs, work):
    return {"key": f"{pes}-{queue}-{workload}", "status": "ok", "error": None,
            "point": {"measure": "model", "engine": "eie",
                      "axes": {"pes": pes, "queue_depth": queue}, "fit": ["w"],
                      "workload": workload, "board": "", "clock_mhz": 0.0, "seed": 0},
            "result": {"config": {"pes": pes, "queue_depth": queue}, "cycles": cycles,
                       "macs": macs, "utilization": macs / pes / cycles,
                       "work_cycles": work}}


def test_model_markdown_tables():
    records = [_sized(_perf_record("gemm:a", 1000, 32_000), 10),
               _sized(_perf_record("gemm:a", 1000, 8_000), 4),
               _sized(_perf_record("gemm:b", 500, 4_000), 4),
               _eie_record(2, 2, "x", 100, 150, 80), _eie_record(2, 2, "y", 100, 50, 30),
               _eie_record(2, 8, "x", 90, 150, 80), _eie_record(2, 8, "y", 50, 50, 30)]
    text = "\n".join(model_markdown(records))
    # 4x4 before 10x10 (by size, not by text); a cell missing stays empty
    assert "| 4x4 | 12.5 % | 12.5 % |\n| 10x10 | 50.0 % |  |" in text
    # q=2: (75 % + 25 %) / 2; q=8: (150/180 + 50/100) / 2; cycles and work at the deepest
    assert "| 2 | 50.0 % | 66.7 % | 140 | 110 |" in text
    assert "cycles, all workloads, q=8" in text


def test_plot_names_follow_what_the_report_draws(tmp_path):
    records = [_perf_record("gemm:a", 1000, 50_000), _synth_record(1, 120.0)]
    assert plot_names(records, "s") == ["s-size.png", "s-pareto-ulx3s.png", "s-fmax.png"]
    assert plot_names([_synth_record(1, 0, fits=False)], "s") == []
    store = ResultStore(tmp_path / "s.jsonl")
    for r in records:
        store.append(r)
    pytest.importorskip("matplotlib")
    drawn = [p for p in write_report(tmp_path / "s.jsonl")["files"] if p.endswith(".png")]
    assert sorted(Path(p).name for p in drawn) == sorted(plot_names(records, "s"))


def test_makespan_and_wall_time():
    assert makespan([3, 3, 2, 2, 2], 1) == 12
    assert makespan([3, 3, 2, 2, 2], 2) == 7                      # 3+2+2 | 3+2
    assert makespan([5, 1, 1], 32) == 5                            # bounded by the longest
    records = [{"finished": "2026-01-01T00:01:40", "seconds": 100.0},
               {"finished": "2026-01-01T00:03:00", "seconds": 90.0},
               {"finished": None, "seconds": 5.0}]
    assert wall_seconds(records) == pytest.approx(180.0)
    assert wall_seconds([]) is None


def test_derived_figures_use_the_best_seed():
    records = [_perf_record("gemm:a", 1000, 50_000), _synth_record(1, 120.0),
               _synth_record(2, 100.0)]
    (synth,) = synth_rows(records)
    assert (synth["fmax_best_mhz"], synth["fmax_mean_mhz"], synth["fits"]) == (120, 110, True)
    (row,) = perf_rows(records, {"boards": ["ulx3s"]})
    assert row["fmax_source"] == "synth"
    assert row["latency_us"] == pytest.approx(1000 / 120)          # cycles / MHz = µs
    gops = 2 * 50_000 / (1000 / 120e6) / 1e9
    assert row["gops"] == pytest.approx(gops)
    assert row["gops_per_dsp"] == pytest.approx(gops / 64)
    assert row["gops_per_klut"] == pytest.approx(gops / 8)


def test_unsynthesized_boards_use_their_target_clock_and_no_fit_has_no_throughput():
    records = [_perf_record("gemm:a", 500, 1000), _synth_record(1, 0, fits=False)]
    rows = {r["board"]: r for r in perf_rows(records, {"boards": ["ulx3s", "icebreaker"]})}
    assert rows["ulx3s"]["fits"] is False and "gops" not in rows["ulx3s"]
    ice = rows["icebreaker"]
    assert (ice["fmax_source"], ice["fmax_mhz"]) == ("target", 12.0)
    assert ice["gops"] == pytest.approx(2 * 1000 * 12e6 / 500 / 1e9)


def test_queue_model_by_hand():
    # PE 0 has four 4-cycle columns, PE 1 one 10-cycle column last. With 2-deep queues a
    # broadcast needs two free slots counting the one of the cycle before, so the
    # broadcasts go out at 0, 2, 4, 6, 8 and PE 1 ends at 8 + 3 + 10 = 21. Deep queues
    # send them at 0 .. 4: PE 1 ends at 17, PE 0 at 3 + 4 * 4 = 19.
    work = np.array([[4, 4, 4, 4, 0], [0, 0, 0, 0, 10]])
    assert queue_cycles(work, 2) == 21
    assert queue_cycles(work, 16) == 19
    assert queue_cycles(work, 1) >= 21
    assert layer_cycles(work, 16, 7) == 19 + 4 + LAYER_OVERHEAD     # 7 outputs on 2 PEs


def test_queue_model_against_the_work_bound():
    config = EieConfig(pes=8, spmat_depth=1024, ptr_depth=2048, act_depth=64, bias_depth=64)
    layer, acts = random_layer(config, 400, 300, 0.2, 0.6, seed=3)
    csc = encode(layer["indices"], config)
    cols, work = column_work(csc, config, acts)
    image = build_image(config, [layer])
    assert np.array_equal(work.sum(axis=1), work_cycles(image, [acts]))
    assert list(cols) == list(np.nonzero(acts)[0])
    dense = (layer["indices"][:, cols] != 0).sum()
    assert useful_macs(csc, config, acts) == dense
    cycles = [queue_cycles(work, q) for q in (1, 2, 4, 8, 16, 64)]
    assert cycles == sorted(cycles, reverse=True)                # deeper never slower
    assert cycles[-1] >= work.sum(axis=1).max()


def test_source_hash_follows_only_the_measures_sources(tmp_path):
    names = sorted({n for ns in SOURCES.values() for n in ns})
    for name in names:
        src, dst = REPO / name, tmp_path / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    before = {m: source_hash(m, tmp_path) for m in SOURCES}
    assert before == {m: source_hash(m) for m in SOURCES}
    with open(tmp_path / "sim/tb/systolic.py", "a") as f:
        f.write("\n# changed\n")
    after = {m: source_hash(m, tmp_path) for m in SOURCES}
    assert after["rtl"] != before["rtl"]
    assert after["model"] == before["model"] and after["synth"] == before["synth"]
    with open(tmp_path / "hw/systolic/config.py", "a") as f:
        f.write("\n# changed\n")
    assert all(source_hash(m, tmp_path) != after[m] for m in SOURCES)
    # One engine's package is not a source of the other engine's points.
    systolic = {m: source_hash(m, tmp_path, "systolic") for m in SOURCES}
    eie = {m: source_hash(m, tmp_path, "eie") for m in SOURCES}
    with open(tmp_path / "hw/eie/config.py", "a") as f:
        f.write("\n# changed\n")
    assert systolic == {m: source_hash(m, tmp_path, "systolic") for m in SOURCES}
    assert all(source_hash(m, tmp_path, "eie") != eie[m] for m in SOURCES)


def test_report_command_redraws_from_the_results(tmp_path, capsys):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append({"sweep": {"boards": ["ulx3s"], "clock_mhz": []}})
    for record in (_perf_record("gemm:a", 1000, 50_000), _perf_record("gemm:b", 10, 640),
                   _synth_record(1, 120.0)):
        store.append(record)
    assert main(["sweep", "--report", str(tmp_path / "r.jsonl")]) == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").read_text().splitlines()))
    assert [r["workload"] for r in rows] == ["gemm:a", "gemm:b"]
    assert float(rows[1]["gops"]) == pytest.approx(2 * 640 * 120e6 / 10 / 1e9)
    md = (tmp_path / "r.md").read_text()
    assert "| systolic | 8x8 | gemm:b |" in md
    for name in ("r-size.png", "r-pareto-ulx3s.png", "r-fmax.png", "r-synth.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
