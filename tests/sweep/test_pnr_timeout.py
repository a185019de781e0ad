"""A sweep's place-and-route time limit: validated in one line, carried to the synthesis,
no part of a point's identity, and a point stopped at it recorded as failed with the line."""

import pytest

from sim.sweep import measures
from sim.sweep.runner import measure_task
from sim.sweep.spec import Point, parse_spec

SPEC = {"measures": ["synth"], "boards": ["icebreaker"], "seeds": [1, 2],
        "systolic": {"rows": [2], "cols": [2]}}


def test_limit_reaches_every_synth_point_and_not_the_ident():
    bounded = parse_spec({**SPEC, "pnr_timeout_min": 45})
    unbounded = parse_spec(SPEC)
    assert [p.pnr_timeout_min for p in bounded.points] == [45.0, 45.0]
    assert [p.pnr_timeout_min for p in unbounded.points] == [None, None]
    # A point finished without a limit is the same point with one: nothing reruns.
    assert [p.ident() for p in bounded.points] == [p.ident() for p in unbounded.points]
    assert bounded.points[0].to_dict()["pnr_timeout_min"] == 45.0
    # Records written before the limit existed still load.
    old = {k: v for k, v in unbounded.points[0].to_dict().items() if k != "pnr_timeout_min"}
    assert Point.from_dict(old) == unbounded.points[0]


@pytest.mark.parametrize("bad", [0, -3, "30", True, [30], float("nan"), float("inf")])
def test_bad_limit_names_the_key(bad):
    with pytest.raises(ValueError) as e:
        parse_spec({**SPEC, "pnr_timeout_min": bad})
    assert str(e.value).startswith("pnr_timeout_min = ") and "\n" not in str(e.value)


def test_point_stopped_at_the_limit_is_recorded_failed(monkeypatch):
    seen = {}
    line = ("systolic (rows=2, cols=2, ...) was not placed and routed on the iCE40UP5K "
            "within 1.5 min: still placing — give a longer --pnr-timeout (in a sweep spec, "
            "pnr_timeout_min) or choose a smaller config")

    def stopped(*args, **kwargs):
        seen.update(kwargs)
        raise TimeoutError(line)

    monkeypatch.setattr(measures, "synthesize", stopped)
    point = parse_spec({**SPEC, "pnr_timeout_min": 1.5}).points[0]
    record = measure_task(point.to_dict())
    assert seen["pnr_timeout"] == 90.0 and seen["seeds"] == (1,)
    assert record["status"] == "failed" and record["result"] is None
    assert record["error"] == f"TimeoutError: {line}"
    measure_task(parse_spec(SPEC).points[0].to_dict())
    assert seen["pnr_timeout"] is None
