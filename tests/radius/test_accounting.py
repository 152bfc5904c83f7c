"""Accounting records (RFC 2866/2867) and their wire form."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.radius.accounting import (
    AcctRecord,
    AcctStatusType,
    AcctTerminateCause,
    Counters,
    InvalidRecord,
    NasInfo,
    SessionIdAllocator,
    SessionInfo,
    TunnelInfo,
    accounting_off_record,
    accounting_on_record,
    check_record,
    encode_accounting_request,
    interim_record,
    split_gigawords,
    start_record,
    stop_record,
    tunnel_link_record,
    tunnel_record,
)
from broker.radius.constants import Code
from broker.radius.dictionary import load_dictionary
from broker.radius.packet import (
    decode_packet,
    decode_value,
    encode_response,
    verify_request,
    verify_response,
)

NAS = NasInfo("192.0.2.1", "lac-1")
TUN = TunnelInfo("192.0.2.1", "198.51.100.7", "4711", assignment_id="grp-a")
SESSION = SessionInfo(
    acct_session_id="n1-00000001-0000002a",
    user_name="alice@isp.example",
    nas=NAS,
    nas_port_id="eth1:100",
    calling_station_id="02:00:00:00:00:01",
    class_attrs=(b"\x01class-a", b"class-b"),
    tunnel=TUN,
)


def test_start_has_session_attributes() -> None:
    r = start_record(SESSION, 1_700_000_000.5)
    assert r.status == AcctStatusType.START
    assert r.get("Acct-Session-Id") == SESSION.acct_session_id
    assert r.get("User-Name") == "alice@isp.example"
    assert r.get("NAS-IP-Address") == "192.0.2.1"
    assert r.get("NAS-Identifier") == "lac-1"
    assert r.get("NAS-Port-Type") == 5
    assert r.get("NAS-Port-Id") == "eth1:100"
    assert r.get("Calling-Station-Id") == "02:00:00:00:00:01"
    assert r.get("Acct-Authentic") == 1
    assert r.get("Event-Timestamp") == 1_700_000_000
    assert r.get("Tunnel-Server-Endpoint") == "198.51.100.7"
    assert r.get("Acct-Session-Time") is None
    assert [v for n, v in r.attributes if n == "Class"] == [b"\x01class-a", b"class-b"]
    assert r.created == 1_700_000_000.5


def test_stop_gigawords_split() -> None:
    big = 5 * 2**32 + 123
    c = Counters(input_octets=big, output_octets=2**32 - 1, input_packets=10, output_packets=20)
    r = stop_record(SESSION, c, 3600, AcctTerminateCause.LOST_CARRIER, 1000.0)
    assert r.get("Acct-Input-Octets") == 123
    assert r.get("Acct-Input-Gigawords") == 5
    assert r.get("Acct-Output-Octets") == 2**32 - 1
    assert r.get("Acct-Output-Gigawords") == 0
    assert r.get("Acct-Input-Packets") == 10
    assert r.get("Acct-Session-Time") == 3600
    assert r.get("Acct-Terminate-Cause") == 2
    assert r.record_id != start_record(SESSION, 1000.0).record_id


@given(st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=200, deadline=None)
def test_gigawords_property(v: int) -> None:
    lo, hi = split_gigawords(v)
    assert 0 <= lo < 2**32 and 0 <= hi < 2**32
    assert hi * 2**32 + lo == v


def test_interim_ids_differ_by_time() -> None:
    a = interim_record(SESSION, Counters(), 60, 1.0)
    b = interim_record(SESSION, Counters(), 120, 2.0)
    assert a.status == AcctStatusType.INTERIM_UPDATE
    assert a.record_id != b.record_id


def test_tunnel_records() -> None:
    s = tunnel_record(AcctStatusType.TUNNEL_START, "t-1", NAS, TUN, 5.0)
    assert s.status == 9
    assert s.get("Tunnel-Type") == 3 and s.get("Tunnel-Medium-Type") == 1
    assert s.get("Acct-Tunnel-Connection") == "4711"
    assert s.get("Tunnel-Client-Endpoint") == "192.0.2.1"
    assert s.get("Tunnel-Assignment-Id") == "grp-a"
    st_ = tunnel_record(
        AcctStatusType.TUNNEL_STOP,
        "t-1",
        NAS,
        TUN,
        9.0,
        counters=Counters(packets_lost=3),
        session_time=4,
        cause=AcctTerminateCause.HOST_REQUEST,
    )
    assert st_.status == 10
    assert st_.get("Acct-Tunnel-Packets-Lost") == 3
    assert st_.get("Acct-Terminate-Cause") == 18
    rej = tunnel_record(AcctStatusType.TUNNEL_REJECT, "t-2", NAS, TUN, 9.0)
    assert rej.status == 11 and rej.get("Acct-Terminate-Cause") is not None
    with pytest.raises(ValueError):
        tunnel_record(AcctStatusType.START, "t-1", NAS, TUN, 1.0)
    for status in (12, 13, 14):
        r = tunnel_link_record(AcctStatusType(status), SESSION, 1.0)
        assert r.status == status
        assert r.get("Acct-Tunnel-Connection") == "4711"
    with pytest.raises(ValueError):
        tunnel_link_record(AcctStatusType.TUNNEL_START, SESSION, 1.0)


def test_accounting_on_off() -> None:
    on = accounting_on_record(NAS, "n1-boot", 1.0)
    off = accounting_off_record(NAS, "n1-boot", 2.0)
    assert on.status == 7 and off.status == 8
    assert on.get("NAS-Identifier") == "lac-1"
    assert off.get("Acct-Terminate-Cause") == AcctTerminateCause.ADMIN_REBOOT


def test_session_id_allocator_unique() -> None:
    a = SessionIdAllocator("n1", 0x5F00)
    ids = [a.allocate() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids[0] == "n1-00005f00-00000000"
    assert SessionIdAllocator("n1", 0x5F01).allocate() not in ids


def _tlv(code: int, value: bytes) -> bytes:
    return bytes((code, len(value) + 2)) + value


def test_golden_accounting_request_independent_md5() -> None:
    """The packet and Request Authenticator built by hand with struct + hashlib (RFC 2866 s3)."""
    r = AcctRecord(
        "x",
        1,
        (("User-Name", "bob"), ("Acct-Session-Id", "s1"), ("NAS-IP-Address", "192.0.2.9")),
        10.0,
    )
    secret = b"testing123"
    raw = encode_accounting_request(r, 77, secret, delay=3)
    attrs = (
        _tlv(40, struct.pack("!I", 1))
        + _tlv(1, b"bob")
        + _tlv(44, b"s1")
        + _tlv(4, bytes([192, 0, 2, 9]))
        + _tlv(41, struct.pack("!I", 3))
    )
    length = 20 + len(attrs)
    head = struct.pack("!BBH", 4, 77, length)
    auth = hashlib.md5(head + b"\x00" * 16 + attrs + secret).digest()
    assert raw == head + auth + attrs
    assert verify_request(raw, secret)
    assert not verify_request(raw, b"wrong")
    pkt = decode_packet(raw)
    assert pkt.code == Code.ACCOUNTING_REQUEST and pkt.identifier == 77
    # Accounting-Response: MD5(Code+ID+Length+RequestAuth+Attributes+Secret) (RFC 2866 s4)
    resp_head = struct.pack("!BBH", 5, 77, 20)
    resp = resp_head + hashlib.md5(resp_head + auth + secret).digest()
    assert verify_response(resp, auth, secret, require_message_authenticator=False)
    assert encode_response(5, 77, [], secret, auth, add_message_authenticator=False) == resp
    assert not verify_response(resp, bytes(16), secret, require_message_authenticator=False)
    bad = resp[:-1] + bytes([resp[-1] ^ 1])
    assert not verify_response(bad, auth, secret, require_message_authenticator=False)


_values = {
    "User-Name": st.text(max_size=60).filter(lambda s: len(s.encode()) <= 253),
    "Class": st.binary(max_size=253),
    "Acct-Session-Time": st.integers(0, 2**32 - 1),
    "NAS-IP-Address": st.ip_addresses(v=4).map(str),
    "Tunnel-Type": st.integers(0, 2**24 - 1),
}


@st.composite
def records(draw: st.DrawFn) -> AcctRecord:
    names = draw(st.lists(st.sampled_from(sorted(_values)), max_size=8))
    attrs = tuple((n, draw(_values[n])) for n in names)
    return AcctRecord(
        draw(st.text(min_size=1, max_size=40)),
        draw(st.sampled_from([int(s) for s in AcctStatusType])),
        attrs,
        draw(st.floats(min_value=0, max_value=4e9, allow_nan=False)),
    )


@given(records())
@settings(max_examples=200, deadline=None)
def test_record_serialization_round_trip(r: AcctRecord) -> None:
    assert AcctRecord.from_bytes(r.to_bytes()) == r


@given(records(), st.integers(0, 255), st.integers(0, 10**6))
@settings(max_examples=200, deadline=None)
def test_record_wire_round_trip(r: AcctRecord, ident: int, delay: int) -> None:
    raw = encode_accounting_request(r, ident, b"sec", delay=delay)
    assert verify_request(raw, b"sec")
    pkt = decode_packet(raw)
    names = load_dictionary().attrindex
    decoded = [
        (names.GetBackward(c), decode_value(names.GetBackward(c), v)) for c, v in pkt.attributes
    ]
    assert decoded[0] == ("Acct-Status-Type", r.status)
    assert decoded[-1] == ("Acct-Delay-Time", delay)
    expected = [
        (n, v.encode().decode("utf-8", errors="replace") if isinstance(v, str) else v)
        for n, v in r.attributes
    ]
    assert decoded[1:-1] == expected


@pytest.mark.parametrize(
    "attrs",
    [
        (("No-Such-Attribute", "x"),),
        (("User-Name", 5),),
        (("NAS-IP-Address", "300.1.1.1"),),
        (("Acct-Session-Time", -1),),
        (("Acct-Session-Time", 2**32),),
        (("User-Name", "x" * 300),),
        tuple(("Class", bytes(250)) for _ in range(20)),
    ],
)
def test_check_record_refuses_unencodable(attrs: tuple[tuple[str, object], ...]) -> None:
    with pytest.raises(InvalidRecord):
        check_record(AcctRecord("r", 1, attrs, 0.0))  # type: ignore[arg-type]
    check_record(start_record(SESSION, 1.0))
