"""PPPoE codec: golden vectors from tcpdump's captures, round trips, malformed input."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.pppoe import (
    Code,
    DiscoveryPacket,
    LineInfo,
    Tag,
    TagType,
    decode_discovery,
    decode_line_info,
    decode_session_frame,
    encode_discovery,
    encode_line_info,
    encode_session_frame,
)
from broker.pppoe.constants import DSL_FORUM_VENDOR_ID, ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.pppoe.tags import TAG_REGISTRY, decode_vendor_specific, encode_vendor_specific
from broker.wire import LocalProtocolError, RemoteProtocolError
from tests.support.pcap import read_pcap

CAPTURES = Path("/work/shared/captures")
# tcpdump's captures (BSD licence, LICENSE.tcpdump) vendored so tests do not depend on /work.
VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "pppoe"


def _split_eth(frame: bytes) -> tuple[bytes, bytes, int, bytes]:
    return frame[:6], frame[6:12], int.from_bytes(frame[12:14], "big"), frame[14:]


# -- golden vectors ----------------------------------------------------------------------
def test_golden_padi_from_tcpdump_capture() -> None:
    """pppoe.pcap + pppoe.out (tcpdump test suite). tshark 4.x agreed: PADI, session 0,
    length 18, PPP-Max-Payload 05dc, Host-Uniq 16372c16 (it hides the empty Service-Name)."""
    frames = read_pcap(VECTORS / "pppoe.pcap")
    expected = (VECTORS / "pppoe.out").read_text().splitlines()
    assert len(frames) == len(expected) == 1
    _ts, frame = frames[0]
    dst, src, ethertype, payload = _split_eth(frame)
    assert ethertype == ETH_P_PPP_DISC
    assert dst == b"\xff" * 6 and src.hex() == "000c29903a8b"
    p = decode_discovery(payload)
    assert encode_discovery(p) == payload  # byte for byte
    # "PPPoE PADI [Service-Name] [PPP-Max-Payload 0x05DC] [Host-Uniq 0x16372C16]"
    line = expected[0]
    assert "PPPoE PADI" in line and p.code is Code.PADI and p.session_id == 0
    shown = re.findall(r"\[([^\]]+)\]", line)
    assert shown == ["Service-Name", "PPP-Max-Payload 0x05DC", "Host-Uniq 0x16372C16"]
    assert [t.type for t in p.tags] == [
        TagType.SERVICE_NAME,
        TagType.PPP_MAX_PAYLOAD,
        TagType.HOST_UNIQ,
    ]
    assert p.service_names == [""]
    assert p.max_payload == 0x05DC
    assert p.host_uniq == bytes.fromhex("16372C16")


def test_golden_session_frames_from_tcpdump_capture() -> None:
    """pppoes.pcap + pppoes.out: two LCP Echo-Requests in sessions 0x17 and 0x3b."""
    frames = read_pcap(VECTORS / "pppoes.pcap")
    expected = (VECTORS / "pppoes.out").read_text().splitlines()
    assert len(frames) == len(expected) == 2
    for (_ts, frame), line in zip(frames, expected, strict=True):
        _dst, _src, ethertype, payload = _split_eth(frame)
        assert ethertype == ETH_P_PPP_SES
        sid, ppp = decode_session_frame(payload)
        assert encode_session_frame(sid, ppp) == payload
        m = re.search(
            r"\[ses 0x([0-9a-f]+)\] LCP, Echo-Request \(0x09\), id (\d+), length (\d+)", line
        )
        assert m is not None, line
        assert sid == int(m.group(1), 16)
        assert ppp[:2] == b"\xc0\x21"  # LCP
        assert ppp[2] == 0x09 and ppp[3] == int(m.group(2))
        # tcpdump's "length" is the PPPoE LENGTH; the LCP length excludes the protocol field.
        assert len(ppp) == int(m.group(3))
        assert int.from_bytes(ppp[4:6], "big") == len(ppp) - 2


def test_vendored_captures_match_shared_copies() -> None:
    for name in ("pppoe.pcap", "pppoe.out", "pppoes.pcap", "pppoes.out"):
        shared = CAPTURES / name
        if shared.exists():
            assert (VECTORS / name).read_bytes() == shared.read_bytes()


# -- examples ----------------------------------------------------------------------------
def test_encode_pado_layout() -> None:
    p = DiscoveryPacket(
        Code.PADO,
        0,
        (
            Tag(TagType.AC_NAME, b"ac"),
            Tag(TagType.SERVICE_NAME, b""),
            Tag(TagType.AC_COOKIE, b"\x01\x02"),
        ),
    )
    assert (
        encode_discovery(p).hex()
        == "110700000010" + "01020002" + "6163" + "01010000" + "010400020102"
    )


def test_padding_after_length_is_ignored() -> None:
    raw = encode_discovery(DiscoveryPacket(Code.PADI, 0, (Tag(TagType.SERVICE_NAME),)))
    assert decode_discovery(raw + b"\x00" * 30) == decode_discovery(raw)
    sid, ppp = decode_session_frame(encode_session_frame(5, b"\xc0\x21\x01") + b"\x00" * 20)
    assert (sid, ppp) == (5, b"\xc0\x21\x01")


def test_end_of_list_stops_parsing() -> None:
    raw = bytes.fromhex("110900000008" + "00000000" + "ffff0000")
    p = decode_discovery(raw)
    assert p.tags == (Tag(TagType.END_OF_LIST),)


def test_typed_accessors() -> None:
    line = LineInfo(circuit_id=b"dslam1 eth 1/2:100", remote_id=b"cust-42", actual_rate_up=1024)
    p = DiscoveryPacket(
        Code.PADR,
        0,
        (
            Tag(TagType.SERVICE_NAME, b"internet"),
            Tag(TagType.AC_NAME, b"lac-1"),
            Tag(TagType.RELAY_SESSION_ID, b"relay"),
            Tag(TagType.VENDOR_SPECIFIC, encode_line_info(line)),
            Tag(TagType.VENDOR_SPECIFIC, encode_vendor_specific(9, b"other")),
            Tag(TagType.GENERIC_ERROR, b"oops"),
        ),
    )
    q = decode_discovery(encode_discovery(p))
    assert q == p
    assert q.service_names == ["internet"] and q.ac_name == "lac-1"
    assert q.relay_session_id == b"relay" and q.host_uniq is None and q.max_payload is None
    assert q.line_info == line
    assert q.vendor_specific[1] == (9, b"other")
    assert q.errors == [(TagType.GENERIC_ERROR, "oops")]


def test_line_info_unknown_subtags_skipped_and_absent_is_none() -> None:
    data = bytes([0x01, 3]) + b"abc" + bytes([0x90, 3, 0, 1, 2])  # 0x90: encapsulation, skipped
    assert decode_line_info([(DSL_FORUM_VENDOR_ID, data)]) == LineInfo(circuit_id=b"abc")
    assert decode_line_info([(9, b"zz")]) is None


# -- malformed ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hex_payload", "why"),
    [
        ("", "empty"),
        ("1109000000", "short header"),
        ("210900000000", "version 2"),
        ("120900000000", "type 2"),
        ("110900000008" + "01010010" + "0000", "tag length overruns"),
        ("110900000002" + "0101", "tag header truncated"),
        ("110900000010" + "01010000", "LENGTH overruns frame"),
        ("110100000000", "unknown code"),
        ("110000010000", "session code on discovery"),
        ("110900050000", "PADI with session id"),
        ("110700050000", "PADO with session id"),
        ("111900050000", "PADR with session id"),
        ("11a700000000", "PADT with session id 0"),
        ("110900000005" + "00000001" + "00", "End-Of-List with a length"),
        ("110900000005" + "01200001" + "05", "PPP-Max-Payload of 1 octet"),
        ("110900000006" + "01200002" + "0000", "PPP-Max-Payload of 0"),
        ("110900000007" + "01050003" + "000de9", "Vendor-Specific shorter than vendor id"),
        ("110900000008" + "01050004" + "01000de9", "Vendor-Specific vendor id high octet"),
        ("110900000011" + "0110000d" + "00" * 13, "Relay-Session-Id longer than 12"),
    ],
)
def test_malformed_discovery_raises_remote_error(hex_payload: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_discovery(bytes.fromhex(hex_payload))


@pytest.mark.parametrize(
    ("hex_payload", "why"),
    [
        ("", "empty"),
        ("110000010002", "length overruns"),
        ("110000000002c021", "session id 0"),
        ("110900010002c021", "discovery code"),
        ("010000010002c021", "bad version"),
        ("110000010001c0", "no PPP protocol"),
    ],
)
def test_malformed_session_frame_raises_remote_error(hex_payload: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_session_frame(bytes.fromhex(hex_payload))


def test_malformed_line_info_raises_remote_error() -> None:
    for data in (bytes([0x01, 5, 1]), bytes([0x81, 2, 0, 0]), bytes([0x01, 0]), bytes([0x02])):
        with pytest.raises(RemoteProtocolError):
            decode_line_info([(DSL_FORUM_VENDOR_ID, data)])


def test_local_errors_on_encode() -> None:
    with pytest.raises(LocalProtocolError):
        encode_session_frame(0, b"\xc0\x21")
    with pytest.raises(LocalProtocolError):
        encode_discovery(DiscoveryPacket(Code.SESSION))
    with pytest.raises(LocalProtocolError):
        encode_discovery(DiscoveryPacket(Code.PADI, 0, (Tag(0x10000, b""),)))
    with pytest.raises(LocalProtocolError):
        encode_line_info(LineInfo(circuit_id=b"x" * 64))
    with pytest.raises(LocalProtocolError):
        encode_line_info(LineInfo(max_rate_up=1 << 32))


# -- properties --------------------------------------------------------------------------
def _tag_strategy() -> st.SearchStrategy[Tag]:
    def valid_value(tag_type: int) -> st.SearchStrategy[bytes]:
        if tag_type == TagType.PPP_MAX_PAYLOAD:
            return st.integers(1, 0xFFFF).map(lambda v: v.to_bytes(2, "big"))
        if tag_type == TagType.VENDOR_SPECIFIC:
            return st.tuples(st.integers(0, 0xFFFFFF), st.binary(max_size=40)).map(
                lambda t: encode_vendor_specific(t[0], t[1])
            )
        spec = TAG_REGISTRY.get(tag_type)
        return st.binary(max_size=min(40, spec.max_len) if spec else 40)

    known = [t for t in TagType if t is not TagType.END_OF_LIST]
    unknown = st.integers(1, 0xFFFF).filter(lambda t: t not in TAG_REGISTRY)
    return st.one_of(st.sampled_from(known), unknown).flatmap(
        lambda tt: valid_value(tt).map(lambda v: Tag(tt, v))
    )


@st.composite
def _packets(draw: st.DrawFn) -> DiscoveryPacket:
    code = draw(st.sampled_from([c for c in Code if c is not Code.SESSION]))
    if code in (Code.PADI, Code.PADO, Code.PADR):
        sid = 0
    elif code is Code.PADT:
        sid = draw(st.integers(1, 0xFFFF))
    else:
        sid = draw(st.integers(0, 0xFFFF))
    tags = draw(st.lists(_tag_strategy(), max_size=8))
    if draw(st.booleans()):
        tags.append(Tag(TagType.END_OF_LIST))
    return DiscoveryPacket(code, sid, tuple(tags))


@settings(max_examples=200, deadline=None)
@given(_packets())
def test_discovery_round_trip(p: DiscoveryPacket) -> None:
    raw = encode_discovery(p)
    assert decode_discovery(raw) == p
    assert encode_discovery(decode_discovery(raw)) == raw


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 0xFFFF), st.binary(min_size=2, max_size=200))
def test_session_round_trip(sid: int, ppp: bytes) -> None:
    assert decode_session_frame(encode_session_frame(sid, ppp)) == (sid, ppp)


_rate = st.none() | st.integers(0, 0xFFFFFFFF)
_id = st.none() | st.binary(min_size=1, max_size=63)


@settings(max_examples=200, deadline=None)
@given(st.builds(LineInfo, _id, _id, _rate, _rate, _rate, _rate, _rate, _rate, _rate, _rate))
def test_line_info_round_trip(info: LineInfo) -> None:
    vendor, data = decode_vendor_specific(encode_line_info(info))
    assert vendor == DSL_FORUM_VENDOR_ID
    assert decode_line_info([(vendor, data)]) == info


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_remote_error(data: bytes) -> None:
    for fn in (decode_discovery, decode_session_frame):
        with contextlib.suppress(RemoteProtocolError):
            fn(data)
    try:
        p = decode_discovery(b"\x11\x09\x00\x00" + len(data).to_bytes(2, "big") + data)
        _ = (p.line_info, p.errors, p.service_names, p.max_payload)
    except RemoteProtocolError:
        pass
    with contextlib.suppress(RemoteProtocolError):
        decode_line_info([(DSL_FORUM_VENDOR_ID, data)])


def tshark_fields(p: DiscoveryPacket) -> list[str]:
    """Our decode in the layout of ``tshark -T fields -E occurrence=a -E aggregator=,`` with
    -e pppoe.code pppoe.session_id pppoe.payload_length pppoed.tags.{service_name, ac_name,
    host_uniq, ac_cookie, generic_error}."""
    raw = encode_discovery(p)

    def join(values: list[bytes], text: bool) -> str:
        return ",".join(v.decode() if text else v.hex() for v in values)

    return [
        f"0x{p.code:02x}",
        f"0x{p.session_id:04x}",
        str(len(raw) - 6),
        join(p.all(TagType.SERVICE_NAME), True),
        join(p.all(TagType.AC_NAME), True),
        join(p.all(TagType.HOST_UNIQ), False),
        join(p.all(TagType.AC_COOKIE), False),
        join(p.all(TagType.GENERIC_ERROR), True),
    ]


def test_golden_rp_pppoe_client_frames_agree_with_tshark() -> None:
    """Frames between the rp-pppoe 3.15 client (`pppoe -A`, `pppoe -U -d`, `pppoe -k`) and
    our AC on a veth pair, captured by the adapter's tap; decoded independently by tshark
    4.0.17 into the .tshark.tsv file."""
    import json

    lines = (VECTORS / "rp-pppoe-3.15-discovery.jsonl").read_text().splitlines()
    rows = (VECTORS / "rp-pppoe-3.15-discovery.tshark.tsv").read_text().splitlines()
    assert len(lines) == len(rows) == 7
    for line, row in zip(lines, rows, strict=True):
        _direction, frame_hex = json.loads(line)
        _dst, _src, ethertype, payload = _split_eth(bytes.fromhex(frame_hex))
        assert ethertype == ETH_P_PPP_DISC
        p = decode_discovery(payload)
        assert encode_discovery(p) == payload
        assert tshark_fields(p) == row.split("\t")
    padt = decode_discovery(_split_eth(bytes.fromhex(json.loads(lines[-1])[1]))[3])
    assert padt.code is Code.PADT
    assert padt.errors == [(TagType.GENERIC_ERROR, "RP-PPPoE: Session killed manually")]
