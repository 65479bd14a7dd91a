"""The frame splitter: data frames sliced out of the stream, every other frame handed over intact.

Frames are built with `websockets`' own encoder, and what is handed over is fed to a real
`ClientProtocol`, so the tests check the splitter against the protocol it sits in front of.
"""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from realtime_trio._transport._frames import FrameSplitter

MAX_SIZE = 1 << 20


def server_frame(
    opcode: Opcode, data: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> bytes:
    frame = Frame(opcode, data, fin).serialize(mask=mask)
    return bytes([frame[0] | 0x40]) + frame[1:] if rsv1 else frame  # websockets refuses RSV1


def text(data: bytes) -> bytes:
    return server_frame(Opcode.TEXT, data)


def split_all(splitter: FrameSplitter, *chunks: bytes) -> tuple[list[bytes], list[bytes]]:
    """Messages and handed-over frames, after feeding *chunks* one by one."""
    messages: list[bytes] = []
    handed: list[bytes] = []
    for chunk in chunks:
        splitter.feed(chunk)
        while (frame := splitter.split(messages)) is not None:
            handed.append(frame)
    return messages, handed


def open_protocol(max_size: int = MAX_SIZE) -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://upstream.test/"), state=OPEN, max_size=max_size)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_each_length_encoding_is_split(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)

    messages, handed = split_all(FrameSplitter(MAX_SIZE), text(payload))

    assert messages == [payload]
    assert handed == []


def test_binary_frames_are_messages_too() -> None:
    messages, _ = split_all(FrameSplitter(MAX_SIZE), server_frame(Opcode.BINARY, b'{"a":1}'))

    assert messages == [b'{"a":1}']


def test_many_frames_in_one_chunk_come_out_in_order() -> None:
    payloads = [f'{{"type":"x","n":{n}}}'.encode() * (n % 7 + 1) for n in range(500)]

    messages, handed = split_all(FrameSplitter(MAX_SIZE), b"".join(map(text, payloads)))

    assert messages == payloads
    assert handed == []


def test_a_stream_cut_at_every_offset_gives_the_same_messages() -> None:
    payloads = [b"a", b"b" * 125, b"c" * 126, b"d" * 300, b"", b"e" * 70_000]
    stream = b"".join(map(text, payloads))

    for cut in range(len(stream) + 1):
        messages, handed = split_all(FrameSplitter(MAX_SIZE), stream[:cut], stream[cut:])
        assert messages == payloads, cut
        assert handed == []


def test_a_stream_fed_byte_by_byte_gives_the_same_messages() -> None:
    payloads = [b"x" * 10, b"y" * 200, b"z" * 5]
    stream = b"".join(map(text, payloads))

    messages, _ = split_all(
        FrameSplitter(MAX_SIZE), *(stream[i : i + 1] for i in range(len(stream)))
    )

    assert messages == payloads


def test_a_ping_between_messages_is_handed_over_in_place() -> None:
    ping = server_frame(Opcode.PING, b"are you there")
    splitter = FrameSplitter(MAX_SIZE)
    splitter.feed(text(b"first") + ping + text(b"second"))
    messages: list[bytes] = []

    assert splitter.split(messages) == ping
    assert messages == [b"first"]
    assert splitter.split(messages) is None
    assert messages == [b"first", b"second"]

    protocol = open_protocol()
    protocol.receive_data(ping)
    (pong,) = protocol.data_to_send()
    assert client_frame(pong) == (Opcode.PONG, b"are you there")


def client_frame(data: bytes) -> tuple[Opcode, bytes]:
    """A short frame the client sent, unmasked."""
    length = data[1] & 0x7F
    key, payload = data[2:6], data[6 : 6 + length]
    return Opcode(data[0] & 0x0F), bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_a_fragmented_message_goes_to_the_protocol_up_to_its_final_frame() -> None:
    parts = [
        server_frame(Opcode.TEXT, b'{"type":', fin=False),
        server_frame(Opcode.PING, b"p"),
        server_frame(Opcode.CONT, b'"x",', fin=False),
        server_frame(Opcode.CONT, b'"n":1}', fin=True),
    ]
    after = text(b"whole")

    messages, handed = split_all(FrameSplitter(MAX_SIZE), b"".join(parts) + after)

    assert handed == parts
    assert messages == [b"whole"]
    protocol = open_protocol()
    for frame in handed:
        protocol.receive_data(frame)
    frames = protocol.events_received()
    assert b"".join(f.data for f in frames if f.opcode is not Opcode.PING) == b'{"type":"x","n":1}'
    assert protocol.state is OPEN


def test_a_fragmented_message_split_across_reads() -> None:
    stream = (
        server_frame(Opcode.BINARY, b"ab", fin=False)
        + server_frame(Opcode.CONT, b"cd", fin=True)
        + text(b"after")
    )

    for cut in range(len(stream) + 1):
        messages, handed = split_all(FrameSplitter(MAX_SIZE), stream[:cut], stream[cut:])
        assert len(handed) == 2, cut
        assert messages == [b"after"], cut


@pytest.mark.parametrize(
    "frame",
    [
        server_frame(Opcode.TEXT, b"compressed?", rsv1=True),
        server_frame(Opcode.TEXT, b"masked", mask=True),
        server_frame(Opcode.TEXT, b"m" * 300, mask=True),
        server_frame(Opcode.CLOSE, b"\x03\xe8bye"),
    ],
    ids=["rsv1", "masked", "masked-16-bit", "close"],
)
def test_frames_the_protocol_must_judge_are_handed_over_exactly(frame: bytes) -> None:
    messages, handed = split_all(FrameSplitter(MAX_SIZE), text(b"before") + frame)

    assert messages == [b"before"]
    assert handed == [frame]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (server_frame(Opcode.TEXT, b"compressed?", rsv1=True), 1002),
        (server_frame(Opcode.TEXT, b"masked", mask=True), 1002),
        (server_frame(Opcode.CLOSE, b"\x03\xe8bye"), 1000),
    ],
)
def test_the_protocol_closes_as_it_should_on_what_was_handed_over(frame: bytes, code: int) -> None:
    _, handed = split_all(FrameSplitter(MAX_SIZE), frame)
    protocol = open_protocol()

    protocol.receive_data(handed[0])

    assert protocol.state is not OPEN
    close = protocol.close_rcvd or protocol.close_sent
    assert close is not None
    assert close.code == code


def test_an_over_size_frame_hands_over_everything_from_its_header_on() -> None:
    big = text(b"x" * 101)
    splitter = FrameSplitter(100)

    messages, handed = split_all(splitter, text(b"fits") + big[:50], big[50:], text(b"later"))

    assert messages == [b"fits"]
    assert b"".join(handed) == big + text(b"later")
    assert splitter.passthrough
    protocol = open_protocol(max_size=100)
    protocol.receive_data(handed[0])
    assert protocol.close_sent is not None
    assert protocol.close_sent.code == 1009


def test_an_over_size_frame_is_refused_on_its_header_alone() -> None:
    header = bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big")

    messages, handed = split_all(FrameSplitter(MAX_SIZE), header)

    assert (messages, handed) == ([], [header])


def test_a_frame_at_the_limit_is_a_message() -> None:
    messages, handed = split_all(FrameSplitter(100), text(b"x" * 100))

    assert (messages, handed) == ([b"x" * 100], [])


def test_take_rest_returns_unsplit_bytes_from_a_frame_boundary() -> None:
    splitter = FrameSplitter(MAX_SIZE)
    tail = text(b"y" * 300)
    messages, _ = split_all(splitter, text(b"x") + tail[:10])

    assert messages == [b"x"]
    rest = splitter.take_rest()
    assert rest == tail[:10]
    assert splitter.passthrough
