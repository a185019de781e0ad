"""The SymbiYosys proofs pass, and the harness fails a stream that breaks the rule."""

import sys

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import stream

from sim.formal import PROOFS, Proof, ToolMissing, run_proof, tool_path
from sim.formal.__main__ import main
from sim.formal.contracts import free, stream_rule
from sim.formal.eie import PeQueueLimit


@pytest.mark.parametrize("proof", [
    pytest.param(p, id=p.name, marks=() if p.fast else pytest.mark.slow) for p in PROOFS])
def test_proof_passes(proof, tmp_path):
    result = run_proof(proof, tmp_path)
    assert result.passed, f"{proof.name}: {result.summary} (work dir {result.workdir})"


class CountingSource(Elaboratable):
    """A stream of counts with a ready the proof chooses; ``bug`` names a rule it breaks."""

    def __init__(self, bug=None):
        self._bug = bug

    def elaborate(self, platform):
        m = Module()
        out = stream.Signature(8).create()
        free(m, out.ready)
        with m.If(~out.valid | out.ready):
            m.d.sync += [out.valid.eq(1), out.payload.eq(out.payload + 1)]
        if self._bug == "payload":      # the count moves on while stalled
            with m.Else():
                m.d.sync += out.payload.eq(out.payload + 1)
        elif self._bug == "valid":      # the beat is withdrawn after a stalled cycle
            stalled = Signal()
            m.d.sync += stalled.eq(out.valid & ~out.ready)
            with m.If(stalled):
                m.d.sync += out.valid.eq(0)
        stream_rule(m, out, name="out")
        return m


def _source_proof(bug, mode="prove"):
    return Proof(f"source_{bug}", "CountingSource", "stream rule", lambda: CountingSource(bug),
                 mode, 4)


def test_good_source_passes(tmp_path):
    result = run_proof(_source_proof(None), tmp_path)
    assert result.passed, result.summary


@pytest.mark.parametrize("bug, message", [("payload", "out: payload changed while stalled"),
                                          ("valid", "out: valid dropped before ready")])
@pytest.mark.parametrize("mode", ["prove", "bmc"])
def test_broken_source_fails(tmp_path, bug, message, mode):
    result = run_proof(_source_proof(bug, mode), tmp_path)
    assert not result.passed
    assert message in result.summary
    assert "FAIL" in result.summary      # a counterexample, not just an inconclusive run


def test_missing_tool_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    with pytest.raises(ToolMissing, match="install the formal extra"):
        tool_path()
    assert main(["--fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "yowasp-sby not found" in err


@pytest.mark.parametrize("trust_host", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_queue_limit_past_depth_overflows_the_queue(tmp_path, trust_host):
    """The engine trusts ``queue_limit <= queue_depth`` (documented in ``cmd_layout``,
    checked by the driver): past it, a bounded check finds the activation queue written
    while full (step 11), so a column's work would be dropped; within it, the same check
    passes. If the RTL ever clamps the limit, the untrusted case passes and this fails:
    then drop the precondition from ``docs/formal.md``."""
    proof = Proof("pe_queue_limit", "ProcessingElement", "queue never written while full",
                  lambda: PeQueueLimit(trust_host=trust_host), "bmc", 12)
    result = run_proof(proof, tmp_path)
    if trust_host:
        assert result.passed, result.summary
    else:
        assert not result.passed
        assert "sby: FAIL" in result.summary and "queue written while full" in result.summary
