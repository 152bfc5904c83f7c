"""Data message header (RFC 2661 3.1): round trips over every optional field, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import MalformedHeader
from broker.l2tp.data import DataHeader, decode_data, encode_data, encode_data_header, split_data
from broker.wire import LocalProtocolError

u16 = st.integers(0, 0xFFFF)


@st.composite
def headers(draw: st.DrawFn) -> DataHeader:
    seq = draw(st.booleans())
    return DataHeader(
        tunnel_id=draw(u16),
        session_id=draw(u16),
        ns=draw(u16) if seq else None,
        nr=draw(u16) if seq else None,
        offset_pad=draw(st.sampled_from([0, 0, 1, 4, 300])),
        priority=draw(st.booleans()),
        length=0 if draw(st.booleans()) else None,  # 0 = "put a Length field"
    )


@settings(max_examples=300, deadline=None)
@given(header=headers(), payload=st.binary(max_size=64), trailer=st.binary(max_size=8))
def test_round_trip(header: DataHeader, payload: bytes, trailer: bytes) -> None:
    wire = encode_data(header, payload)
    decoded, offset = decode_data(wire)
    assert wire[offset:] == payload
    expected_length = None if header.length is None else len(wire)
    assert decoded == DataHeader(
        header.tunnel_id,
        header.session_id,
        header.ns,
        header.nr,
        header.offset_pad,
        header.priority,
        expected_length,
    )
    if header.length is not None:  # octets beyond Length are not payload
        assert split_data(wire + trailer) == (decoded, payload)
    else:
        assert split_data(wire) == (decoded, payload)


def test_minimal_header_bytes() -> None:
    assert encode_data_header(0x1234, 0x5678) == bytes.fromhex("000212345678")
    wire = encode_data_header(1, 2, 3, 4, payload_len=4) + b"\xff\x03\xc0\x21"
    assert wire[:12] == bytes.fromhex("4802 0010 0001 0002 0003 0004")
    header, offset = decode_data(wire)
    assert header == DataHeader(1, 2, 3, 4, 0, False, 16) and offset == 12


def test_offset_padding_is_skipped() -> None:
    wire = bytes.fromhex("0202 0001 0002 0003") + b"\xaa\xbb\xcc" + b"\xff\x03"
    header, offset = decode_data(wire)
    assert header.offset_pad == 3 and wire[offset:] == b"\xff\x03"


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00\x02\x00\x01\x00",  # 5 octets
        b"\x00\x03\x00\x01\x00\x02",  # version 3
        b"\x80\x02\x00\x01\x00\x02",  # T bit: control message
        b"\x08\x02\x00\x01\x00\x02\x00",  # S bit but Ns/Nr truncated
        b"\x02\x02\x00\x01\x00\x02\x00\x09\x00",  # offset pad overruns
        b"\x40\x02\x00\x20\x00\x01\x00\x02",  # Length beyond datagram
        b"\x40\x02\x00\x04\x00\x01\x00\x02",  # Length inside the header
        b"\x40\x02\x00",  # L bit, truncated
    ],
)
def test_malformed(wire: bytes) -> None:
    with pytest.raises(MalformedHeader):
        decode_data(wire)


def test_encode_errors_are_local() -> None:
    with pytest.raises(LocalProtocolError):
        encode_data_header(1, 2, ns=1)
    with pytest.raises(LocalProtocolError):
        encode_data_header(0x10000, 2)
    with pytest.raises(LocalProtocolError):
        encode_data_header(1, 2, offset_pad=0x10000)
