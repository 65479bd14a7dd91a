"""Splitting a server's WebSocket byte stream into message payloads, without a protocol object.

Nearly every frame a Realtime server sends is a whole, unmasked text frame, and parsing those
through a general protocol object costs several times more than the rest of the receive path.
`FrameSplitter` slices such frames out of the stream itself and hands every other frame (control
frames, the frames of a fragmented message, frames with RSV bits or a mask, anything over the
size limit), byte for byte and in order, back to its caller for the protocol object to judge:
the protocol then sees a well-formed stream of exactly the frames it has to act on.
"""

from __future__ import annotations

from typing import Final, final

_WHOLE_DATA: Final = (0x81, 0x82)  # FIN, no RSV bits, opcode 1 (text) or 2 (binary)
_FIN: Final = 0x80
_OPCODE: Final = 0x0F
_MASKED: Final = 0x80
_LENGTH: Final = 0x7F
_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2


@final
class FrameSplitter:
    """Server-to-client frames in, whole data-frame payloads (and frames to hand over) out.

    Feed it what the stream delivered with `feed`, then call `split` until it returns None.
    Payloads of whole, unmasked, RSV-free text and binary frames no larger than
    *max_message_size* are appended to the list given to `split`; `split` stops at any other
    frame and returns its exact bytes for the protocol object. While a fragmented message is in
    progress every frame is handed over, up to and including the message's final frame. A frame
    larger than *max_message_size* is handed over from its first byte, and from then on so is
    everything (the protocol fails the connection with 1009 and discards the rest).
    """

    def __init__(self, max_message_size: int) -> None:
        self._max_size = max_message_size
        self._buffer = b""
        self._pos = 0  # where the next unsplit frame starts in _buffer
        self._parts: list[bytes] = []  # data held back until a long frame is complete
        self._parts_size = 0
        self._needed = 2  # bytes from _pos on that the next step of splitting needs
        self._fragmented = False
        self._passthrough = False

    @property
    def passthrough(self) -> bool:
        """Whether every byte now goes to the protocol object (after an over-size frame)."""
        return self._passthrough

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        held = len(self._buffer) - self._pos + self._parts_size
        if held + len(data) < self._needed:
            # A long frame still incomplete: keep the pieces, join them once (not per read).
            self._parts.append(data)
            self._parts_size += len(data)
            return
        if held == 0:
            self._buffer = data
        else:
            self._buffer = b"".join([self._buffer[self._pos :], *self._parts, data])
            self._parts.clear()
            self._parts_size = 0
        self._pos = 0

    def take_rest(self) -> bytes:
        """Everything not split yet, for the protocol object; the splitter passes through after."""
        self._passthrough = True
        rest = b"".join([self._buffer[self._pos :], *self._parts])
        self._buffer, self._pos = b"", 0
        self._parts.clear()
        self._parts_size = 0
        return rest

    def split(self, messages: list[bytes]) -> bytes | None:
        """Append the payloads of the data frames at the head of the stream to *messages*.

        Returns:
            The bytes of the next frame the protocol object must see (splitting resumes after
            it on the next call), or None once no complete frame is left.
        """
        if self._passthrough:
            rest = self.take_rest()
            return rest or None
        buffer, pos = self._buffer, self._pos
        end = len(buffer)
        if not self._fragmented:
            # The hot loop: one whole, unmasked text or binary frame per turn.
            max_size = self._max_size
            append = messages.append
            while pos + 2 <= end:
                head = buffer[pos]
                length = buffer[pos + 1]  # the mask bit set makes it >= 128: not ours
                if length < 126:
                    start = pos + 2
                elif length == 126:
                    if pos + 4 > end:
                        break
                    length = (buffer[pos + 2] << 8) | buffer[pos + 3]
                    start = pos + 4
                elif length == 127:
                    if pos + 10 > end:
                        break
                    length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                    start = pos + 10
                else:
                    break
                stop = start + length
                if stop > end or length > max_size or head not in _WHOLE_DATA:
                    break
                append(buffer[start:stop])
                pos = stop
        return self._hand_over(buffer, pos, end)

    def _hand_over(self, buffer: bytes, pos: int, end: int) -> bytes | None:
        """The frame at *pos* if it is complete (or over-size); None otherwise."""
        if pos == end:
            # All split: hold no read's bytes while idle (thousands of sessions sit here).
            self._buffer, self._pos, self._needed = b"", 0, 2
            return None
        self._pos = pos
        size, length = _header(buffer, pos, end)
        if length is None:
            self._needed = size
            return None
        if length > self._max_size:
            return self.take_rest()
        stop = pos + size + length
        if stop > end:
            self._needed = stop - pos
            return None
        self._needed = 2
        head = buffer[pos]
        opcode, fin = head & _OPCODE, head & _FIN
        if opcode in (_TEXT, _BINARY) and not fin:
            self._fragmented = True
        elif opcode == _CONTINUATION and fin:
            self._fragmented = False
        self._pos = stop
        return buffer[pos:stop]


def _header(buffer: bytes, pos: int, end: int) -> tuple[int, int | None]:
    """The header size (mask key included) of the frame at *pos*, and its payload length.

    The length is None while the header is incomplete; the size is then what it needs.
    """
    if end - pos < 2:
        return 2, None
    second = buffer[pos + 1]
    length = second & _LENGTH
    extended = 2 if length == 126 else 8 if length == 127 else 0
    size = 2 + extended + (4 if second & _MASKED else 0)
    if end - pos < size:
        return size, None
    if extended:
        length = int.from_bytes(buffer[pos + 2 : pos + 2 + extended], "big")
    return size, length
