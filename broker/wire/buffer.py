"""A bounds-checked cursor over bytes for decoding, and an append buffer for encoding.

Every ``pull_*`` checks the remaining length first and raises :class:`BufferReadError`
(a :class:`RemoteProtocolError`) instead of returning short data, so a decoder written
as straight-line ``pull_*`` calls can never read past a length the peer lied about.
"""

from __future__ import annotations

import struct

from broker.wire.errors import RemoteProtocolError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class BufferReadError(RemoteProtocolError):
    """The input ended before a field it announced."""


class Buffer:
    """Read cursor over immutable bytes, or write buffer when built with no data."""

    __slots__ = ("_data", "_end", "_out", "_pos")

    def __init__(self, data: bytes = b"", *, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end
        if not 0 <= start <= self._end <= len(data):
            raise BufferReadError("buffer bounds outside the data")
        self._out = bytearray()

    # -- reading -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _take(self, n: int) -> int:
        if n < 0 or self._pos + n > self._end:
            raise BufferReadError(
                f"need {n} octets at offset {self._pos}, only {self._end - self._pos} left"
            )
        p = self._pos
        self._pos = p + n
        return p

    def pull_uint8(self) -> int:
        return self._data[self._take(1)]

    def pull_uint16(self) -> int:
        return int(_U16.unpack_from(self._data, self._take(2))[0])

    def pull_uint32(self) -> int:
        return int(_U32.unpack_from(self._data, self._take(4))[0])

    def pull_uint64(self) -> int:
        return int(_U64.unpack_from(self._data, self._take(8))[0])

    def pull_bytes(self, n: int) -> bytes:
        p = self._take(n)
        return self._data[p : p + n]

    def pull_rest(self) -> bytes:
        return self.pull_bytes(self.remaining)

    def sub(self, n: int) -> Buffer:
        """A cursor over the next ``n`` octets; this cursor skips past them."""
        p = self._take(n)
        return Buffer(self._data, start=p, end=p + n)

    def skip(self, n: int) -> None:
        self._take(n)

    # -- writing -------------------------------------------------------------------------
    def push_uint8(self, v: int) -> None:
        self._out.append(v)

    def push_uint16(self, v: int) -> None:
        self._out += _U16.pack(v)

    def push_uint32(self, v: int) -> None:
        self._out += _U32.pack(v)

    def push_uint64(self, v: int) -> None:
        self._out += _U64.pack(v)

    def push_bytes(self, v: bytes) -> None:
        self._out += v

    def data(self) -> bytes:
        return bytes(self._out)

    def __len__(self) -> int:
        return len(self._out)
