"""Hidden AVPs (RFC 2661 section 4.3) against an independent reading of the RFC text."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.codec import (
    Avp,
    ControlMessage,
    HiddenAvpError,
    decode_control,
    encode_control,
    str_avp,
    uint16_avp,
)
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.hidden import hide, padding_needed, unhide, unhide_subformat
from broker.wire import LocalProtocolError, RemoteProtocolError


def rfc_hide(attr: int, value: bytes, secret: bytes, rv: bytes, pad: bytes) -> bytes:
    """RFC 2661 4.3, literally: subformat = length(2) | value | padding; b1 = MD5(AV + S +
    RV), c(1) = p1 xor b1, b(i) = MD5(S + c(i-1)), c(i) = p(i) xor b(i); a short last
    chunk is XORed with the first octets of its b(i)."""
    p = struct_u16(len(value)) + value + pad
    chunks = [p[i : i + 16] for i in range(0, len(p), 16)]
    out = b""
    prev_c = b""
    for i, chunk in enumerate(chunks):
        if i == 0:
            b = hashlib.md5(struct_u16(attr) + secret + rv).digest()
        else:
            b = hashlib.md5(secret + prev_c).digest()
        c = bytes(x ^ y for x, y in zip(chunk, b[: len(chunk)], strict=True))
        out += c
        prev_c = c
    return out


def struct_u16(v: int) -> bytes:
    return bytes([v >> 8, v & 0xFF])


SECRET = b"tunnel-secret"
RV = bytes(range(16))


def test_known_answer_one_block() -> None:
    # Assigned Tunnel ID 0x1234 hidden with 12 octets of padding: exactly one MD5 block.
    pad = b"\xaa" * 12
    hidden = hide(AvpType.ASSIGNED_TUNNEL_ID, b"\x12\x34", SECRET, RV, pad)
    b1 = hashlib.md5(b"\x00\x09" + SECRET + RV).digest()
    plain = b"\x00\x02\x12\x34" + pad
    assert hidden == bytes(x ^ y for x, y in zip(plain, b1, strict=True))
    assert unhide(AvpType.ASSIGNED_TUNNEL_ID, hidden, SECRET, RV) == b"\x12\x34"


def test_known_answer_multi_block_short_tail() -> None:
    value = b"a-long-calling-number-0123456789"  # 32 octets -> 34-octet subformat
    hidden = hide(AvpType.CALLING_NUMBER, value, SECRET, RV)
    assert len(hidden) == 34
    assert hidden == rfc_hide(AvpType.CALLING_NUMBER, value, SECRET, RV, b"")
    assert unhide_subformat(AvpType.CALLING_NUMBER, hidden, SECRET, RV) == (value, b"")


@settings(max_examples=200, deadline=None)
@given(
    attr=st.integers(0, 0xFFFF),
    value=st.binary(max_size=200),
    secret=st.binary(min_size=1, max_size=40),
    rv=st.binary(min_size=1, max_size=40),
    pad=st.binary(max_size=40),
)
def test_hide_matches_rfc_text_and_round_trips(
    attr: int, value: bytes, secret: bytes, rv: bytes, pad: bytes
) -> None:
    hidden = hide(attr, value, secret, rv, pad)
    assert hidden == rfc_hide(attr, value, secret, rv, pad)
    assert unhide_subformat(attr, hidden, secret, rv) == (value, pad)


def test_rfc_4_3_length_example() -> None:
    """RFC 2661 4.3: a 4-octet value hidden with 12 octets of padding gives a 24-octet AVP,
    and the receiver recovers the 4 octets whatever the padding."""
    value = b"\x00\x00\x00\x07"
    hidden_value = hide(AvpType.CALL_SERIAL_NUMBER, value, SECRET, RV, b"\xee" * 12)
    hidden_avp = (0xC000 | 24).to_bytes(2, "big") + b"\x00\x00\x00\x0f" + hidden_value
    assert len(hidden_avp) == 6 + 4 + 2 + 12 == 24
    body = b"\x80\x08\x00\x00\x00\x00\x00\x0a" + b"\x80\x16\x00\x00\x00\x24" + RV + hidden_avp
    wire = b"\xc8\x02" + (12 + len(body)).to_bytes(2, "big") + bytes(8) + body
    msg = decode_control(wire, SECRET)
    assert msg.get(AvpType.CALL_SERIAL_NUMBER) == Avp(15, value, True, True)
    # our own encoder pads to one MD5 block only: 6 + 2 + 4 + 10
    again = encode_control(msg, SECRET, rand_bytes=bytes)
    assert len(again) == len(wire) - 2


def test_padding_reaches_one_block() -> None:
    assert padding_needed(0) == 14
    assert padding_needed(2) == 12
    assert padding_needed(14) == 0
    assert padding_needed(100) == 0


def _encode_hidden(value: int = 0x4242) -> bytes:
    msg = ControlMessage(
        7, 9, 1, 2, MessageType.ICRQ, (uint16_avp(AvpType.ASSIGNED_SESSION_ID, value, hidden=True),)
    )
    return encode_control(msg, SECRET, rand_bytes=lambda n: b"\x5a" * n)


def test_encoder_inserts_random_vector_and_pads_to_16() -> None:
    wire = _encode_hidden()
    # header 12, Message Type AVP 8, Random Vector AVP 6+16, hidden AVP 6+16
    assert len(wire) == 12 + 8 + 22 + 22
    rv_avp = wire[20:42]
    assert rv_avp[:6] == b"\x80\x16\x00\x00\x00\x24" and rv_avp[6:] == b"\x5a" * 16
    hidden_avp = wire[42:]
    assert hidden_avp[:6] == b"\xc0\x16\x00\x00\x00\x0e"  # M=1 H=1 length 22, type 14
    expected = rfc_hide(14, b"\x42\x42", SECRET, b"\x5a" * 16, b"\x5a" * 12)
    assert hidden_avp[6:] == expected
    msg = decode_control(wire, SECRET)
    assert msg.get(AvpType.ASSIGNED_SESSION_ID) == Avp(14, b"\x42\x42", True, True)
    assert msg.get(AvpType.RANDOM_VECTOR) == Avp(36, b"\x5a" * 16)


def test_encoder_reuses_an_existing_random_vector() -> None:
    rv = b"\x01" * 20
    msg = ControlMessage(
        1,
        0,
        0,
        0,
        MessageType.SCCRQ,
        (
            Avp(AvpType.RANDOM_VECTOR, rv),
            str_avp(AvpType.VENDOR_NAME, "v", hidden=True),
            str_avp(AvpType.HOST_NAME, "h"),
        ),
    )
    wire = encode_control(msg, SECRET, rand_bytes=lambda n: bytes(n))
    assert wire.count(b"\x00\x24") == 1  # still one Random Vector AVP
    assert decode_control(wire, SECRET) == msg


def test_each_hidden_avp_uses_the_latest_random_vector() -> None:
    rv1, rv2 = b"\x01" * 16, b"\x02" * 16
    avps = (
        Avp(AvpType.RANDOM_VECTOR, rv1),
        uint16_avp(AvpType.ASSIGNED_SESSION_ID, 1, hidden=True),
        Avp(AvpType.RANDOM_VECTOR, rv2),
        str_avp(AvpType.CALLING_NUMBER, "555", hidden=True),
    )
    msg = ControlMessage(1, 0, 0, 0, MessageType.ICRQ, avps)
    wire = encode_control(msg, SECRET, rand_bytes=lambda n: bytes(n))
    assert rfc_hide(22, b"555", SECRET, rv2, bytes(11)) in wire
    assert decode_control(wire, SECRET) == msg


def test_wrong_secret_is_rejected() -> None:
    wire = _encode_hidden()
    with pytest.raises(HiddenAvpError) as info:
        decode_control(wire, b"not-the-secret")
    assert info.value.tunnel_id == 7 and info.value.session_id == 9
    assert info.value.message_type == MessageType.ICRQ


def test_no_secret_is_rejected() -> None:
    with pytest.raises(HiddenAvpError):
        decode_control(_encode_hidden(), None)


def test_missing_random_vector_is_rejected() -> None:
    wire = _encode_hidden()
    # drop the Random Vector AVP (22 octets at offset 20) and fix the Length field
    stripped = wire[:20] + wire[42:]
    stripped = stripped[:2] + len(stripped).to_bytes(2, "big") + stripped[4:]
    with pytest.raises(HiddenAvpError, match="Random Vector"):
        decode_control(stripped, SECRET)


def test_random_vector_after_the_hidden_avp_does_not_count() -> None:
    hidden_value = rfc_hide(14, b"\x00\x01", SECRET, RV, bytes(12))
    body = (
        b"\x80\x08\x00\x00\x00\x00\x00\x0a"  # Message Type ICRQ
        + b"\xc0\x16\x00\x00\x00\x0e"
        + hidden_value
        + b"\x80\x16\x00\x00\x00\x24"
        + RV
    )
    wire = b"\xc8\x02" + (12 + len(body)).to_bytes(2, "big") + bytes(8) + body
    with pytest.raises(HiddenAvpError):
        decode_control(wire, SECRET)


def test_bad_padding_length_is_rejected() -> None:
    # a subformat whose original length claims more octets than the AVP holds
    bogus = rfc_hide(14, b"", SECRET, RV, b"")  # 2 octets: length 0, fine so far
    bad = bytes(x ^ y for x, y in zip(bogus, b"\x00\x05", strict=True))  # length 5 > 0
    with pytest.raises(HiddenAvpError, match="original length"):
        unhide(14, bad, SECRET, RV)
    with pytest.raises(HiddenAvpError):
        unhide(14, b"\x01", SECRET, RV)  # shorter than the length field


def test_hidden_value_with_wrong_plain_length_is_rejected() -> None:
    # Assigned Session ID revealed as 3 octets: a bad length for a mandatory AVP
    hidden_value = rfc_hide(14, b"\x00\x01\x02", SECRET, RV, bytes(11))
    body = (
        b"\x80\x08\x00\x00\x00\x00\x00\x0a"
        + b"\x80\x16\x00\x00\x00\x24"
        + RV
        + b"\xc0\x16\x00\x00\x00\x0e"
        + hidden_value
    )
    wire = b"\xc8\x02" + (12 + len(body)).to_bytes(2, "big") + bytes(8) + body
    with pytest.raises(RemoteProtocolError):
        decode_control(wire, SECRET)


def test_encoding_hidden_without_secret_is_a_local_error() -> None:
    msg = ControlMessage(
        1, 0, 0, 0, MessageType.ICRQ, (uint16_avp(AvpType.ASSIGNED_SESSION_ID, 1, hidden=True),)
    )
    with pytest.raises(LocalProtocolError):
        encode_control(msg)
