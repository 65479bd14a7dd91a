"""Server-to-client WebSocket frames encoded ahead of time, and the outbox item that sends them.

A blast must leave faster than any per-frame send path allows (Hypercorn encodes each message
with wsproto, then writes it: tens of microseconds a frame). So its events are encoded here,
before any timing starts, as complete unmasked text frames (RFC 6455 section 5.2: FIN and
opcode 0x1, then a 7-, 16- or 64-bit length, no mask, no compression bit) joined into chunks of
about `CHUNK_BYTES`, each holding whole frames. A socket's sender writes the chunks as they are
when the wire tap lets it (`WireTap.send_raw`), else it sends the frames' texts one by one
(`frame_texts`): the client sees the same frames either way, and with permessage-deflate
negotiated they are simply uncompressed messages, which the extension allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import final

import trio

CHUNK_BYTES = 256 * 1024
_FIN_TEXT = 0x81


@dataclass(frozen=True)
class EncodedFrames:
    """Text frames as bytes, in chunks of whole frames; `chunk_frames[i]` frames and
    `chunk_payload_bytes[i]` payload bytes are in `chunks[i]`."""

    chunks: tuple[bytes, ...]
    chunk_frames: tuple[int, ...]
    chunk_payload_bytes: tuple[int, ...]

    @property
    def frames(self) -> int:
        return sum(self.chunk_frames)

    @property
    def payload_bytes(self) -> int:
        return sum(self.chunk_payload_bytes)

    @property
    def wire_bytes(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


def text_frame_header(length: int) -> bytes:
    """The header of a final, unmasked text frame carrying *length* payload bytes."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return bytes((_FIN_TEXT, 126)) + length.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + length.to_bytes(8, "big")


def encode_text_frames(
    payloads: Iterable[bytes], *, chunk_bytes: int = CHUNK_BYTES
) -> EncodedFrames:
    """Each of *payloads* (UTF-8 text) as a frame; frames joined into chunks of at least
    *chunk_bytes* (the last one may be smaller), a frame never split between two chunks."""
    chunks: list[bytes] = []
    chunk_frames: list[int] = []
    chunk_payload: list[int] = []
    headers: dict[int, bytes] = {}  # a mix has few distinct lengths: each header built once
    parts: list[bytes] = []
    append = parts.append
    size = payload = 0
    for data in payloads:
        length = len(data)
        head = headers.get(length)
        if head is None:
            head = headers[length] = text_frame_header(length)
        append(head)
        append(data)
        payload += length
        size += len(head) + length
        if size >= chunk_bytes:
            chunks.append(b"".join(parts))
            chunk_frames.append(len(parts) // 2)
            chunk_payload.append(payload)
            parts.clear()
            size = payload = 0
    if parts:
        chunks.append(b"".join(parts))
        chunk_frames.append(len(parts) // 2)
        chunk_payload.append(payload)
    return EncodedFrames(tuple(chunks), tuple(chunk_frames), tuple(chunk_payload))


def frame_texts(chunk: bytes) -> Iterator[str]:
    """The texts of the frames `encode_text_frames` put in *chunk* (for the per-frame path)."""
    view = memoryview(chunk)
    at = 0
    while at < len(chunk):
        length = chunk[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = int.from_bytes(view[at : at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(view[at : at + 8], "big")
            at += 8
        yield str(view[at : at + length], "utf-8")
        at += length


@final
class RawFrames:
    """An outbox item: pre-encoded frames for one socket, and what its sender did with them.

    The sender stamps `first_sent_at` (`time.monotonic()`) just before writing the first chunk
    and `last_sent_at` just after the last, counts what it wrote, then sets `finished`; it also
    sets `finished` (with `complete` False) when the socket ends before all of it was written.
    """

    def __init__(self, frames: EncodedFrames) -> None:
        self.frames = frames
        self.first_sent_at: float | None = None
        self.last_sent_at: float | None = None
        self.frames_sent = 0
        self.payload_bytes_sent = 0
        self.wire_bytes_sent = 0
        self.complete = False
        self.finished = trio.Event()

    def chunk_sent(self, index: int) -> None:
        """Chunk *index* is on the wire."""
        self.frames_sent += self.frames.chunk_frames[index]
        self.payload_bytes_sent += self.frames.chunk_payload_bytes[index]
        self.wire_bytes_sent += len(self.frames.chunks[index])
