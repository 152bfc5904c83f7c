"""PPP codec round trips (Hypothesis), malformed input, and a golden LCP Echo-Request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp.codec import (
    IPCP_OPTIONS,
    LCP_OPTIONS,
    ChapValue,
    ControlPacket,
    Option,
    PapRequest,
    build_frame,
    decode_chap_value,
    decode_control,
    decode_options,
    decode_pap_message,
    decode_pap_request,
    encode_control,
    encode_options,
    encode_pap_message,
    split_frame,
)
from broker.ppp.constants import LcpCode, LcpOption, PppProtocol
from broker.wire import RemoteProtocolError

FAST = settings(max_examples=200, deadline=None)


def _sized(kind: int) -> st.SearchStrategy[Option]:
    size = LCP_OPTIONS.get(kind)
    if size is None:
        return st.binary(max_size=20).map(lambda d: Option(kind, d))
    top = size.maximum if size.maximum is not None else size.minimum + 16
    return st.binary(min_size=size.minimum, max_size=top).map(lambda d: Option(kind, d))


lcp_option = st.integers(0, 255).flatmap(_sized)
protocols = st.integers(0, 0xFFFF).filter(lambda p: not p & 0x0100 and p & 1)


@FAST
@given(protocols, st.binary(max_size=64))
def test_frame_round_trip(protocol: int, info: bytes) -> None:
    assert split_frame(build_frame(protocol, info)) == (protocol, info)


@FAST
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300), st.binary(max_size=8))
def test_control_round_trip(code: int, ident: int, data: bytes, padding: bytes) -> None:
    pkt = ControlPacket(code, ident, data)
    wire = pkt.encode()
    assert decode_control(wire + padding) == pkt  # octets past Length are padding
    assert encode_control(PppProtocol.LCP, code, ident, data) == b"\xc0\x21" + wire


@FAST
@given(st.lists(lcp_option, max_size=10))
def test_lcp_options_round_trip(options: list[Option]) -> None:
    data = encode_options(options)
    assert decode_options(data, LCP_OPTIONS) == tuple(options)
    assert encode_options(decode_options(data, LCP_OPTIONS)) == data


@FAST
@given(st.lists(st.binary(min_size=4, max_size=4), max_size=4))
def test_ipcp_options_round_trip(addresses: list[bytes]) -> None:
    options = [Option(3, a) for a in addresses]
    assert decode_options(encode_options(options), IPCP_OPTIONS) == tuple(options)


@FAST
@given(st.binary(max_size=255), st.binary(max_size=255))
def test_pap_round_trip(peer_id: bytes, password: bytes) -> None:
    req = PapRequest(peer_id, password)
    assert decode_pap_request(req.encode()) == req
    assert decode_pap_message(encode_pap_message(peer_id)) == peer_id


@FAST
@given(st.binary(min_size=1, max_size=255), st.binary(max_size=64))
def test_chap_round_trip(value: bytes, name: bytes) -> None:
    v = ChapValue(value, name)
    assert decode_chap_value(v.encode()) == v


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x00",  # option length 0
        b"\x05\x01",  # option length 1
        b"\x01\x04\x05",  # overruns the list
        b"\x01",  # truncated header
        b"\x01\x03\x05",  # MRU with one data octet
        b"\x05\x05\x01\x02\x03",  # Magic-Number with 3 octets
        b"\x07\x03\x00",  # PFC carrying data
    ],
)
def test_malformed_options(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_options(data, LCP_OPTIONS)


@pytest.mark.parametrize(
    "payload", [b"", b"\x01\x01\x00", b"\x01\x01\x00\x03", b"\x01\x01\x00\x09abc"]
)
def test_malformed_control(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_control(payload)


@pytest.mark.parametrize("frame", [b"", b"\xc0", b"\xc1\x21", b"\x00\x20"])
def test_malformed_protocol_field(frame: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        split_frame(frame)


@pytest.mark.parametrize("data", [b"", b"\x05ab", b"\x00abc"])
def test_malformed_chap_and_pap(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_chap_value(data)
    if data:
        with pytest.raises(RemoteProtocolError):
            decode_pap_request(data)


def test_golden_echo_request_from_pppoes_capture() -> None:
    # ../shared/captures/pppoes.pcap frame 1, PPPoE session payload; tshark -V decodes it as
    # LCP Echo Request, Identifier 106, Length 12, Magic 0xa4cbea34, Data 0ee2f609.
    frame = bytes.fromhex("c021096a000ca4cbea340ee2f609")
    protocol, info = split_frame(frame)
    assert protocol == PppProtocol.LCP
    pkt = decode_control(info)
    assert (pkt.code, pkt.identifier) == (LcpCode.ECHO_REQUEST, 106)
    assert pkt.data == bytes.fromhex("a4cbea340ee2f609")
    assert encode_control(protocol, pkt.code, pkt.identifier, pkt.data) == frame


def test_golden_confreq_options() -> None:
    # A Configure-Request our PppLink sent (frame c0210123 0013 + these options); tshark -V
    # (4.x) on it in a PPPoE session frame: MRU 1492, Authentication Protocol 0xc223
    # Algorithm CHAP with MD5 (5), Magic Number 0x0691d8cd.
    data = bytes.fromhex("010405d40305c22305" + "05060691d8cd")
    opts = decode_options(data, LCP_OPTIONS)
    assert [o.type for o in opts] == [LcpOption.MRU, LcpOption.AUTH_PROTOCOL, 5]
    assert opts[0].data == b"\x05\xd4"
    assert encode_options(opts) == data


def test_golden_chap_exchange() -> None:
    # Challenge and Response from PppLink <-> PppClient; tshark -V agrees: Challenge id 120,
    # Value Size 16, Name "l2tp-broker"; Response id 120, Value Size 16, Name "alice@isp".
    challenge = bytes.fromhex(
        "c2230178002010a661c935187c07e4d5636e9bc3c400b26c3274702d62726f6b6572"
    )
    response = bytes.fromhex("c2230278001e101ee38d4c6ef74a376e4b03a36e8ec2b7616c69636540697370")
    for frame, code, name in ((challenge, 1, b"l2tp-broker"), (response, 2, b"alice@isp")):
        protocol, info = split_frame(frame)
        assert protocol == PppProtocol.CHAP
        pkt = decode_control(info)
        assert (pkt.code, pkt.identifier) == (code, 120)
        value = decode_chap_value(pkt.data)
        assert (len(value.value), value.name) == (16, name)
        assert encode_control(protocol, code, 120, value.encode()) == frame
