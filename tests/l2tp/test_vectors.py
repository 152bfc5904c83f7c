"""Golden vectors: control messages captured from xl2tpd (tests/vectors/l2tp/*.hex).

Each file holds the hex of one message xl2tpd sent, tshark's verbose decode as comments and
the fields tshark reported as ``#! field=value`` lines (see tests/vectors/l2tp/capture.py).
We decode each message, compare every field with tshark, and re-encode it byte for byte.
A second group checks that tshark decodes messages WE encode the same way we do.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from broker.l2tp.codec import (
    ControlMessage,
    bytes_avp,
    challenge_response,
    decode_control,
    encode_control,
    parse_q931_cause,
    parse_result_code,
    parse_str,
    peek_header,
    proxy_authen_id_avp,
    q931_cause_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.data import DataHeader, encode_data, split_data
from broker.l2tp.hidden import padding_needed
from tests.support import require_binary, require_root

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "l2tp"
CHALLENGE = b"0123456789abcdef"  # what capture.py sent as its own Challenge


def load(path: Path) -> tuple[bytes, dict[str, str]]:
    fields: dict[str, str] = {}
    payload = ""
    for line in path.read_text().splitlines():
        if line.startswith("#!"):
            key, _, value = line[2:].strip().partition("=")
            fields[key] = value
        elif line and not line.startswith("#"):
            payload += line.strip()
    return bytes.fromhex(payload), fields


FILES = sorted(VECTORS.glob("*.hex"))
CONTROL_FILES = [p for p in FILES if not p.stem.endswith("_data")]
DATA_FILES = [p for p in FILES if p.stem.endswith("_data")]


def test_vectors_present() -> None:
    names = {p.stem for p in FILES}
    for impl_role in ("xl2tpd_lns", "xl2tpd_lac", "l2tpns_lns"):
        for mode in ("plain", "secure"):
            assert any(n.startswith(f"{impl_role}_{mode}_") for n in names), impl_role
    assert "xl2tpd_lac_secure_sccrq" in names and "l2tpns_lns_secure_sccrp" in names
    assert DATA_FILES


def _ints(text: str) -> list[int]:
    return [int(v, 0) for v in text.split("|")] if text else []


def _uint(msg: ControlMessage, t: AvpType) -> int:
    avp = msg.get(t)
    assert avp is not None, t.name
    return int.from_bytes(avp.value, "big")


@pytest.mark.parametrize("path", CONTROL_FILES, ids=[p.stem for p in CONTROL_FILES])
def test_vector_decodes_as_tshark_says_and_reencodes(path: Path) -> None:
    data, f = load(path)
    secret = f["secret"].encode() if "secret" in f else None
    msg = decode_control(data, secret)

    assert f["l2tp.type"] == "1"
    assert peek_header(data) == (True, msg.tunnel_id, msg.session_id)
    assert msg.tunnel_id == int(f["l2tp.tunnel"])
    assert msg.session_id == int(f["l2tp.session"])
    assert msg.ns == int(f["l2tp.Ns"])
    assert msg.nr == int(f["l2tp.Nr"])
    assert len(data) == int(f["l2tp.length"])
    if "l2tp.avp.message_type" in f:
        assert msg.message_type == MessageType(int(f["l2tp.avp.message_type"]))
    else:
        assert msg.is_zlb
    # every AVP tshark saw, in order, with its flags and length
    types = _ints(f.get("l2tp.avp.type", ""))
    if types:
        assert types == [0] + [a.type for a in msg.avps]
        assert _ints(f["l2tp.avp.mandatory"])[1:] == [int(a.mandatory) for a in msg.avps]
        assert _ints(f["l2tp.avp.hidden"])[1:] == [int(a.hidden) for a in msg.avps]
        plain_lengths = [6 + len(a.value) for a in msg.avps]
        assert _ints(f["l2tp.avp.length"])[1:] == plain_lengths
    else:
        assert msg.avps == ()

    simple = {
        "l2tp.avp.assigned_tunnel_id": AvpType.ASSIGNED_TUNNEL_ID,
        "l2tp.avp.assigned_session_id": AvpType.ASSIGNED_SESSION_ID,
        "l2tp.avp.firmware_revision": AvpType.FIRMWARE_REVISION,
        "l2tp.avp.receive_window_size": AvpType.RECEIVE_WINDOW_SIZE,
        "l2tp.tie_breaker": AvpType.TIE_BREAKER,
    }
    for key, t in simple.items():
        if key in f:
            assert _uint(msg, t) == int(f[key], 0), key
    for key, t in (
        ("l2tp.avp.host_name", AvpType.HOST_NAME),
        ("l2tp.avp.vendor_name", AvpType.VENDOR_NAME),
    ):
        if key in f:
            avp = msg.get(t)
            assert avp is not None and parse_str(avp.value) == f[key]
    for key, t in (
        ("l2tp.avp.chap_challenge", AvpType.CHALLENGE),
        ("l2tp.avp.chap_challenge_response", AvpType.CHALLENGE_RESPONSE),
        ("l2tp.avp.random_vector", AvpType.RANDOM_VECTOR),
    ):
        if key in f:
            avp = msg.get(t)
            assert avp is not None and avp.value.hex() == f[key].replace(":", "")
    if "l2tp.avp.protocol_version" in f:
        avp = msg.get(AvpType.PROTOCOL_VERSION)
        assert avp is not None
        assert list(avp.value) == [
            int(f["l2tp.avp.protocol_version"]),
            int(f["l2tp.avp.protocol_revision"]),
        ]
    if "l2tp.result_code" in f:
        avp = msg.get(AvpType.RESULT_CODE)
        assert avp is not None
        result, error, message = parse_result_code(avp.value)
        assert result == int(f["l2tp.result_code"])
        assert error == (int(f["l2tp.avp.error_code"]) if "l2tp.avp.error_code" in f else None)
        assert message == f.get("l2tp.avp.error_message", "")

    # byte-for-byte re-encoding (neither peer hides AVPs, so no randomness is consumed)
    def no_random(n: int) -> bytes:
        raise AssertionError("no randomness expected")

    assert encode_control(msg, secret, rand_bytes=no_random) == data


@pytest.mark.parametrize("path", DATA_FILES, ids=[p.stem for p in DATA_FILES])
def test_data_vector_decodes_as_tshark_says_and_reencodes(path: Path) -> None:
    data, f = load(path)
    header, payload = split_data(data)
    assert f["l2tp.type"] == "0"
    assert peek_header(data) == (False, header.tunnel_id, header.session_id)
    assert header.tunnel_id == int(f["l2tp.tunnel"])
    assert header.session_id == int(f["l2tp.session"])
    assert (header.length is not None) == (f["l2tp.length_bit"] == "1")
    assert (header.ns is not None) == (f["l2tp.seq_bit"] == "1")
    assert (header.offset_pad > 0) == (f["l2tp.offset_bit"] == "1")
    assert header.priority == (f["l2tp.priority"] == "1")
    # l2tpns sends PPP with the HDLC address/control octets FF 03 (DESIGN 3)
    assert payload[:2] == b"\xff\x03"
    assert payload[2:4] == b"\xc0\x21" and payload[4] == int(f["ppp.code"])  # LCP
    assert encode_data(header, payload) == data


def test_challenge_responses_of_real_peers_match_ours() -> None:
    """xl2tpd's and l2tpns's answers to our Challenge equal RFC 2661 5.1.1 as we compute it."""
    checked = 0
    for path in CONTROL_FILES:
        data, f = load(path)
        if "secret" not in f or "l2tp.avp.chap_challenge_response" not in f:
            continue
        secret = f["secret"].encode()
        msg = decode_control(data, secret)
        resp = msg.get(AvpType.CHALLENGE_RESPONSE)
        assert resp is not None and msg.message_type is not None
        assert resp.value == challenge_response(msg.message_type, secret, CHALLENGE)
        checked += 1
    assert checked >= 3  # xl2tpd SCCRP, xl2tpd SCCCN, l2tpns SCCRP


@pytest.mark.integration
@pytest.mark.parametrize("run", ["xl2tpd_lns_secure", "xl2tpd_lac_secure", "l2tpns_lns_secure"])
def test_real_peers_reveal_our_hidden_avps(run: str) -> None:
    """Live: xl2tpd (both roles) and l2tpns reveal the Assigned Session ID we hide (they
    answer on that session id) and accept our Challenge Responses."""
    require_root()
    impl = run.split("_")[0]
    require_binary(impl)
    if impl == "l2tpns":
        require_binary("unshare")
    from tests.vectors.l2tp import capture

    capture.exchange(run, quick=True)


# -- tshark decodes what we encode -------------------------------------------------------------


def _pcap(datagrams: list[bytes]) -> bytes:
    """A classic pcap (LINKTYPE_RAW IPv4) with one UDP 1701 -> 1701 datagram per message."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    for i, payload in enumerate(datagrams):
        udp = struct.pack("!HHHH", 1701, 1701, 8 + len(payload), 0) + payload
        total = 20 + len(udp)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            total,
            i,
            0,
            64,
            17,
            0,
            bytes([192, 0, 2, 1]),
            bytes([192, 0, 2, 2]),
        )
        csum = _checksum(ip)
        ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
        frame = ip + udp
        out += struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame
    return out


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


OURS = [
    ControlMessage(
        0,
        0,
        0,
        0,
        MessageType.SCCRQ,
        (
            bytes_avp(AvpType.PROTOCOL_VERSION, b"\x01\x00"),
            str_avp(AvpType.HOST_NAME, "broker-lac"),
            uint32_avp(AvpType.FRAMING_CAPABILITIES, 3),
            uint32_avp(AvpType.BEARER_CAPABILITIES, 0),
            uint64_avp(AvpType.TIE_BREAKER, 0x0102030405060708),
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 4660),
            uint16_avp(AvpType.RECEIVE_WINDOW_SIZE, 8),
            bytes_avp(AvpType.CHALLENGE, CHALLENGE),
        ),
    ),
    ControlMessage(
        9965,
        17,
        5,
        3,
        MessageType.CDN,
        (
            result_code_avp(2, 8, "unknown mandatory AVP"),
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 66),
            q931_cause_avp(16, 0x2D, "normal"),
        ),
    ),
    ControlMessage(
        9965,
        44,
        6,
        3,
        MessageType.ICCN,
        (
            uint32_avp(AvpType.TX_CONNECT_SPEED, 100_000_000),
            uint32_avp(AvpType.FRAMING_TYPE, 1),
            uint16_avp(AvpType.PROXY_AUTHEN_TYPE, 2),
            str_avp(AvpType.PROXY_AUTHEN_NAME, "user@realm"),
            proxy_authen_id_avp(7),
        ),
    ),
    ControlMessage(9965, 0, 7, 4, None),
]


@pytest.mark.integration
def test_tshark_decodes_our_messages() -> None:
    tshark = require_binary("tshark")
    fields = [
        "l2tp.tunnel",
        "l2tp.session",
        "l2tp.Ns",
        "l2tp.Nr",
        "l2tp.length",
        "l2tp.avp.message_type",
        "l2tp.avp.type",
        "l2tp.avp.host_name",
        "l2tp.avp.assigned_tunnel_id",
        "l2tp.avp.assigned_session_id",
        "l2tp.tie_breaker",
        "l2tp.result_code",
        "l2tp.avp.error_code",
        "l2tp.avp.error_message",
        "l2tp.avp.cause_code",
        "l2tp.avp.cause_msg",
        "l2tp.avp.advisory_msg",
        "l2tp.avp.connect_speed",
        "l2tp.avp.proxy_authen_type",
        "l2tp.avp.proxy_authen_name",
        "l2tp.avp.proxy_authen_id",
        "l2tp.avp.chap_challenge",
        "_ws.expert",
    ]
    wires = [encode_control(m) for m in OURS]
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "ours.pcap"
        pcap.write_bytes(_pcap(wires))
        out = subprocess.run(
            [
                tshark,
                "-r",
                str(pcap),
                "-d",
                "udp.port==1701,l2tp",
                "-T",
                "fields",
                "-E",
                "separator=\t",
                "-E",
                "occurrence=a",
                "-E",
                "aggregator=|",
                *[a for f in fields for a in ("-e", f)],
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.splitlines()
    assert len(out) == len(OURS)
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out]
    for msg, wire, row in zip(OURS, wires, rows, strict=True):
        assert row["_ws.expert"] == "", row  # no malformed-packet warnings
        assert int(row["l2tp.tunnel"]) == msg.tunnel_id
        assert int(row["l2tp.session"]) == msg.session_id
        assert int(row["l2tp.Ns"]) == msg.ns
        assert int(row["l2tp.Nr"]) == msg.nr
        assert int(row["l2tp.length"]) == len(wire)
        if msg.message_type is None:
            assert row["l2tp.avp.type"] == ""
        else:
            assert int(row["l2tp.avp.message_type"]) == msg.message_type
            assert _ints(row["l2tp.avp.type"]) == [0] + [a.type for a in msg.avps]
    sccrq, cdn, iccn, _ = rows
    assert sccrq["l2tp.avp.host_name"] == "broker-lac"
    assert int(sccrq["l2tp.avp.assigned_tunnel_id"]) == 4660
    assert int(sccrq["l2tp.tie_breaker"], 0) == 0x0102030405060708
    assert sccrq["l2tp.avp.chap_challenge"].replace(":", "") == CHALLENGE.hex()
    assert (cdn["l2tp.result_code"], cdn["l2tp.avp.error_code"]) == ("2", "8")
    assert cdn["l2tp.avp.error_message"] == "unknown mandatory AVP"
    assert int(cdn["l2tp.avp.assigned_session_id"]) == 66
    assert (int(cdn["l2tp.avp.cause_code"]), int(cdn["l2tp.avp.cause_msg"], 0)) == (16, 0x2D)
    assert cdn["l2tp.avp.advisory_msg"] == "normal"
    assert parse_q931_cause(q931_cause_avp(16, 0x2D, "normal").value) == (16, 0x2D, "normal")
    assert int(iccn["l2tp.avp.connect_speed"]) == 100_000_000
    assert int(iccn["l2tp.avp.proxy_authen_type"]) == 2
    assert iccn["l2tp.avp.proxy_authen_name"] == "user@realm"
    assert int(iccn["l2tp.avp.proxy_authen_id"]) == 7
    assert padding_needed(2) == 12


def _tshark_fields(tshark: str, datagrams: list[bytes], fields: list[str]) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "ours.pcap"
        pcap.write_bytes(_pcap(datagrams))
        out = subprocess.run(
            [tshark, "-r", str(pcap), "-d", "udp.port==1701,l2tp", "-T", "fields",
             "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
             *[a for f in fields for a in ("-e", f)]],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.splitlines()  # fmt: skip
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out]


@pytest.mark.integration
def test_tshark_decodes_our_hidden_avps_and_data_headers() -> None:
    tshark = require_binary("tshark")
    hidden = ControlMessage(
        9965, 44, 8, 4, MessageType.ICRQ,
        (
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 66, hidden=True),
            uint32_avp(AvpType.CALL_SERIAL_NUMBER, 1),
            str_avp(AvpType.CALLING_NUMBER, "a-calling-number-longer-than-16", hidden=True),
        ),
    )  # fmt: skip
    lcp = b"\xff\x03\xc0\x21\x01\x01\x00\x04"
    headers = [
        DataHeader(9965, 44),
        DataHeader(9965, 44, ns=3, nr=7, length=0),
        DataHeader(9965, 44, offset_pad=4, priority=True),
    ]
    datagrams = [encode_control(hidden, b"secret")] + [encode_data(h, lcp) for h in headers]
    fields = [
        "l2tp.type", "l2tp.length_bit", "l2tp.seq_bit", "l2tp.offset_bit", "l2tp.priority",
        "l2tp.tunnel", "l2tp.session", "l2tp.Ns", "l2tp.Nr", "l2tp.length", "l2tp.offset",
        "l2tp.avp.type", "l2tp.avp.hidden", "l2tp.avp.length", "ppp.code", "ppp.identifier",
        "_ws.expert",
    ]  # fmt: skip
    rows = _tshark_fields(tshark, datagrams, fields)
    assert len(rows) == 4
    icrq = rows[0]
    assert icrq["_ws.expert"] == ""
    decoded = decode_control(datagrams[0], b"secret")
    # tshark shows a hidden AVP's flags and length but not its (encrypted) type field
    assert _ints(icrq["l2tp.avp.type"]) == [0] + [a.type for a in decoded.avps if not a.hidden]
    assert _ints(icrq["l2tp.avp.hidden"]) == [0] + [int(a.hidden) for a in decoded.avps]
    # hidden lengths: 6 + 2 + value + padding to one MD5 block at least
    assert _ints(icrq["l2tp.avp.length"]) == [8, 22, 22, 10, 6 + 2 + 31]
    for header, row in zip(headers, rows[1:], strict=True):
        assert row["_ws.expert"] == "", row
        assert row["l2tp.type"] == "0"
        assert (int(row["l2tp.tunnel"]), int(row["l2tp.session"])) == (9965, 44)
        assert row["l2tp.length_bit"] == ("1" if header.length is not None else "0")
        assert row["l2tp.seq_bit"] == ("1" if header.ns is not None else "0")
        assert row["l2tp.offset_bit"] == ("1" if header.offset_pad else "0")
        assert row["l2tp.priority"] == ("1" if header.priority else "0")
        if header.ns is not None:
            assert (int(row["l2tp.Ns"]), int(row["l2tp.Nr"])) == (header.ns, header.nr)
        if header.length is not None:
            assert int(row["l2tp.length"]) == len(encode_data(header, lcp))
        if header.offset_pad:
            assert int(row["l2tp.offset"]) == header.offset_pad
        assert (row["ppp.code"], row["ppp.identifier"]) == ("1", "1")  # tshark found the LCP frame
