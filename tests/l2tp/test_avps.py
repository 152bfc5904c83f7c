"""AVP registry and typed value helpers (RFC 2661 4.4, RFC 3145 2)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import (
    AVP_SPECS,
    Avp,
    MalformedAvp,
    ValueKind,
    accm_avp,
    bytes_avp,
    call_errors_avp,
    challenge_response,
    empty_avp,
    parse_accm,
    parse_call_errors,
    parse_ppp_disconnect_cause,
    parse_proxy_authen_id,
    parse_q931_cause,
    parse_result_code,
    parse_str,
    parse_uint16,
    parse_uint32,
    parse_uint64,
    ppp_disconnect_cause_avp,
    protocol_version_avp,
    proxy_authen_id_avp,
    q931_cause_avp,
    result_code_avp,
    spec_for,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.constants import AvpType, MessageType
from broker.wire import LocalProtocolError

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
text = st.text(max_size=40)


def test_registry_covers_every_avp_type() -> None:
    assert set(AVP_SPECS) == set(AvpType)
    for t, spec in AVP_SPECS.items():
        assert spec.type == t and spec.name == AvpType(t).name
        assert 0 <= spec.min_len <= spec.max_len <= 1017


@pytest.mark.parametrize(
    ("t", "hidable", "mandatory", "lo", "hi"),
    [
        (AvpType.MESSAGE_TYPE, False, True, 2, 2),
        (AvpType.RESULT_CODE, False, True, 2, 1017),
        (AvpType.TIE_BREAKER, False, False, 8, 8),
        (AvpType.HOST_NAME, False, True, 1, 1017),
        (AvpType.RECEIVE_WINDOW_SIZE, False, True, 2, 2),
        (AvpType.CHALLENGE_RESPONSE, True, True, 16, 16),
        (AvpType.Q931_CAUSE, False, True, 3, 1017),
        (AvpType.CALL_ERRORS, True, True, 26, 26),
        (AvpType.ACCM, True, True, 10, 10),
        (AvpType.RANDOM_VECTOR, False, True, 1, 1017),
        (AvpType.SEQUENCING_REQUIRED, False, True, 0, 0),
        (AvpType.PROXY_AUTHEN_ID, True, False, 2, 2),
        (AvpType.PHYSICAL_CHANNEL_ID, True, False, 4, 4),
        (AvpType.RX_CONNECT_SPEED, True, False, 4, 4),
        (AvpType.PPP_DISCONNECT_CAUSE, True, False, 5, 1017),
    ],
)
def test_registry_rows_follow_the_rfc(
    t: AvpType, hidable: bool, mandatory: bool, lo: int, hi: int
) -> None:
    spec = AVP_SPECS[t]
    assert (spec.hidable, spec.mandatory, spec.min_len, spec.max_len) == (
        hidable,
        mandatory,
        lo,
        hi,
    )


def test_spec_for_vendor_is_unknown() -> None:
    assert spec_for(AvpType.HOST_NAME) is AVP_SPECS[AvpType.HOST_NAME]
    assert spec_for(AvpType.HOST_NAME, vendor_id=9) is None
    assert spec_for(20) is None


def test_builders_use_the_rfc_m_bit() -> None:
    assert uint64_avp(AvpType.TIE_BREAKER, 1).mandatory is False
    assert str_avp(AvpType.HOST_NAME, "x").mandatory is True
    assert uint16_avp(AvpType.FIRMWARE_REVISION, 1).mandatory is False
    assert uint16_avp(AvpType.FIRMWARE_REVISION, 1, mandatory=True).mandatory is True
    assert bytes_avp(999, b"").mandatory is True  # unknown type: M=1 unless told
    assert empty_avp(AvpType.SEQUENCING_REQUIRED) == Avp(39, b"", True, False)
    assert protocol_version_avp() == Avp(2, b"\x01\x00")
    assert ppp_disconnect_cause_avp(1, 0xC021, 0).mandatory is False


@settings(max_examples=100, deadline=None)
@given(a=u16, b=u32, c=st.integers(0, 2**64 - 1), s=text)
def test_scalar_round_trips(a: int, b: int, c: int, s: str) -> None:
    assert parse_uint16(uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, a).value) == a
    assert parse_uint32(uint32_avp(AvpType.TX_CONNECT_SPEED, b).value) == b
    assert parse_uint64(uint64_avp(AvpType.TIE_BREAKER, c).value) == c
    assert parse_str(str_avp(AvpType.HOST_NAME, s).value) == s


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=30))
def test_strings_survive_arbitrary_octets(raw: bytes) -> None:
    assert str_avp(AvpType.CALLING_NUMBER, parse_str(raw)).value == raw


@settings(max_examples=100, deadline=None)
@given(result=u16, error=st.none() | u16, message=text)
def test_result_code_round_trip(result: int, error: int | None, message: str) -> None:
    value = result_code_avp(result, error, message).value
    got = parse_result_code(value)
    if error is None and not message:
        assert got == (result, None, "") and len(value) == 2
    else:
        assert got == (result, 0 if error is None else error, message)


@settings(max_examples=100, deadline=None)
@given(cause=u16, msg=st.integers(0, 255), advisory=text)
def test_q931_round_trip(cause: int, msg: int, advisory: str) -> None:
    assert parse_q931_cause(q931_cause_avp(cause, msg, advisory).value) == (cause, msg, advisory)


@settings(max_examples=100, deadline=None)
@given(code=u16, proto=u16, direction=st.integers(0, 255), message=text)
def test_ppp_disconnect_cause_round_trip(
    code: int, proto: int, direction: int, message: str
) -> None:
    avp = ppp_disconnect_cause_avp(code, proto, direction, message)
    assert avp.type == 46
    assert parse_ppp_disconnect_cause(avp.value) == (code, proto, direction, message)


def test_ppp_disconnect_cause_bytes() -> None:
    # RFC 3145: Disconnect Code, Control Protocol Number, Direction, then text
    value = ppp_disconnect_cause_avp(3, 0xC021, 1, "bye").value
    assert value == b"\x00\x03\xc0\x21\x01bye"


@settings(max_examples=100, deadline=None)
@given(counters=st.tuples(u32, u32, u32, u32, u32, u32), s=u32, r=u32, ident=st.integers(0, 255))
def test_structured_round_trips(
    counters: tuple[int, int, int, int, int, int], s: int, r: int, ident: int
) -> None:
    assert parse_call_errors(call_errors_avp(*counters).value) == counters
    assert len(call_errors_avp(*counters).value) == 26
    assert parse_accm(accm_avp(s, r).value) == (s, r)
    assert accm_avp(s, r).value[:2] == b"\x00\x00"
    assert parse_proxy_authen_id(proxy_authen_id_avp(ident).value) == ident
    assert proxy_authen_id_avp(ident).value == bytes([0, ident])


@pytest.mark.parametrize(
    ("parser", "value"),
    [
        (parse_uint16, b"\x00"),
        (parse_uint32, b"\x00\x00\x00"),
        (parse_uint64, bytes(9)),
        (parse_result_code, b"\x00"),
        (parse_result_code, b"\x00\x01\x00"),
        (parse_q931_cause, b"\x00\x01"),
        (parse_proxy_authen_id, b"\x01"),
        (parse_call_errors, bytes(25)),
        (parse_accm, bytes(11)),
        (parse_ppp_disconnect_cause, bytes(4)),
    ],
)
def test_parsers_reject_bad_lengths(parser: object, value: bytes) -> None:
    assert callable(parser)
    with pytest.raises(MalformedAvp):
        parser(value)


def test_builders_reject_out_of_range_values() -> None:
    with pytest.raises(LocalProtocolError):
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 0x10000)
    with pytest.raises(LocalProtocolError):
        uint32_avp(AvpType.TX_CONNECT_SPEED, -1)
    with pytest.raises(LocalProtocolError):
        proxy_authen_id_avp(256)


def test_challenge_response_follows_rfc_5_1_1() -> None:
    secret, challenge = b"secret", b"\x01\x02\x03\x04"
    expected = hashlib.md5(b"\x02" + secret + challenge).digest()
    assert challenge_response(MessageType.SCCRP, secret, challenge) == expected
    assert (
        challenge_response(MessageType.SCCCN, secret, challenge)
        == hashlib.md5(b"\x03" + secret + challenge).digest()
    )


def test_value_kinds_are_all_used() -> None:
    assert {spec.kind for spec in AVP_SPECS.values()} == set(ValueKind)
