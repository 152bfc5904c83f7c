"""Fuzz target: RFC 2868 tunnel attributes (tags, salt-encrypted Tunnel-Password 3.5).

Input layout: octets 0-15 are the Request Authenticator, the rest an attribute area.
Contract: ``parse_tunnels`` never raises; every candidate it finds re-encodes with
``encode_tunnel_attributes`` and parses back to the same candidate; Tunnel-Password
decryption raises only RemoteProtocolError and encryption round trips.
"""

from __future__ import annotations

from broker.radius.packet import decode_attributes
from broker.radius.tunnel import (
    decrypt_tunnel_password,
    encode_tunnel_attributes,
    encrypt_tunnel_password,
    parse_tunnels,
)
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"fuzz-secret"


def _rand(n: int) -> bytes:
    return bytes(range(0x41, 0x41 + n))


def test_one_input(data: bytes) -> None:
    if len(data) < 16:
        return
    request_auth, area = data[:16], data[16:]
    try:
        password = decrypt_tunnel_password(area[:253], SECRET, request_auth)
    except RemoteProtocolError:
        pass
    else:
        try:
            again = encrypt_tunnel_password(password, SECRET, request_auth, b"\x80\x01")
        except LocalProtocolError:
            pass
        else:
            assert decrypt_tunnel_password(again, SECRET, request_auth) == password
    try:
        attrs = decode_attributes(area)
    except RemoteProtocolError:
        return
    result = parse_tunnels(attrs, SECRET, request_auth)
    for candidate in result.candidates:
        try:
            encoded = encode_tunnel_attributes(candidate, SECRET, request_auth, rand_bytes=_rand)
        except LocalProtocolError:
            continue
        again_result = parse_tunnels(encoded, SECRET, request_auth)
        assert again_result.candidates == (candidate,), (again_result, candidate)
