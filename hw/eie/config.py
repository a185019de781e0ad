"""The one frozen configuration of the EIE sparse engine."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..bits import bits_for as _bits
from ..config import EngineConfig

__all__ = ["EieConfig", "PRESETS"]


#: Most PEs a config may have (EIE's scalability study went to 256). The engine's all-PE
#: handshakes are chains of AND gates, which Amaranth's checks walk recursively.
MAX_PES = 256


@dataclass(frozen=True)
class EieConfig(EngineConfig):
    """Parameters of an EIE-style sparse matrix × sparse vector engine.

    The same object drives the generator (:class:`hw.eie.EieTop`), the interleaved-CSC
    encoder (:mod:`hw.eie.csc`), the golden model (``sim/golden/eie.py``), the host driver
    (:mod:`hw.eie.driver`) and the testbenches. :meth:`fit` sizes its memories for a list of
    encoded layers (:class:`hw.eie.csc.CscLayer`).

    Parameters
    ----------
    pes:
        Number of processing elements; row ``i`` of every layer lives in PE ``i mod pes``.
    index_bits:
        Codebook index width; the codebook has ``2**index_bits`` entries, entry 0 is the
        value 0 (padding).
    zrun_bits:
        Width of the zero-run field of an entry; a run of ``2**zrun_bits`` or more zeros
        inserts padding entries.
    act_width, act_frac:
        Activation width and fraction bits (signed fixed point; outputs use the same format).
    weight_width, weight_frac:
        Codebook value width and fraction bits (signed fixed point).
    acc_width:
        Accumulator width. Must hold any layer's exact sum, so it never wraps:
        at least ``act_width + weight_width - weight_frac + bits(max_in_features)``.
    queue_depth:
        Depth of each PE's activation queue (EIE: 8).
    word_bits:
        Sparse-matrix memory word width; ``word_bits / (index_bits + zrun_bits)`` entries per
        word, a power of two (EIE: 64 bits = 8 entries).
    spmat_depth:
        Sparse-matrix memory words per PE (all layers together).
    ptr_depth:
        Column pointers per PE (all layers together; a layer of ``I`` inputs takes
        ``I + 1``), held in two banks of ``ptr_depth / 2`` (even, odd).
    act_depth:
        Activations (= accumulators) per PE: a layer of ``F`` inputs or outputs needs
        ``ceil(F / pes)``.
    bias_depth:
        Bias words per PE (all layers together).
    max_layers:
        Codebook slots (one per layer of a run).
    """

    pes: int = 64
    index_bits: int = 4
    zrun_bits: int = 4
    act_width: int = 16
    act_frac: int = 8
    weight_width: int = 16
    weight_frac: int = 12
    acc_width: int = 40
    queue_depth: int = 8
    word_bits: int = 64
    spmat_depth: int = 16384
    ptr_depth: int = 32768
    act_depth: int = 512
    bias_depth: int = 1024
    max_layers: int = 4

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"EieConfig.{field.name}={value!r}: use an integer")
        if not 1 <= self.pes <= MAX_PES:
            raise ValueError(f"EieConfig.pes={self.pes}: use 1 to {MAX_PES} processing "
                             f"elements")
        if not 1 <= self.index_bits <= 8:
            raise ValueError(f"EieConfig.index_bits={self.index_bits}: use 1 to 8")
        if not 1 <= self.zrun_bits <= 8:
            raise ValueError(f"EieConfig.zrun_bits={self.zrun_bits}: use 1 to 8")
        for name in ("act_width", "weight_width"):
            if not 2 <= getattr(self, name) <= 32:
                raise ValueError(f"EieConfig.{name}={getattr(self, name)}: use 2 to 32")
        if not 0 <= self.act_frac < self.act_width:
            raise ValueError(f"EieConfig.act_frac={self.act_frac}: use 0 to {self.act_width - 1}")
        if not 0 <= self.weight_frac < self.weight_width:
            raise ValueError(f"EieConfig.weight_frac={self.weight_frac}: use 0 to "
                             f"{self.weight_width - 1}")
        if not 1 <= self.queue_depth <= 1024:
            raise ValueError(f"EieConfig.queue_depth={self.queue_depth}: use 1 to 1024")
        epw, rem = divmod(self.word_bits, self.entry_bits)
        if not 1 <= self.word_bits <= 64 or rem or epw & (epw - 1):
            raise ValueError(f"EieConfig.word_bits={self.word_bits}: use a width up to 64 that "
                             f"holds a power-of-two number of {self.entry_bits}-bit entries")
        for name in ("spmat_depth", "act_depth", "bias_depth", "max_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"EieConfig.{name}={getattr(self, name)}: use a positive "
                                 f"integer")
        if self.ptr_depth < 2 or self.ptr_depth % 2:
            raise ValueError(f"EieConfig.ptr_depth={self.ptr_depth}: use an even number >= 2 "
                             f"(two banks)")
        if self.acc_width < self.min_acc_width:
            raise ValueError(f"EieConfig.acc_width={self.acc_width} can overflow on a layer of "
                             f"{self.max_in_features} inputs: use at least {self.min_acc_width}")
        if self.acc_width > 64:
            raise ValueError(f"EieConfig.acc_width={self.acc_width}: use at most 64")

    # Derived sizes.
    @property
    def entry_bits(self) -> int:
        return self.index_bits + self.zrun_bits

    @property
    def entries_per_word(self) -> int:
        return self.word_bits // self.entry_bits

    @property
    def codebook_size(self) -> int:
        return 1 << self.index_bits

    @property
    def max_in_features(self) -> int:
        """Largest layer input: its ``I + 1`` pointers fill the pointer memory."""
        return min(self.ptr_depth - 1, self.act_depth * self.pes)

    @property
    def max_out_features(self) -> int:
        return self.act_depth * self.pes

    @property
    def ptr_bits(self) -> int:
        """Width of a column pointer: an entry address in the sparse-matrix memory."""
        return _bits(self.spmat_depth * self.entries_per_word)

    @property
    def feature_bits(self) -> int:
        return _bits(max(self.max_in_features, self.max_out_features))

    @property
    def min_acc_width(self) -> int:
        return self.act_width + self.weight_width - self.weight_frac + _bits(self.max_in_features)

    @property
    def lane_bits(self) -> int:
        """Bits per PE in one beat of the load stream."""
        return max(self.word_bits, 2 * self.ptr_bits, self.act_width, self.weight_width)

    @property
    def load_addr_bits(self) -> int:
        return _bits(max(self.spmat_depth, self.ptr_depth // 2, self.act_depth,
                         self.bias_depth, self.max_layers * self.codebook_size) - 1)


    DEPTHS = ("spmat_depth", "ptr_depth", "act_depth", "bias_depth")

    def needs(self, layers) -> dict:
        """Depths one image of ``layers`` (encoded :class:`~hw.eie.csc.CscLayer`, run back
        to back) needs: every layer's sparse-matrix words and pointers (``I + 1`` each, in
        even/odd pairs) and biases one after the other, activations of the widest layer."""
        if not layers:
            raise ValueError("EieConfig.needs: give at least one layer")
        n, epw = self.pes, self.entries_per_word
        words = sum(-(-np.asarray(csc.entry_counts, dtype=np.int64) // epw) for csc in layers)
        pointers = sum(csc.cols + 1 for csc in layers)
        return {
            "spmat_depth": int(np.max(words)),
            "ptr_depth": pointers + pointers % 2,
            "act_depth": max(-(-max(csc.rows, csc.cols) // n) for csc in layers),
            "bias_depth": sum(-(-csc.rows // n) for csc in layers),
        }

    @classmethod
    def _probe(cls, base, fields):
        # A wide accumulator, so number formats alone never make the probe invalid.
        return (base or cls()).replace(**{"acc_width": 64, **fields})

    @classmethod
    def _sized(cls, base, fields):
        """``acc_width``, unless given, grows to what the sized memories can sum."""
        start = base or cls()
        sized = start.replace(**{"acc_width": 64, **fields})
        if "acc_width" in fields:
            return sized
        return sized.replace(acc_width=max(start.acc_width, sized.min_acc_width))


#: Named configurations: EIE's own 64-PE engine, the benchmark's build of it (64-deep queues,
#: capped per run to measure every shallower depth), and small ones for tests.
PRESETS = {
    "eie64": EieConfig(pes=64),
    "eie64-q64": EieConfig(pes=64, queue_depth=64),
    "test4": EieConfig(pes=4, spmat_depth=512, ptr_depth=1024, act_depth=128, bias_depth=256),
    "test16": EieConfig(pes=16, spmat_depth=256, ptr_depth=1024, act_depth=32, bias_depth=64),
}
