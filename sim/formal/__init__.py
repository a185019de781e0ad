"""Formal proofs (SymbiYosys) of the engines' stream contracts: ``python -m sim.formal``.

Each :class:`~sim.formal.runner.Proof` wraps a design in an elaboratable that drives its
inputs with free values (assumed to keep the stream rule where a host drives a stream)
and asserts or covers properties of its outputs and queues. ``docs/formal.md`` lists them.
"""

from .eie import EieCommandCover, EieQueues, EieResultStream, TreeStreams
from .link import LinkReplyFrames, LinkTxStream
from .runner import Proof, Result, ToolMissing, run_proof, tool_path
from .systolic import SystolicGemmCover, SystolicOutputFifo, SystolicResultStream

__all__ = ["PROOFS", "Proof", "Result", "ToolMissing", "run_proof", "tool_path"]

#: Every proof, in the order ``make formal`` runs them; ``fast`` ones also run in make test.
PROOFS = (
    Proof("eie_result_stream", "EieTop (2 PEs)", "o_result valid held, payload stable",
          EieResultStream, "prove", 4),
    Proof("eie_tree_streams", "NonZeroTree (5 leaves)",
          "root stream rule; beats in = beats out + beats held", TreeStreams, "prove", 4),
    Proof("eie_queues", "EieTop (2 PEs)",
          "no PE FIFO written while full; queue pops land in the column buffer",
          EieQueues, "bmc", 24),
    Proof("eie_command_cover", "EieTop (2 PEs)", "cover: command -> result beat -> idle",
          EieCommandCover, "cover", 20),
    Proof("systolic_result_stream", "SystolicTop (1x1)", "o_result valid held, payload stable",
          SystolicResultStream, "prove", 4),
    Proof("systolic_output_fifo", "SystolicTop (1x1)", "output FIFO never written while full",
          SystolicOutputFifo, "bmc", 30),
    Proof("systolic_gemm_cover", "SystolicTop (1x1)", "cover: command -> last result word",
          SystolicGemmCover, "cover", 40),
    Proof("link_tx_stream", "FrameLink", "tx valid held, byte stable", LinkTxStream,
          "prove", 4),
    Proof("link_reply_frames", "FrameLink", "reply frames: sync, length, CRC all consistent",
          LinkReplyFrames, "bmc", 40),
    Proof("link_reply_cover", "FrameLink", "cover: request -> whole OK reply with data",
          LinkReplyFrames, "cover", 60),
)
