"""Malformed control messages: every one raises a RemoteProtocolError subclass, nothing else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import (
    AVP_SPECS,
    L2tpError,
    MalformedAvp,
    MalformedHeader,
    UnknownMandatoryAvp,
    UnknownMessageType,
)
from broker.l2tp.codec import (
    ControlMessage,
    decode_control,
    encode_control,
    peek_header,
    result_code_avp,
    str_avp,
    uint16_avp,
)
from broker.l2tp.constants import AvpType, ErrorCode, MessageType
from broker.l2tp.data import decode_data, split_data
from broker.wire import RemoteProtocolError

SECRET = b"s3cret"


def _good() -> bytes:
    msg = ControlMessage(
        0x0A0B,
        0x0C0D,
        5,
        6,
        MessageType.ICRQ,
        (
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 0x42, hidden=True),
            str_avp(AvpType.CALLING_NUMBER, "12345"),
        ),
    )
    return encode_control(msg, SECRET, rand_bytes=lambda n: b"\x33" * n)


GOOD = _good()


def _with_length(wire: bytes, length: int) -> bytes:
    return wire[:2] + length.to_bytes(2, "big") + wire[4:]


def _message(*avps: bytes, header: bytes = b"\xc8\x02") -> bytes:
    body = b"\x80\x08\x00\x00\x00\x00\x00\x0a" + b"".join(avps)  # Message Type ICRQ first
    return header + (12 + len(body)).to_bytes(2, "big") + b"\x00\x01\x00\x02\x00\x03\x00\x04" + body


CASES: dict[str, tuple[bytes, type[RemoteProtocolError]]] = {
    "zero-length": (b"", MalformedHeader),
    "7-byte datagram": (GOOD[:7], MalformedHeader),
    "truncated header (11 octets)": (GOOD[:11], MalformedHeader),
    "wrong version 3": (b"\xc8\x03" + GOOD[2:], MalformedHeader),
    "wrong version 1 (L2F)": (b"\xc8\x01" + GOOD[2:], MalformedHeader),
    "data message": (b"\x48\x02" + GOOD[2:], MalformedHeader),
    "no L bit": (b"\x88\x02" + GOOD[2:], MalformedHeader),
    "no S bit": (b"\xc0\x02" + GOOD[2:], MalformedHeader),
    "O bit set": (b"\xca\x02" + GOOD[2:], MalformedHeader),
    "Length larger than datagram": (_with_length(GOOD, len(GOOD) + 1), MalformedHeader),
    "Length shorter than header": (_with_length(GOOD, 11), MalformedHeader),
    "Length cuts an AVP": (_with_length(GOOD, len(GOOD) - 1), MalformedAvp),
    "datagram cut inside an AVP": (_with_length(GOOD[:-3], len(GOOD) - 3), MalformedAvp),
    "trailing partial AVP header": (_message(b"\x80\x06\x00"), MalformedAvp),
    "AVP length < 6": (_message(b"\x80\x05\x00\x00\x00\x07"), MalformedAvp),
    "zero-length AVP": (_message(b"\x80\x00\x00\x00\x00\x07"), MalformedAvp),
    "AVP length overruns": (_message(b"\x80\x20\x00\x00\x00\x07abc"), MalformedAvp),
    "first AVP not Message Type": (
        b"\xc8\x02\x00\x14" + bytes(8) + b"\x80\x08\x00\x00\x00\x09\x00\x01",
        MalformedAvp,
    ),
    "hidden Message Type": (
        b"\xc8\x02\x00\x14" + bytes(8) + b"\xc0\x08\x00\x00\x00\x00\x00\x01",
        MalformedAvp,
    ),
    "Message Type value of 3 octets": (
        b"\xc8\x02\x00\x15" + bytes(8) + b"\x80\x09\x00\x00\x00\x00\x00\x01\x00",
        MalformedAvp,
    ),
    "unknown message type M=1": (
        b"\xc8\x02\x00\x14" + bytes(8) + b"\x80\x08\x00\x00\x00\x00\x00\x05",
        UnknownMessageType,
    ),
    "unknown M=1 AVP": (_message(b"\x80\x07\x00\x00\x00\x2fx"), UnknownMandatoryAvp),
    "vendor M=1 AVP": (_message(b"\x80\x07\x00\x09\x00\x01x"), UnknownMandatoryAvp),
    "reserved bit set with M=1": (
        _message(b"\x84\x08\x00\x00\x00\x0e\x00\x01"),
        UnknownMandatoryAvp,
    ),
    "mandatory AVP with a bad length": (
        _message(b"\x80\x09\x00\x00\x00\x0e\x00\x01\x02"),
        MalformedAvp,
    ),
    "empty Host Name": (_message(b"\x80\x06\x00\x00\x00\x07"), MalformedAvp),
    "Challenge Response of 15 octets": (
        _message(b"\x80\x15\x00\x00\x00\x0d" + bytes(15)),
        MalformedAvp,
    ),
    "hidden AVP without secret": (GOOD, MalformedAvp),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_raises_remote_protocol_error(name: str) -> None:
    data, kind = CASES[name]
    with pytest.raises(kind) as info:
        decode_control(data)
    assert isinstance(info.value, RemoteProtocolError)


def test_unknown_mandatory_avp_carries_ids_and_codes() -> None:
    data, _ = CASES["unknown M=1 AVP"]
    with pytest.raises(UnknownMandatoryAvp) as info:
        decode_control(data)
    err = info.value
    assert (err.tunnel_id, err.session_id, err.ns, err.nr) == (1, 2, 3, 4)
    assert err.message_type == MessageType.ICRQ
    assert (err.avp_type, err.vendor_id) == (0x2F, 0)
    assert (err.result_code, err.error_code) == (2, ErrorCode.UNKNOWN_MANDATORY_AVP)


def test_unknown_message_type_says_whether_mandatory() -> None:
    for m_bit, mandatory in ((b"\x80", True), (b"\x00", False)):
        data = b"\xc8\x02\x00\x14\x00\x07" + bytes(6) + m_bit + b"\x08\x00\x00\x00\x00\x00\x63"
        with pytest.raises(UnknownMessageType) as info:
            decode_control(data)
        assert info.value.mandatory is mandatory
        assert info.value.message_type == 99 and info.value.tunnel_id == 7


def test_bad_length_errors_carry_error_code_2() -> None:
    with pytest.raises(L2tpError) as info:
        decode_control(CASES["AVP length < 6"][0])
    assert (info.value.result_code, info.value.error_code) == (2, ErrorCode.BAD_LENGTH)
    assert info.value.message_type == MessageType.ICRQ


def test_optional_avp_with_bad_length_is_skipped() -> None:
    # Firmware Revision (M=0) with 3 octets: treated as unrecognized, dropped
    msg = decode_control(_message(b"\x00\x09\x00\x00\x00\x06abc"))
    assert msg.avps == ()


def test_reserved_bit_with_m0_is_skipped() -> None:
    msg = decode_control(_message(b"\x04\x08\x00\x00\x00\x0e\x00\x01"))
    assert msg.avps == ()


def test_result_code_with_three_octets_fails_to_parse() -> None:
    from broker.l2tp.avps import parse_result_code

    with pytest.raises(MalformedAvp):
        parse_result_code(b"\x00\x01\x00")
    assert parse_result_code(result_code_avp(2, 7, "try x").value) == (2, 7, "try x")


def _only_remote_errors(data: bytes) -> None:
    """Any exception other than RemoteProtocolError propagates and fails the test."""
    for secret in (None, SECRET):
        with contextlib.suppress(RemoteProtocolError):
            decode_control(data, secret)
    with contextlib.suppress(RemoteProtocolError):
        peek_header(data)
    with contextlib.suppress(RemoteProtocolError):
        split_data(data)
    with contextlib.suppress(RemoteProtocolError):
        decode_data(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
@example(b"")
@example(b"\xc8\x02\x00\x0c" + bytes(8))
def test_random_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    _only_remote_errors(data)


@settings(max_examples=400, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(GOOD)),
)
def test_mutated_messages_raise_only_remote_protocol_errors(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(GOOD)
    for pos, value in edits:
        data[pos] = value
    _only_remote_errors(bytes(data[:cut]))
    _only_remote_errors(bytes(data))


NOT_HIDABLE = sorted(
    t for t, spec in AVP_SPECS.items() if not spec.hidable and t != AvpType.MESSAGE_TYPE
)


def _raw_avp(t: int, value: bytes, *, m: bool, h: bool) -> bytes:
    word = 6 + len(value) | (0x8000 if m else 0) | (0x4000 if h else 0)
    return word.to_bytes(2, "big") + b"\x00\x00" + t.to_bytes(2, "big") + value


def test_not_hidable_table_matches_rfc_2661_section_4_4() -> None:
    assert set(NOT_HIDABLE) == {
        AvpType.RESULT_CODE, AvpType.PROTOCOL_VERSION, AvpType.TIE_BREAKER, AvpType.HOST_NAME,
        AvpType.RECEIVE_WINDOW_SIZE, AvpType.Q931_CAUSE, AvpType.RANDOM_VECTOR,
        AvpType.SEQUENCING_REQUIRED,
    }  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    t=st.sampled_from(NOT_HIDABLE),
    value=st.binary(min_size=16, max_size=40),
    with_secret=st.booleans(),
    with_vector=st.booleans(),
)
def test_h_bit_on_a_not_hidable_mandatory_avp_is_malformed(
    t: int, value: bytes, with_secret: bool, with_vector: bool
) -> None:
    """RFC 2661 4.4: the H bit MUST be 0 on these; M=1 -> MalformedAvp (counted and torn
    down by the engine like any malformed mandatory AVP), whether or not it could be
    revealed, and the error keeps the header context so the engine can answer."""
    rv = _raw_avp(AvpType.RANDOM_VECTOR, b"\x11" * 16, m=True, h=False)
    data = _message(*([rv] if with_vector else []), _raw_avp(t, value, m=True, h=True))
    with pytest.raises(MalformedAvp, match="MUST NOT be hidden") as info:
        decode_control(data, SECRET if with_secret else None)
    assert info.value.ns == 3 and info.value.nr == 4 and info.value.message_type == 10


@settings(max_examples=30, deadline=None)
@given(t=st.sampled_from(NOT_HIDABLE), value=st.binary(min_size=1, max_size=40))
def test_h_bit_on_a_not_hidable_optional_avp_is_skipped(t: int, value: bytes) -> None:
    keep = str_avp(AvpType.CALLING_NUMBER, "555")
    data = _message(
        _raw_avp(t, value, m=False, h=True),
        _raw_avp(keep.type, keep.value, m=True, h=False),
    )
    msg = decode_control(data, SECRET)
    assert msg.avps == (keep,)


def test_hidden_tie_breaker_skipped_and_plain_one_kept() -> None:
    plain = _raw_avp(AvpType.TIE_BREAKER, b"\x01" * 8, m=False, h=False)
    hidden = _raw_avp(AvpType.TIE_BREAKER, b"\x02" * 24, m=False, h=True)
    msg = decode_control(_message(hidden, plain), SECRET)
    assert [a.value for a in msg.get_all(AvpType.TIE_BREAKER)] == [b"\x01" * 8]
