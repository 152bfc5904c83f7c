from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.wire import Buffer, BufferReadError, RemoteProtocolError, format_mac, parse_mac


@given(
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=64),
)
def test_round_trip(a: int, b: int, c: int, d: int, blob: bytes) -> None:
    out = Buffer()
    out.push_uint8(a)
    out.push_uint16(b)
    out.push_uint32(c)
    out.push_uint64(d)
    out.push_bytes(blob)
    buf = Buffer(out.data())
    assert (buf.pull_uint8(), buf.pull_uint16(), buf.pull_uint32(), buf.pull_uint64()) == (
        a,
        b,
        c,
        d,
    )
    assert buf.pull_rest() == blob
    assert buf.eof()


def test_short_read_is_remote_error() -> None:
    buf = Buffer(b"\x01\x02\x03")
    buf.pull_uint16()
    with pytest.raises(BufferReadError) as info:
        buf.pull_uint16()
    assert isinstance(info.value, RemoteProtocolError)
    assert "need 2 octets at offset 2, only 1 left" in str(info.value)


def test_sub_cursor_is_bounded() -> None:
    buf = Buffer(b"\x00\x01\x02\x03\x04")
    sub = buf.sub(2)
    assert sub.pull_uint16() == 1
    with pytest.raises(BufferReadError):
        sub.pull_uint8()
    assert buf.pull_uint8() == 2
    with pytest.raises(BufferReadError):
        buf.sub(5)
    with pytest.raises(BufferReadError):
        buf.pull_bytes(-1)


def test_mac() -> None:
    assert format_mac(parse_mac("00:1A:2b:3c:4d:5e")) == "00:1a:2b:3c:4d:5e"
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac("00:11:22")
