"""RFC 2868 tunnel attributes: tags, Tunnel-Password, grouping into candidates."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.radius.constants import Attr, TunnelMediumType, TunnelType
from broker.radius.tunnel import (
    SkippedTunnel,
    TunnelCandidate,
    decrypt_tunnel_password,
    encode_tunnel_attributes,
    encrypt_tunnel_password,
    parse_tunnels,
    split_tagged_integer,
    split_tagged_string,
)
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"testing123"
REQ_AUTH = bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")


def test_tunnel_password_vector_computed_independently() -> None:
    salt = b"\x81\x23"
    password = b"lns-secret"
    # Independent computation straight from RFC 2868 section 3.5 with hashlib.
    plain = bytes([len(password)]) + password
    plain += b"\x00" * (16 - len(plain))
    b1 = hashlib.md5(SECRET + REQ_AUTH + salt).digest()
    c1 = bytes(x ^ y for x, y in zip(plain, b1, strict=True))
    assert encrypt_tunnel_password(password, SECRET, REQ_AUTH, salt) == salt + c1
    assert decrypt_tunnel_password(salt + c1, SECRET, REQ_AUTH) == password
    # Two blocks: b(2) = MD5(S + c(1)).
    long_pw = b"x" * 20
    plain2 = bytes([20]) + long_pw + b"\x00" * 11
    k1 = hashlib.md5(SECRET + REQ_AUTH + salt).digest()
    d1 = bytes(x ^ y for x, y in zip(plain2[:16], k1, strict=True))
    k2 = hashlib.md5(SECRET + d1).digest()
    d2 = bytes(x ^ y for x, y in zip(plain2[16:], k2, strict=True))
    assert encrypt_tunnel_password(long_pw, SECRET, REQ_AUTH, salt) == salt + d1 + d2
    assert decrypt_tunnel_password(salt + d1 + d2, SECRET, REQ_AUTH) == long_pw


def test_tunnel_password_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encrypt_tunnel_password(b"x", SECRET, REQ_AUTH, b"\x01\x02")  # high bit clear
    with pytest.raises(LocalProtocolError):
        encrypt_tunnel_password(b"x" * 240, SECRET, REQ_AUTH, b"\x81\x02")
    with pytest.raises(RemoteProtocolError):
        decrypt_tunnel_password(b"\x81\x02" + bytes(15), SECRET, REQ_AUTH)
    with pytest.raises(RemoteProtocolError):
        decrypt_tunnel_password(b"\x01\x02" + bytes(16), SECRET, REQ_AUTH)
    bad_len = encrypt_tunnel_password(b"abc", SECRET, REQ_AUTH, b"\x81\x02")
    # Flip the Data-Length so it exceeds the block: first plaintext octet xor 0xff.
    forged = bad_len[:2] + bytes([bad_len[2] ^ 0xF0]) + bad_len[3:]
    with pytest.raises(RemoteProtocolError):
        decrypt_tunnel_password(forged, SECRET, REQ_AUTH)


def test_tag_splitting() -> None:
    assert split_tagged_integer(b"\x02\x00\x00\x03") == (2, 3)
    assert split_tagged_string(b"\x01192.0.2.1") == (1, b"192.0.2.1")
    assert split_tagged_string(b"192.0.2.1") == (0, b"192.0.2.1")
    assert split_tagged_string(b"\x00abc") == (0, b"\x00abc")
    assert split_tagged_string(b"\x20abc") == (0, b"\x20abc")
    with pytest.raises(RemoteProtocolError):
        split_tagged_integer(b"\x01\x00\x03")


def cand(tag: int, endpoint: str, **kw: object) -> TunnelCandidate:
    return TunnelCandidate(
        tag=tag,
        tunnel_type=TunnelType.L2TP,
        medium_type=TunnelMediumType.IPV4,
        server_endpoint=endpoint,
        **kw,  # type: ignore[arg-type]
    )


def test_three_tagged_groups_and_skips() -> None:
    a = cand(1, "192.0.2.10", preference=1, password=b"pw1", assignment_id=b"lns-a")
    b = cand(2, "192.0.2.11", preference=1, client_auth_id=b"lac1")
    c = cand(3, "2001:db8::1", preference=2)
    c = TunnelCandidate(**{**_fields(c), "medium_type": TunnelMediumType.IPV6})
    pptp = TunnelCandidate(**{**_fields(cand(4, "192.0.2.12")), "tunnel_type": TunnelType.PPTP})
    attrs: list[tuple[int, bytes]] = []
    for x in (a, b, c, pptp):
        attrs += encode_tunnel_attributes(x, SECRET, REQ_AUTH)
    random.Random(4).shuffle(attrs)
    attrs.append((Attr.REPLY_MESSAGE, b"unrelated"))
    result = parse_tunnels(attrs, SECRET, REQ_AUTH)
    assert result.candidates == (a, b, c)
    assert result.skipped == (SkippedTunnel(4, "Tunnel-Type 1 is not L2TP"),)


def _fields(c: TunnelCandidate) -> dict[str, object]:
    return {name: getattr(c, name) for name in TunnelCandidate.__slots__}


def test_untagged_attributes_alone_form_tag_zero() -> None:
    only = cand(0, "lns.example.net", password=b"pw", preference=5)
    result = parse_tunnels(encode_tunnel_attributes(only, SECRET, REQ_AUTH), SECRET, REQ_AUTH)
    assert result.candidates == (only,)
    assert parse_tunnels([], SECRET, REQ_AUTH).candidates == ()


def test_untagged_attributes_are_defaults_for_tagged_groups() -> None:
    attrs = [
        (Attr.TUNNEL_TYPE, b"\x00\x00\x00\x03"),
        (Attr.TUNNEL_MEDIUM_TYPE, b"\x00\x00\x00\x01"),
        (Attr.TUNNEL_CLIENT_AUTH_ID, b"lac-default"),
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x01192.0.2.1"),
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x02192.0.2.2"),
        (Attr.TUNNEL_CLIENT_AUTH_ID, b"\x02lac-two"),
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x02192.0.2.99"),  # duplicate: first wins
    ]
    result = parse_tunnels(attrs, SECRET, REQ_AUTH)
    assert [c.server_endpoint for c in result.candidates] == ["192.0.2.1", "192.0.2.2"]
    assert [c.client_auth_id for c in result.candidates] == [b"lac-default", b"lac-two"]


def test_missing_or_bad_fields_are_skipped_with_reasons() -> None:
    attrs = [
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x01192.0.2.1"),  # no type
        (Attr.TUNNEL_TYPE, b"\x02\x00\x00\x03"),  # no endpoint
        (Attr.TUNNEL_TYPE, b"\x03\x00\x00\x03"),
        (Attr.TUNNEL_MEDIUM_TYPE, b"\x03\x00\x00\x0b"),  # IPX
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x03192.0.2.3"),
        (Attr.TUNNEL_TYPE, b"\x04\x00\x00\x03"),
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x04192.0.2.4"),
        (Attr.TUNNEL_PASSWORD, b"\x04\x81\x00" + bytes(5)),  # malformed password
        (Attr.TUNNEL_TYPE, b"\x05\x00\x00\x03"),
        (Attr.TUNNEL_MEDIUM_TYPE, b"\x05\x00\x00\x01"),
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x052001:db8::5"),  # IPv6 text with IPv4 medium
        (Attr.TUNNEL_TYPE, b"\x06\x00\x00\x03"),  # inferred IPv6 medium
        (Attr.TUNNEL_SERVER_ENDPOINT, b"\x062001:db8::6"),
    ]
    result = parse_tunnels(attrs, SECRET, REQ_AUTH)
    assert [c.tag for c in result.candidates] == [6]
    assert result.candidates[0].medium_type == TunnelMediumType.IPV6
    reasons = {s.tag: s.reason for s in result.skipped}
    assert reasons[1] == "no Tunnel-Type"
    assert reasons[2] == "no Tunnel-Server-Endpoint"
    assert "Medium-Type 11" in reasons[3]
    assert "attribute 69" in reasons[4]
    assert "unusable" in reasons[5]


tags = st.lists(st.integers(1, 31), min_size=1, max_size=31, unique=True)
opt_bytes = st.one_of(st.none(), st.binary(min_size=1, max_size=40).map(lambda b: b"id" + b))


@st.composite
def candidates(draw: st.DrawFn) -> list[TunnelCandidate]:
    out = []
    for tag in draw(tags):
        v6 = draw(st.booleans())
        host = draw(st.integers(1, 254))
        out.append(
            TunnelCandidate(
                tag=tag,
                tunnel_type=TunnelType.L2TP,
                medium_type=TunnelMediumType.IPV6 if v6 else TunnelMediumType.IPV4,
                server_endpoint=f"2001:db8::{host:x}" if v6 else f"198.51.100.{host}",
                client_endpoint=draw(st.one_of(st.none(), st.just("203.0.113.1"))),
                password=draw(st.one_of(st.none(), st.binary(max_size=64))),
                preference=draw(st.one_of(st.none(), st.integers(0, 0xFFFFFF))),
                assignment_id=draw(opt_bytes),
                client_auth_id=draw(opt_bytes),
                server_auth_id=draw(opt_bytes),
                private_group_id=draw(opt_bytes),
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(candidates(), st.randoms(use_true_random=False), st.binary(min_size=16, max_size=16))
def test_grouping_round_trip_any_order(
    cands: list[TunnelCandidate], rnd: random.Random, auth: bytes
) -> None:
    attrs: list[tuple[int, bytes]] = []
    for c in cands:
        attrs += encode_tunnel_attributes(c, SECRET, auth)
    rnd.shuffle(attrs)
    result = parse_tunnels(attrs, SECRET, auth)
    assert result.skipped == ()
    assert result.candidates == tuple(sorted(cands, key=lambda c: c.tag))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([64, 65, 66, 67, 69, 81, 82, 83, 90, 91, 1]),
            st.binary(max_size=40),
        ),
        max_size=20,
    )
)
def test_random_tunnel_attributes_never_raise(attrs: list[tuple[int, bytes]]) -> None:
    result = parse_tunnels(attrs, SECRET, REQ_AUTH)
    for c in result.candidates:
        assert c.tunnel_type == TunnelType.L2TP
        assert c.medium_type in (TunnelMediumType.IPV4, TunnelMediumType.IPV6)
        assert 0 <= c.tag <= 31
