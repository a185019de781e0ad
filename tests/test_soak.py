"""The soak harness (``make soak``) on a few hundred vectors: it compares what it claims."""

import json

import pytest

from sim import soak
from sim.soak_systolic import CONFIGS, make_batch

VECTORS = 300


def test_plan_splits_every_vector_over_the_configs():
    for engine, (configs, shares, per_batch, _) in soak.ENGINES.items():
        batches = soak.plan(engine, 2 * per_batch + 7, seed=3)
        assert sum(b["vectors"] for b in batches) == 2 * per_batch + 7
        assert {b["config"] for b in batches} == set(configs) == set(shares)
        assert all(1 <= b["vectors"] <= per_batch for b in batches)
        assert len({b["seed"] for b in batches}) == len(batches)
        assert soak.plan(engine, 2 * per_batch + 7, seed=3) == batches    # replayable


def test_bad_arguments_say_what_to_change():
    with pytest.raises(ValueError, match="--vectors 0"):
        soak.soak(["eie"], 0)
    with pytest.raises(ValueError, match="--batch 99-99"):
        soak.soak(["systolic"], 10, 1, only=99)
    with pytest.raises(ValueError, match="--batch 2-1"):
        soak.soak(["systolic"], 10, 1, only=(2, 1))
    with pytest.raises(ValueError, match="--max-minutes 0"):
        soak.soak(["systolic"], 10, 1, max_minutes=0)
    with pytest.raises(ValueError, match="--jobs 0"):
        soak.soak(["systolic"], 10, 1, jobs=0)
    assert soak.main(["--vectors", "0", "--json", "/dev/null"]) == 2


def test_systolic_batch_has_exactly_its_rows():
    jobs, stall, _ = make_batch(CONFIGS["8x8"], 5000, seed=4)
    assert sum(job.shape[0] for job in jobs) == 5000
    assert 0.1 <= stall <= 0.5


@pytest.mark.rtl
def test_soak_both_engines(tmp_path):
    path = tmp_path / "soak.json"
    assert soak.main(["--vectors", str(VECTORS), "--seed", "7", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["ok"] and report["complete"] and not report["stopped_by_time_limit"]
    for engine, (configs, _, _, _) in soak.ENGINES.items():
        r = report["engines"][engine]
        assert r["vectors"] == VECTORS
        assert sum(c["vectors"] for c in r["configs"].values()) == VECTORS
        assert set(r["configs"]) == set(configs)
        assert r["mismatches"] == 0 and not r["failures"] and r["first_mismatch"] is None
        assert r["words"] >= VECTORS            # at least one output word a vector
        assert r["cycles"] > VECTORS            # at least a cycle a vector
        assert r["cycles_per_second"] > 0


@pytest.mark.rtl
def test_a_wrong_word_is_caught_and_located(tmp_path, monkeypatch):
    """The comparison can fail: a changed golden word is a mismatch, found where it is (the
    systolic job's last word; the EIE batch's first vector, last layer, row 0)."""
    import numpy as np

    from sim import soak_eie
    from sim.systolic import GemmJob

    monkeypatch.setattr(soak, "SOAK_DIR", tmp_path)
    right = GemmJob.golden

    def wrong_systolic(job, rounding):
        out = right(job, rounding)
        out[-1, -1] ^= 1
        return out

    monkeypatch.setattr(GemmJob, "golden", wrong_systolic)
    batch = soak.plan("systolic", 40, seed=5)[0]
    got = soak.run_one("systolic", batch)
    jobs = len(make_batch(CONFIGS[batch["config"]], batch["vectors"], batch["seed"])[0])
    assert got["mismatches"] == jobs and got["vectors"] == batch["vectors"]
    m, _, n = got["first"]["shape"]
    assert (got["first"]["job"], got["first"]["row"], got["first"]["col"]) == (0, m - 1, n - 1)
    assert abs(got["first"]["rtl"] - got["first"]["golden"]) == 1
    assert (tmp_path / "mismatch" / "systolic" / f"{batch['seed']}-job0.npz").exists()

    def wrong_eie(specs, activations, config):
        outs = golden_run(specs, activations, config)
        outs[-1] = np.array(outs[-1]) + 1
        return outs

    golden_run = soak_eie.golden.run
    monkeypatch.setattr(soak_eie.golden, "run", wrong_eie)
    batch = soak.plan("eie", 40, seed=5)[0]
    got = soak.run_one("eie", batch)
    assert got["vectors"] == batch["vectors"]
    assert got["mismatches"] >= batch["vectors"]        # at least the last layer's first word
    assert got["first"]["vector"] == 0 and got["first"]["row"] == 0
    assert got["first"]["golden"] == got["first"]["rtl"] + 1
    assert (tmp_path / "mismatch" / "eie" / str(batch["seed"]) / "result.json").exists()
