"""Formal proofs (SymbiYosys) of the engines' stream contracts: ``python -m sim.formal``.

Each :class:`~sim.formal.runner.Proof` wraps a design in an elaboratable that drives its
inputs with free values (assumed to keep the stream rule where a host drives a stream)
and asserts or covers properties of its outputs and queues. ``docs/formal.md`` lists them.
"""

from .eie import EieCommandCover, EieQueues, EieResultStream, TreeStreams
from .link import LinkReplyFrames, LinkTxStream
from .runner import Proof, Result, ToolMissing, run_proof, tool_path
from .systolic import SystolicActivationGate, SystolicOutputFifo, SystolicResultStream

__all__ = ["PROOFS", "Proof", "Result", "ToolMissing", "run_proof", "tool_path"]

#: Every proof, in the order ``make formal`` runs them; ``fast`` ones also run in make test.
#: (``sim.formal.systolic.SystolicGemmCover`` is left out: z3 did not find its witness,
#: 48 cycles deep, in the time tried; see docs/formal.md.)
PROOFS = (
    Proof("eie_result_stream", "EieTop (2 PEs)", "o_result: valid held, payload stable",
          EieResultStream, "prove", 4),
    Proof("eie_tree_streams", "NonZeroTree (5 leaves)",
          "root keeps the stream rule; beats in = beats out + beats held", TreeStreams,
          "prove", 4),
    Proof("eie_queues", "EieTop (2 PEs)",
          "no PE FIFO written while full; queue pops land in the column buffer",
          EieQueues, "prove", 4),
    Proof("eie_queues_fill", "EieTop (2 PEs)", "cover: a queue and a column buffer fill up",
          lambda: EieQueues(cover=True), "cover", 30, fast=False),
    Proof("eie_command_cover", "EieTop (2 PEs)", "cover: command, result beat, idle again",
          EieCommandCover, "cover", 20, fast=False),
    Proof("systolic_result_stream", "SystolicTop (1x1)", "o_result: valid held, payload stable",
          SystolicResultStream, "prove", 4),
    Proof("systolic_output_fifo", "SystolicTop (1x1)",
          "output FIFO never written while full (credit = rows in flight)",
          SystolicOutputFifo, "prove", 4, fast=False),
    Proof("systolic_activation_gate", "IssueController (1x1, 8 activation words)",
          "no row issues before its activation word is written (words in address order)",
          SystolicActivationGate, "prove", 4),
    Proof("link_tx_stream", "FrameLink", "tx: valid held, byte stable", LinkTxStream,
          "prove", 4),
    Proof("link_reply_frames", "FrameLink", "reply frames: sync, length and CRC consistent",
          LinkReplyFrames, "bmc", 27, fast=False, timeout=3600),
    Proof("link_reply_cover", "FrameLink", "cover: request answered by a whole reply frame",
          LinkReplyFrames, "cover", 30, fast=False),
)
