"""Reply frames out: sync byte, status, length, the data words' bytes, CRC."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import CRC, REPLY_SYNC

__all__ = ["ReplyLayout", "WordLayout", "Framer"]

#: A reply's header: its status and how many 32-bit data words follow (at most 0x3FFF).
ReplyLayout = data.StructLayout({"status": 8, "words": 16})
#: One data word of a reply; ``last`` marks the reply's last word.
WordLayout = data.StructLayout({"data": 32, "last": 1})


class Framer(wiring.Component):
    """Sends a reply frame for each beat on ``reply``: ``5A status len_lo len_hi``, the
    bytes of as many beats of ``words`` as ``reply.words`` says (little-endian), and the
    CRC of all but the sync byte, low byte first (:data:`boards.protocol.CRC`).

    A ``reply`` beat is taken when its last length byte goes out, so its producer knows
    when the first word is wanted; a ``words`` beat is taken when its fourth byte goes out.
    The first byte leaves one cycle after ``reply`` turns valid (if ``tx`` is free); a
    byte waits for the one before it to be taken, so a byte a cycle leaves at best every
    other cycle. Between a word's last byte and the CRC's first there are 2 cycles.

    Members
    -------
    reply : In(stream.Signature(ReplyLayout))
    words : In(stream.Signature(WordLayout))
        The reply's data words; ``last`` on the last one.
    tx : Out(stream.Signature(8))
        Reply bytes, from a register.
    sent : Out(1)
        High in the cycle the reply's last byte is handed to ``tx``.
    """

    reply: In(stream.Signature(ReplyLayout))
    words: In(stream.Signature(WordLayout))
    tx: Out(stream.Signature(8))
    sent: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC.create()
        count = self.reply.payload.words
        word = self.words.payload
        # Reply bytes leave through a register (the UART's enables are off the state
        # decode), and enter the CRC a cycle after they are sent (CRC_WAIT lets the last
        # one in).
        tx_valid, tx_byte = Signal(), Signal(8)
        tx_free = ~tx_valid
        m.d.comb += [self.tx.valid.eq(tx_valid), self.tx.payload.eq(tx_byte)]
        with m.If(self.tx.ready):
            m.d.sync += tx_valid.eq(0)
        crc_byte, crc_pending = Signal(8), Signal()
        m.d.sync += crc_pending.eq(0)
        m.d.comb += [crc.valid.eq(crc_pending), crc.data.eq(crc_byte)]
        has_words = Signal()           # one cycle behind ``count``, steady while it is used
        m.d.sync += has_words.eq(count != 0)
        byte_index = Signal(2)

        def send(byte, next_state, update_crc=True):
            with m.If(tx_free):
                m.d.sync += [tx_valid.eq(1), tx_byte.eq(byte)]
                if update_crc:
                    m.d.sync += [crc_byte.eq(byte), crc_pending.eq(1)]
                if next_state is not None:
                    m.next = next_state

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += crc.start.eq(1)
                with m.If(self.reply.valid):
                    send(REPLY_SYNC, "STATUS", update_crc=False)
            with m.State("STATUS"):
                send(self.reply.payload.status, "LEN0")
            with m.State("LEN0"):
                send(Cat(Const(0, 2), count[:6]), "LEN1")
            with m.State("LEN1"):
                send(count[6:14], None)
                with m.If(tx_free):
                    m.d.comb += self.reply.ready.eq(1)
                    m.d.sync += byte_index.eq(0)
                    m.next = "CRC_WAIT"
                    with m.If(has_words):
                        m.next = "WORDS"
            with m.State("WORDS"):
                with m.If(self.words.valid):
                    send(word.data.word_select(byte_index, 8), None)
                    with m.If(tx_free):
                        m.d.sync += byte_index.eq(byte_index + 1)
                        with m.If(byte_index == 3):
                            m.d.comb += self.words.ready.eq(1)
                            with m.If(word.last):
                                m.next = "CRC_WAIT"
            with m.State("CRC_WAIT"):           # the last byte enters the CRC
                m.next = "CRC0"
            with m.State("CRC0"):
                send(crc.crc[:8], "CRC1", update_crc=False)
            with m.State("CRC1"):
                send(crc.crc[8:], "SYNC", update_crc=False)
                m.d.comb += self.sent.eq(tx_free)
        return m
