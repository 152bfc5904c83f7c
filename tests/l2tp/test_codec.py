"""Control message codec round trips (RFC 2661 3.1, 4.1, 4.3) and API behaviour."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import AVP_SPECS
from broker.l2tp.codec import (
    Avp,
    ControlMessage,
    UnknownMandatoryAvp,
    decode_control,
    describe,
    encode_control,
    peek_header,
    result_code_avp,
    str_avp,
    uint16_avp,
)
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.data import encode_data_header
from broker.wire import LocalProtocolError

SECRET = b"s3cret"
KNOWN = sorted(t for t in AVP_SPECS if t not in (AvpType.MESSAGE_TYPE, AvpType.RANDOM_VECTOR))
UNKNOWN_IETF = [20, 40, 41, 45, 47, 100, 0xFFFF]


@st.composite
def known_avp(draw: st.DrawFn, allow_hidden: bool) -> Avp:
    t = draw(st.sampled_from(KNOWN))
    spec = AVP_SPECS[t]
    value = draw(st.binary(min_size=spec.min_len, max_size=min(spec.max_len, 48)))
    hidden = allow_hidden and spec.hidable and draw(st.booleans())
    return Avp(t, value, draw(st.booleans()), hidden)


@st.composite
def skipped_avp(draw: st.DrawFn) -> Avp:
    """AVPs the decoder must drop: unknown IETF or vendor, with M=0."""
    vendor = draw(st.sampled_from([0, 9, 311, 3561]))
    t = draw(st.sampled_from(UNKNOWN_IETF)) if vendor == 0 else draw(st.integers(0, 0xFFFF))
    return Avp(t, draw(st.binary(max_size=20)), False, False, vendor)


@st.composite
def messages(
    draw: st.DrawFn, with_secret: bool, mt: MessageType | None = None
) -> tuple[ControlMessage, ControlMessage]:
    """(message to encode, what decoding must give back)."""
    ids = st.integers(0, 0xFFFF)
    if mt is None:
        mt = draw(st.sampled_from(list(MessageType)))
    sent: list[Avp] = []
    expected: list[Avp] = []
    have_rv = False
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["known", "known", "known", "skip", "rv"]))
        if kind == "skip":
            sent.append(draw(skipped_avp()))
            continue
        if kind == "rv":
            avp = Avp(AvpType.RANDOM_VECTOR, draw(st.binary(min_size=1, max_size=32)))
            have_rv = True
        else:
            avp = draw(known_avp(with_secret))
            if avp.hidden and not have_rv:
                expected.append(Avp(AvpType.RANDOM_VECTOR, b"RV"))  # placeholder, see below
                have_rv = True
        sent.append(avp)
        expected.append(avp)
    header = (draw(ids), draw(ids), draw(ids), draw(ids))
    return ControlMessage(*header, mt, tuple(sent)), ControlMessage(*header, mt, tuple(expected))


def _fill_inserted_rv(expected: ControlMessage, decoded: ControlMessage) -> ControlMessage:
    """The encoder draws the inserted Random Vector from rand_bytes: take it from decoded."""
    avps = tuple(
        d if e.value == b"RV" and e.type == AvpType.RANDOM_VECTOR else e
        for e, d in zip(expected.avps, decoded.avps, strict=False)
    )
    if len(avps) != len(expected.avps):
        return expected
    return ControlMessage(
        expected.tunnel_id,
        expected.session_id,
        expected.ns,
        expected.nr,
        expected.message_type,
        avps,
    )


@settings(max_examples=150, deadline=None)
@given(pair=messages(with_secret=False))
def test_round_trip_plain(pair: tuple[ControlMessage, ControlMessage]) -> None:
    sent, expected = pair
    wire = encode_control(sent)
    assert decode_control(wire) == expected
    assert peek_header(wire) == (True, sent.tunnel_id, sent.session_id)


@pytest.mark.parametrize("mt", list(MessageType), ids=lambda m: m.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_round_trip_with_hidden_avps(mt: MessageType, data: st.DataObject, seed: int) -> None:
    sent, expected = data.draw(messages(with_secret=True, mt=mt))
    rng = random.Random(seed)
    wire = encode_control(sent, SECRET, rand_bytes=rng.randbytes)
    decoded = decode_control(wire, SECRET)
    assert decoded == _fill_inserted_rv(expected, decoded)
    # decoding and re-encoding keeps the Random Vectors: same message again
    again = decode_control(encode_control(decoded, SECRET, rand_bytes=rng.randbytes), SECRET)
    assert again == decoded


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(list(MessageType)))
def test_every_message_type_round_trips_bare(mt: MessageType) -> None:
    msg = ControlMessage(1, 2, 3, 4, mt)
    wire = encode_control(msg)
    assert len(wire) == 20
    assert decode_control(wire) == msg


def test_zlb() -> None:
    zlb = ControlMessage(0x1234, 0, 5, 9, None)
    wire = encode_control(zlb)
    assert wire == bytes.fromhex("c802000c1234000000050009")
    decoded = decode_control(wire)
    assert decoded.is_zlb and decoded == zlb
    assert not ControlMessage(1, 0, 0, 0, MessageType.HELLO).is_zlb


def test_zlb_with_avps_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_control(ControlMessage(1, 0, 0, 0, None, (result_code_avp(1),)))


@pytest.mark.parametrize("field", ["tunnel_id", "session_id", "ns", "nr"], ids=lambda f: f"bad-{f}")
def test_out_of_range_header_is_a_local_error(field: str) -> None:
    values = {"tunnel_id": 1, "session_id": 1, "ns": 1, "nr": 1, field: 0x10000}
    with pytest.raises(LocalProtocolError):
        encode_control(ControlMessage(**values, message_type=MessageType.HELLO))


def test_oversized_avp_is_a_local_error() -> None:
    msg = ControlMessage(1, 0, 0, 0, MessageType.SCCRQ, (str_avp(AvpType.HOST_NAME, "x" * 1018),))
    with pytest.raises(LocalProtocolError):
        encode_control(msg)
    ok = ControlMessage(1, 0, 0, 0, MessageType.SCCRQ, (str_avp(AvpType.HOST_NAME, "x" * 1017),))
    assert decode_control(encode_control(ok)) == ok


def test_sccrq_bytes() -> None:
    msg = ControlMessage(
        0,
        0,
        0,
        0,
        MessageType.SCCRQ,
        (
            Avp(AvpType.PROTOCOL_VERSION, b"\x01\x00"),
            str_avp(AvpType.HOST_NAME, "lac"),
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 0xBEEF),
        ),
    )
    assert encode_control(msg) == bytes.fromhex(
        "c802002d00000000 00000000"
        "8008 0000 0000 0001"
        "8008 0000 0002 0100"
        "8009 0000 0007 6c6163"
        "8008 0000 0009 beef"
    )


def test_get_and_get_all() -> None:
    a = result_code_avp(1)
    b = result_code_avp(2, 0)
    c = uint16_avp(AvpType.ASSIGNED_SESSION_ID, 5)
    v = Avp(AvpType.RESULT_CODE, b"\x00\x03", False, False, vendor_id=9)
    msg = ControlMessage(1, 2, 3, 4, MessageType.CDN, (v, a, c, b))
    assert msg.get(AvpType.RESULT_CODE) == a
    assert msg.get_all(AvpType.RESULT_CODE) == [a, b]
    assert msg.get(AvpType.HOST_NAME) is None
    assert msg.get_all(AvpType.HOST_NAME) == []


def test_unknown_and_vendor_avps_with_m0_are_skipped() -> None:
    msg = ControlMessage(
        1,
        2,
        3,
        4,
        MessageType.ICRQ,
        (
            Avp(47, b"unknown", mandatory=False),
            Avp(1, b"vendor", mandatory=False, vendor_id=9),
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 7),
        ),
    )
    decoded = decode_control(encode_control(msg))
    assert decoded.avps == (uint16_avp(AvpType.ASSIGNED_SESSION_ID, 7),)


def test_vendor_avp_with_m1_is_rejected_with_ids() -> None:
    msg = ControlMessage(
        0x1111,
        0x2222,
        3,
        4,
        MessageType.ICRQ,
        (Avp(5, b"x", mandatory=True, vendor_id=9),),
    )
    with pytest.raises(UnknownMandatoryAvp) as info:
        decode_control(encode_control(msg))
    err = info.value
    assert (err.tunnel_id, err.session_id, err.ns, err.nr) == (0x1111, 0x2222, 3, 4)
    assert (err.message_type, err.avp_type, err.vendor_id) == (MessageType.ICRQ, 5, 9)
    assert (err.result_code, err.error_code) == (2, 8)


def test_trailing_octets_beyond_length_are_ignored() -> None:
    msg = ControlMessage(1, 0, 0, 0, MessageType.HELLO)
    wire = encode_control(msg)
    assert decode_control(wire + b"\x00\x01padding") == msg


def test_peek_header_on_data_messages() -> None:
    assert peek_header(encode_data_header(7, 8)) == (False, 7, 8)
    assert peek_header(encode_data_header(7, 8, 1, 2, payload_len=0)) == (False, 7, 8)
    assert peek_header(encode_data_header(7, 8, offset_pad=4)) == (False, 7, 8)


def test_hiding_an_avp_the_rfc_forbids_is_a_local_error() -> None:
    for t in (AvpType.RESULT_CODE, AvpType.HOST_NAME, AvpType.RANDOM_VECTOR):
        msg = ControlMessage(1, 0, 0, 0, MessageType.SCCRQ, (Avp(t, b"\x00\x01", hidden=True),))
        with pytest.raises(LocalProtocolError):
            encode_control(msg, SECRET)


def test_describe_names_avps_and_redacts_credentials() -> None:
    msg = ControlMessage(
        7,
        9,
        1,
        2,
        MessageType.ICCN,
        (
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 66, hidden=True),
            str_avp(AvpType.PROXY_AUTHEN_NAME, "user@realm"),
            Avp(AvpType.PROXY_AUTHEN_RESPONSE, b"password", mandatory=False),
            result_code_avp(2, 8, "why"),
            Avp(99, b"\x01", mandatory=False, vendor_id=9),
        ),
    )
    text = describe(msg)
    assert text.startswith("ICCN tid=7 sid=9 ns=1 nr=2 ")
    assert "ASSIGNED_SESSION_ID(H)=66" in text
    assert "PROXY_AUTHEN_NAME='user@realm'" in text
    assert "password" not in text and "PROXY_AUTHEN_RESPONSE=<8 octets>" in text
    assert "RESULT_CODE=(2, 8, 'why')" in text and "9:99=01" in text
    assert describe(ControlMessage(1, 0, 0, 0, None)) == "ZLB tid=1 sid=0 ns=0 nr=0"
