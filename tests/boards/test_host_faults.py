"""The host driver against a board that misbehaves: a fake board in Python whose replies are
corrupted, cut short, shortened, lengthened, delayed or preceded by noise on demand.

The fake board frames everything with :mod:`boards.protocol`'s codec and checks requests
the way :class:`boards.link.FrameLink` does, over an in-memory address space, so each test
can look at what the board actually executed.
"""

import gc
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boards.host import BoardClient, SerialTransport
from boards.link import MAGIC
from boards.mac_engine import MacEngine, mac_golden
from boards.protocol import (
    COUNTERS_SPACE,
    REPLY_SYNC,
    Command,
    LinkError,
    Space,
    Status,
    decode_request,
    encode_reply,
)

DATA, OUTPUTS = 1, 3
SPACES = (Space(DATA, "data", 1024, writable=True, readable=True),
          Space(COUNTERS_SPACE, "counters", 3, readable=True))


class FakeBoard:
    """An nnaccel board in Python, and the :class:`boards.host.Transport` that reaches it.

    Parameters
    ----------
    faults : dict
        ``{n: fault}``: what happens to the ``n``-th request (counting from 0, every
        request the board receives). A fault is a name from :attr:`FAULTS`, or a function
        from the reply frame to the bytes sent instead.
    info : list of int
        The ``INFO`` reply's words (default: ``MAGIC``, ``max_payload``, mac engine 1 2x3).
    on_run : callable
        ``on_run(board) -> cycles``; by default ``RUN`` takes 100 cycles and does nothing.
    """

    #: Reply faults (the request was executed) and request faults (it was not).
    FAULTS = ("corrupt", "cut", "drop", "late", "noise", "false_sync", "short", "long",
              "ragged", "bad_crc", "truncated", "corrupt_request")

    def __init__(self, faults=None, info=None, max_payload=64, spaces=SPACES, on_run=None):
        self.spaces = {s.id: s for s in spaces}
        self.mem = {s.id: [0] * s.depth for s in spaces}
        self.info = list(info) if info is not None else [MAGIC, max_payload, 1, 2, 3]
        self.max_payload = max_payload
        self.faults = dict(faults or {})
        self.on_run = on_run or (lambda board: 100)
        self.received = []       # (command, payload) of every request the host sent
        self.executed = []       # the commands the board carried out
        self.writes = []         # (space, addr, words) of every WRITE carried out
        self._out = bytearray()
        self._late = b""

    @property
    def runs(self) -> int:
        return self.executed.count(Command.RUN)

    # The transport.
    def write(self, data: bytes) -> None:
        fault = self.faults.get(len(self.received))
        self.received.append(decode_request(data))      # what the host sent
        if fault == "corrupt_request":
            data = data[:-1] + bytes([data[-1] ^ 0x40])
        try:
            command, payload = decode_request(data)
        except LinkError:
            self._out += encode_reply(Status.BAD_CRC)
            return
        if fault in ("bad_crc", "truncated"):
            self._out += encode_reply(Status[fault.upper()])
            return
        status, reply = self._execute(command, payload)
        self._out += self._spoil(fault, status, reply)

    def read(self, n: int) -> bytes:
        data = bytes(self._out[:n])
        del self._out[:n]
        if len(data) < n and self._late:     # the host timed out: the late reply lands now
            self._out += self._late
            self._late = b""
        return data

    def reset_input(self) -> None:
        self._out.clear()

    def close(self) -> None:
        pass

    def _spoil(self, fault, status, reply) -> bytes:
        frame = encode_reply(status, reply)
        if fault is None or fault in ("bad_crc", "truncated", "corrupt_request"):
            return frame
        if callable(fault):
            return fault(frame)
        if fault == "corrupt":
            return frame[:-2] + bytes([frame[-2] ^ 0x10]) + frame[-1:]
        if fault == "cut":
            return frame[:len(frame) // 2]
        if fault == "drop":
            return b""
        if fault == "late":
            self._late = frame
            return b""
        if fault == "noise":                  # no sync byte in it: skipped
            return b"\x00\xff\x13" + frame
        if fault == "false_sync":             # a sync byte, then a header that lies
            return bytes([REPLY_SYNC, 0, 0x40, 0]) + frame
        if fault == "short":
            return encode_reply(status, reply[:-4] if len(reply) >= 4 else b"\x01")
        if fault == "long":
            return encode_reply(status, reply + bytes(4))
        if fault == "ragged":
            return encode_reply(status, reply + b"\x01\x02")
        raise ValueError(f"unknown fault {fault!r}")

    def _execute(self, command, payload) -> tuple[int, bytes]:
        """What FrameLink answers (its checks: ``Executor._plan`` in boards/executor.py)."""
        if command == Command.INFO and not payload:
            reply = self.info
        elif command == Command.WRITE:
            if len(payload) < 8 or len(payload) % 4 or len(payload) > self.max_payload:
                return Status.BAD_LENGTH, b""
            (head,) = struct.unpack_from("<I", payload)
            space, addr = self.spaces.get(head & 0xFF), head >> 8
            words = struct.unpack_from(f"<{len(payload) // 4 - 1}I", payload, 4)
            if space is None or not space.writable or addr + len(words) > space.depth:
                return Status.BAD_ADDRESS, b""
            self.mem[space.id][addr:addr + len(words)] = words
            self.writes.append((space.id, addr, list(words)))
            reply = []
        elif command == Command.READ:
            if len(payload) != 6:
                return Status.BAD_LENGTH, b""
            head, count = struct.unpack("<IH", payload)
            space, addr = self.spaces.get(head & 0xFF), head >> 8
            if space is None or not space.readable or addr + count > space.depth:
                return Status.BAD_ADDRESS, b""
            reply = self.mem[space.id][addr:addr + count]
        elif command == Command.RUN and not payload:
            reply = [self.on_run(self)]
        elif command == Command.COUNTERS and not payload:
            reply = self.mem[COUNTERS_SPACE]
        elif command in Command._value2member_map_:
            return Status.BAD_LENGTH, b""
        else:
            return Status.BAD_COMMAND, b""
        self.executed.append(command)
        return Status.OK, struct.pack(f"<{len(reply)}I", *reply)


def _commands(board):
    return [command for command, _ in board.received]


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


# -- A clean link ---------------------------------------------------------------------------

def test_clean_link_round_trip():
    board = FakeBoard()
    client = BoardClient(board)
    words = list(range(1000, 1037))
    client.write(DATA, 5, words)
    assert board.mem[DATA][5:42] == words
    assert client.read(DATA, 5, 37) == words
    assert client.run() == 100
    assert client.counters() == [0, 0, 0]
    # 37 words at 15 per 64-byte frame: 3 WRITEs; INFO once (max_payload); no retries.
    assert _commands(board) == [Command.INFO] + [Command.WRITE] * 3 + [
        Command.READ, Command.RUN, Command.COUNTERS]


# -- One bad reply, then recovery -----------------------------------------------------------

@pytest.mark.parametrize("fault", ["corrupt", "cut", "drop", "late", "false_sync", "bad_crc",
                                   "truncated", "corrupt_request"])
def test_read_recovers_after_one_bad_reply(fault):
    board = FakeBoard(faults={1: fault})
    board.mem[DATA][:8] = range(8, 16)
    client = BoardClient(board)
    client.info()
    assert client.read(DATA, 0, 8) == list(range(8, 16))
    assert _commands(board) == [Command.INFO, Command.READ, Command.READ]


def test_noise_without_sync_is_skipped_without_retry():
    board = FakeBoard(faults={1: "noise"})
    board.mem[DATA][:4] = [7, 6, 5, 4]
    client = BoardClient(board)
    client.info()
    assert client.read(DATA, 0, 4) == [7, 6, 5, 4]
    assert _commands(board) == [Command.INFO, Command.READ]


def test_every_single_byte_corruption_of_a_reply_is_recovered():
    """Each byte of a READ reply flipped in turn (sync, status, length, data, CRC)."""
    reference = len(encode_reply(Status.OK, bytes(16)))
    for position in range(reference):
        for xor in (0x01, 0x80, 0xFF):
            def flip(frame, position=position, xor=xor):
                return frame[:position] + bytes([frame[position] ^ xor]) + frame[position + 1:]
            board = FakeBoard(faults={1: flip})
            board.mem[DATA][:4] = [0x5A5A5A5A, 1, 0xFFFF0000, 3]
            client = BoardClient(board)
            client.info()
            assert client.read(DATA, 0, 4) == [0x5A5A5A5A, 1, 0xFFFF0000, 3], (position, xor)
            assert len(board.received) == 3, (position, xor)


@pytest.mark.parametrize("fault", ["corrupt", "late", "bad_crc", "corrupt_request"])
def test_write_recovers_and_lands_once_in_memory(fault):
    board = FakeBoard(faults={2: fault})
    client = BoardClient(board)
    words = list(range(40))
    client.write(DATA, 100, words)
    assert board.mem[DATA][100:140] == words
    assert board.mem[DATA][140] == 0 and board.mem[DATA][99] == 0
    # 40 words at 15 a frame: 3 WRITEs, the second one twice.
    assert _commands(board) == [Command.INFO] + [Command.WRITE] * 4


@pytest.mark.parametrize("fault", ["corrupt", "cut", "drop"])
def test_info_and_counters_recover(fault):
    board = FakeBoard(faults={0: fault, 2: fault})
    board.mem[COUNTERS_SPACE][:] = [4, 5, 6]
    client = BoardClient(board)
    assert client.info() == [MAGIC, 64, 1, 2, 3]
    assert client.counters() == [4, 5, 6]
    assert _commands(board) == [Command.INFO] * 2 + [Command.COUNTERS] * 2


# -- RUN: retried only when the board dropped it unexecuted ---------------------------------

@pytest.mark.parametrize("fault", ["bad_crc", "truncated", "corrupt_request"])
def test_run_retried_when_the_board_never_accepted_it(fault):
    board = FakeBoard(faults={0: fault}, on_run=lambda b: 1234)
    assert BoardClient(board).run() == 1234
    assert board.runs == 1 and len(board.received) == 2


@pytest.mark.parametrize("fault", ["corrupt", "cut", "drop", "false_sync"])
def test_run_not_retried_when_the_engine_may_have_run(fault):
    board = FakeBoard(faults={0: fault})
    with pytest.raises(LinkError) as e:
        BoardClient(board).run()
    message = _one_line(e)
    assert message.startswith("RUN: ") and "not retried" in message
    assert ("longer" in message) == (fault == "drop")
    assert board.runs == 1 and len(board.received) == 1


def test_run_drains_a_stale_reply_first():
    """A reply left over from an earlier exchange must not be taken for RUN's."""
    board = FakeBoard(on_run=lambda b: 77)
    board._out += encode_reply(Status.BAD_CRC)
    assert BoardClient(board).run() == 77
    assert board.runs == 1


# -- Persistent faults: a bounded number of attempts, then one line -------------------------

@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_persistent_corruption_gives_up_after_attempts(attempts):
    board = FakeBoard(faults=dict.fromkeys(range(1, 20), "corrupt"))
    client = BoardClient(board, attempts=attempts)
    client.info()
    with pytest.raises(LinkError) as e:
        client.read(DATA, 0, 4)
    message = _one_line(e)
    assert message.startswith(f"READ: {attempts} attempts failed (reply CRC mismatch")
    assert (f"x{attempts}" in message) == (attempts > 1)
    assert _commands(board) == [Command.INFO] + [Command.READ] * attempts


def test_persistent_silence_says_what_to_check():
    board = FakeBoard(faults=dict.fromkeys(range(20), "drop"))
    with pytest.raises(LinkError) as e:
        BoardClient(board).info()
    assert _one_line(e) == ("INFO: 3 attempts failed (no reply (timeout) x3): is the board "
                            "programmed, and the port and baud rate right?")


def test_mixed_faults_are_each_named():
    board = FakeBoard(faults={1: "corrupt", 2: "bad_crc", 3: "cut"})
    client = BoardClient(board)
    client.info()
    with pytest.raises(LinkError) as e:
        client.write(DATA, 0, [1, 2])
    message = _one_line(e)
    assert "WRITE: 3 attempts failed" in message
    assert "CRC mismatch" in message and "BAD_CRC" in message and "truncated" in message
    assert "programmed" not in message


def test_attempts_must_be_positive():
    with pytest.raises(ValueError, match="attempts must be"):
        BoardClient(FakeBoard(), attempts=0)


# -- Well-framed replies that break the protocol: not retried -------------------------------

@pytest.mark.parametrize("command, fault, actual, expected", [
    ("read", "short", 12, "16"), ("read", "long", 20, "16"), ("read", "ragged", 18, "16"),
    ("run", "short", 0, "4"), ("run", "long", 8, "4"), ("write", "long", 4, "0"),
    ("info", "ragged", 22, "a multiple of 4, at least 8"),
    ("counters", "ragged", 14, "a multiple of 4"),
])
def test_wrong_reply_length_names_command_and_lengths(command, fault, actual, expected):
    board = FakeBoard(faults={1: fault})
    client = BoardClient(board)
    client.info()
    call = {"read": lambda: client.read(DATA, 0, 4), "run": client.run,
            "write": lambda: client.write(DATA, 0, [9]), "counters": client.counters,
            "info": client.info}[command]
    with pytest.raises(LinkError) as e:
        call()
    message = _one_line(e)
    assert f"{command.upper()} reply has {actual} payload bytes, expected {expected}" in message
    assert len(board.received) == 2


def test_run_answered_with_two_bytes():
    board = FakeBoard(faults={0: lambda frame: encode_reply(Status.OK, b"\x10\x00")})
    with pytest.raises(LinkError, match="RUN reply has 2 payload bytes, expected 4"):
        BoardClient(board).run()


def test_info_of_one_word():
    board = FakeBoard(info=[MAGIC])
    with pytest.raises(LinkError, match="INFO reply has 4 payload bytes, expected a multiple"):
        BoardClient(board).info()


def test_error_status_is_not_retried():
    board = FakeBoard()
    client = BoardClient(board)
    with pytest.raises(LinkError) as e:
        client.write(7, 0, [1])                  # no space 7
    assert _one_line(e) == "board answered BAD_ADDRESS to WRITE"
    assert _commands(board) == [Command.INFO, Command.WRITE]


def test_unknown_status_is_named():
    board = FakeBoard(faults={0: lambda frame: encode_reply(0x77)})
    with pytest.raises(LinkError, match="board answered status 0x77 to COUNTERS"):
        BoardClient(board).counters()


# -- INFO values ----------------------------------------------------------------------------

@pytest.mark.parametrize("max_payload", [0, 4, 7, 10, 65536, 70000])
def test_impossible_max_payload_is_refused_before_writing(max_payload):
    board = FakeBoard(max_payload=max_payload)
    client = BoardClient(board)
    with pytest.raises(LinkError) as e:
        client.write(DATA, 0, [1, 2, 3])
    message = _one_line(e)
    assert f"max_payload {max_payload}, not a multiple of 4 in 8..65532" in message
    assert "image is wrong" in message
    assert _commands(board) == [Command.INFO]
    assert board.mem[DATA][:3] == [0, 0, 0]


@pytest.mark.parametrize("max_payload", [8, 65532])
def test_extreme_valid_max_payload(max_payload):
    board = FakeBoard(max_payload=max_payload, spaces=(Space(DATA, "data", 20000,
                                                             writable=True, readable=True),))
    client = BoardClient(board)
    client.write(DATA, 0, list(range(5)))
    assert board.mem[DATA][:5] == list(range(5))
    assert len(board.received) == 1 + (5 if max_payload == 8 else 1)


def test_wrong_magic():
    board = FakeBoard(info=[0x12345678, 64, 1])
    with pytest.raises(LinkError) as e:
        BoardClient(board).info()
    message = _one_line(e)
    assert "not an nnaccel board" in message and "0x12345678" in message


def test_unknown_engine_id():
    board = FakeBoard(info=[MAGIC, 64, 9, 1, 1])
    with pytest.raises(LinkError, match="engine id 9, not one of 1 \\(mac\\)"):
        BoardClient(board).info()


def test_info_of_two_words_is_enough():
    board = FakeBoard(info=[MAGIC, 32])
    assert BoardClient(board).info() == [MAGIC, 32]


# -- The job runner over a faulty link ------------------------------------------------------

def _mac_board(rows, cols, faults):
    def on_run(board):
        raw = struct.pack(f"<{len(board.mem[1])}I", *board.mem[1])
        w = np.frombuffer(raw, dtype=np.int8)[:rows * cols].reshape(rows, cols)
        raw = struct.pack(f"<{len(board.mem[2])}I", *board.mem[2])
        x = np.frombuffer(raw, dtype=np.int8)[:cols]
        board.mem[OUTPUTS][:] = mac_golden(w, x).view(np.uint32).tolist()
        board.mem[COUNTERS_SPACE][:] = [board.runs + 1, 0, rows * cols]
        return rows * cols + MacEngine.LATENCY
    spaces = (Space(1, "weights", -(-rows * cols // 4), writable=True),
              Space(2, "inputs", -(-cols // 4), writable=True),
              Space(OUTPUTS, "outputs", rows, readable=True),
              Space(COUNTERS_SPACE, "counters", 3, readable=True))
    return FakeBoard(faults, info=[MAGIC, 16, 1, rows, cols], max_payload=16, spaces=spaces,
                     on_run=on_run)


def test_mac_job_through_a_noisy_link():
    """run_job on a board that spoils a reply of every idempotent command once."""
    from boards.engines import engine_config, run_job
    rng = np.random.default_rng(3)
    weights, x = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, 7)
    faults = {0: "corrupt", 2: "late", 6: "bad_crc", 9: "cut", 11: "false_sync"}
    board = _mac_board(5, 7, faults)
    result = run_job("mac", engine_config("mac", {"rows": 5, "cols": 7}), BoardClient(board),
                     {"weights": weights, "x": x})
    assert result["y"].tolist() == mac_golden(weights, x).tolist()
    assert result["cycles"] == 35 + MacEngine.LATENCY
    assert result["counters"] == [1, 0, 35]
    assert board.runs == 1
    # 9 weight words and 2 input words at 3 a frame; one retry per spoiled reply.
    assert _commands(board) == [Command.INFO] * 2 + [Command.WRITE] * 6 + [Command.RUN] + [
        Command.READ] * 2 + [Command.COUNTERS] * 2


def test_eie_beats_wider_than_a_frame():
    """A board with the smallest request buffer (one word a WRITE) still loads EIE beats of
    8 words: each beat over 8 frames at consecutive addresses, as its space assembles it."""
    from boards.eie_adapter import EIE_SPACES, EieAdapter
    from boards.engines import engine_config, run_job
    config = engine_config("eie", {"pes": 2, "spmat_depth": 64, "ptr_depth": 64,
                                   "act_depth": 16, "bias_depth": 16})
    # The adapters (ours and run_job's) are built only for their spaces and info words:
    # their never-elaborated engines' warnings are collected here, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = EieAdapter(config)
        assert adapter.stride_log2("load") == 3
        board = FakeBoard({5: "corrupt"}, info=[MAGIC, 8, *adapter.info], max_payload=8,
                          spaces=adapter.spaces)
        del adapter
        beats = [(k + 1) * 0x0123456789ABCDEF0123456789ABCDEF for k in range(3)]
        run_job("eie", config, BoardClient(board),
                {"beats": beats,
                 "program": [{"payload": 1, "emit": 0, "rows": 1, "out_features": 1}]})
        gc.collect()
    loads = [(addr, words) for space, addr, words in board.writes
             if space == EIE_SPACES["load"]]
    loads = [(a, w) for i, (a, w) in enumerate(loads) if i == 0 or loads[i - 1] != (a, w)]
    expected = [((beat >> (32 * j)) & 0xFFFFFFFF) for beat in beats for j in range(8)]
    assert [w for _, (w,) in loads] == expected
    assert [a for a, _ in loads] == list(range(8)) * 3
    assert board.runs == 1


def test_board_run_cli_refuses_a_board_with_max_payload_zero(tmp_path, monkeypatch, capsys):
    """``nnaccel board run`` used to exit 0 having written nothing to such a board."""
    import boards.host
    from nnaccel.cli import main
    from quantize.commands import compress_to_image
    from quantize.compress import CompressSpec
    from quantize.train import init_mlp
    x = np.random.default_rng(0).normal(size=(6, 4))
    compress_to_image(init_mlp([4, 3, 2], seed=1), "systolic", CompressSpec(bits=4, sparsity=0.5),
                      tmp_path / "img", calibration=x)
    np.save(tmp_path / "x.npy", x[:2])
    board = FakeBoard(info=[MAGIC, 0, 2])
    monkeypatch.setattr(boards.host, "SerialTransport", lambda *args, **kwargs: board)
    assert main(["board", "run", str(tmp_path / "img"), "--board", "ulx3s", "--port", "fake",
                 "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_payload 0" in err[0]
    assert not (tmp_path / "y.npy").exists()
    assert _commands(board) == [Command.INFO]


# -- The serial transport's drain -----------------------------------------------------------

def test_serial_reset_input_waits_for_the_line_to_go_quiet():
    transport = SerialTransport("loop://", 115200, timeout=0.05)
    try:
        transport.write(b"rest of an old reply")
        transport.reset_input()
        assert transport.read(1) == b""
        transport.write(b"\x5a")
        assert transport.read(1) == b"\x5a"
    finally:
        transport.close()


def test_serial_bad_port_is_one_line():
    with pytest.raises(OSError, match="cannot open serial port nosuch://x"):
        SerialTransport("nosuch://x")


# -- Properties: nothing but LinkError ------------------------------------------------------

def _session(client):
    """The exchanges of a job; returns what it read back."""
    client.write(DATA, 3, list(range(20)))
    got = client.read(DATA, 3, 20)
    cycles = client.run()
    return got, cycles, client.counters(), client.read_counters(3)


_mutation = st.one_of(
    st.tuples(st.just("xor"), st.integers(0, 200), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 200), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 200), st.binary(min_size=1, max_size=70)),
    st.tuples(st.just("replace"), st.just(0), st.binary(max_size=80)),
)


def _apply(mutation):
    kind, position, value = mutation

    def spoil(frame):
        p = min(position, len(frame))
        if kind == "xor":
            p = min(position, len(frame) - 1)
            return frame[:p] + bytes([frame[p] ^ value]) + frame[p + 1:]
        if kind == "cut":
            return frame[:p]
        if kind == "insert":
            return frame[:p] + value + frame[p:]
        return value
    return spoil


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.dictionaries(st.integers(0, 12), _mutation, max_size=6), st.integers(1, 4))
def test_spoiled_replies_raise_only_link_error(mutations, attempts):
    board = FakeBoard(faults={k: _apply(m) for k, m in mutations.items()})
    try:
        _session(BoardClient(board, attempts=attempts))
    except LinkError:
        pass
    assert len(board.received) <= 7 * attempts


_info_words = st.tuples(
    st.one_of(st.just(MAGIC), st.integers(0, 2**32 - 1)),
    st.one_of(st.sampled_from([0, 4, 7, 8, 12, 64, 65532, 65536]), st.integers(0, 2**32 - 1)),
    st.lists(st.integers(0, 2**32 - 1), max_size=4)).map(lambda t: [t[0], t[1], *t[2]])


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(st.dictionaries(st.integers(0, 12), st.tuples(st.integers(0, 255),
                                                    st.binary(max_size=40)), max_size=4),
       _info_words)
def test_hostile_well_framed_replies_raise_only_link_error(replies, info):
    """A board that answers with any status and payload, CRC and all, and any INFO words."""
    board = FakeBoard(info=info, max_payload=1024,
                      faults={k: (lambda frame, s=s, p=p: encode_reply(s, p))
                              for k, (s, p) in replies.items()})
    try:
        got, *_ = _session(BoardClient(board))
    except LinkError:
        return
    # A session that got through with the board's own INFO had sane INFO words, and
    # read back what it wrote unless its READ's reply was replaced.
    if 0 not in replies:
        assert info[0] == MAGIC and 8 <= info[1] <= 65532 and info[1] % 4 == 0
        first_read = 1 + -(-20 // ((info[1] - 4) // 4))
        if first_read not in replies:
            assert got == list(range(20))
