"""Sweeps on a real two-worker LocalCluster: the same results as a serial run, no point
lost to a killed worker, and a resumed sweep that runs only what is unfinished."""

import json
import os
import signal

import pytest

from sim.sweep.measures import run_point
from sim.sweep.runner import run_sweep
from sim.sweep.spec import Point, parse_spec
from sim.sweep.store import ResultStore

SMALL = {
    "measures": ["model"],
    "systolic": {"rows": [4, 8], "cols": "rows", "rounding": ["double", "single"],
                 "workloads": ["gemm:37x100x45", "gemm:64x64x64"]},
    "eie": {"pes": [2, 8], "queue_depth": [2, 8],
            "workloads": ["layer:300x200:0.2:0.5", "layer:128x512:0.3:0.9"]},
}
#: Each new PE count encodes a larger layer anew: tasks long enough to kill a worker under.
SLOW = {"measures": ["model"],
        "eie": {"pes": [3, 5, 6, 7, 9, 10, 11, 12], "workloads": ["layer:3000x2000:0.15:0.5"]}}


def _records(path):
    return [r for r in ResultStore(path).read() if "point" in r]


def test_cluster_equals_serial(cluster, tmp_path):
    points = parse_spec(SMALL).points
    assert len(points) == 16
    results = tmp_path / "r.jsonl"
    run = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None)
    assert (run.total, run.ran, run.failed) == (16, 16, 0)
    records = _records(results)
    assert len(records) == 16
    pids = {r["pid"] for r in records}
    assert os.getpid() not in pids                  # measured on the workers
    by = {json.dumps(r["point"], sort_keys=True): r for r in records}
    for p in points:
        record = by[json.dumps(p.to_dict(), sort_keys=True)]
        assert record["status"] == "ok", record["error"]
        assert record["result"] == json.loads(json.dumps(run_point(p.to_dict())))


def test_killed_worker_loses_no_point(cluster, client, tmp_path):
    points = parse_spec(SLOW).points
    workers = client.run(os.getpid)
    killed = []

    def kill_one(record):
        if not killed:
            pid = next(iter(workers.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    results = tmp_path / "r.jsonl"
    run = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None,
                    on_record=kill_one)
    assert killed
    records = _records(results)
    assert run.ran == len(records) == len(points)
    assert len({json.dumps(r["point"], sort_keys=True) for r in records}) == len(points)
    for r in records:
        # Retried on the surviving or restarted worker, or failed with its reason.
        assert r["status"] == "ok" or r["error"], r
    client.wait_for_workers(2, timeout=60)


def test_interrupted_sweep_resumes(cluster, tmp_path):
    points = parse_spec(SMALL).points
    results = tmp_path / "r.jsonl"
    seen = []

    def stop_after_five(record):
        seen.append(record)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None,
                  on_record=stop_after_five)
    first = _records(results)
    assert len(first) == 5
    # A crash in the middle of a write leaves a cut line: it is ignored.
    with open(results, "a") as f:
        f.write('{"key": "cut sho')
    run = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None)
    assert (run.total, run.skipped, run.ran, run.failed) == (16, 5, 11, 0)
    records = _records(results)
    assert len(records) == 16
    assert len({r["key"] for r in records}) == 16
    again = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None)
    assert (again.skipped, again.ran) == (16, 0)


def test_failed_point_records_its_error_and_the_sweep_goes_on(cluster, tmp_path):
    raw = {"measures": ["model"],
           "systolic": {"rows": [4], "cols": "rows", "acc_width": [20, 32],
                        "workloads": ["gemm:8x8x8"]}}
    # 16 bits hold sums of K up to 1 here: sizing for K = 64 fails on the worker.
    narrow = Point("model", "systolic", (("acc_width", 16), ("cols", 4), ("rows", 4)),
                   ("gemm:8x64x8",), "gemm:8x64x8")
    points = [*parse_spec(raw).points, narrow]
    results = tmp_path / "r.jsonl"
    run = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None)
    assert (run.ran, run.failed) == (3, 1)
    failed = [r for r in _records(results) if r["status"] == "failed"]
    assert len(failed) == 1 and "acc_width=16" in failed[0]["error"]
    assert failed[0]["point"]["axes"]["acc_width"] == 16
    assert "\n" not in failed[0]["error"]
    # A rerun tries the failed point again, and only it.
    rerun = run_sweep(points, results, scheduler=cluster.scheduler_address, progress=None)
    assert (rerun.skipped, rerun.ran, rerun.failed) == (2, 1, 1)
