"""Fuzz target: RADIUS replies (RFC 2865 3-5, Message-Authenticator RFC 3579 3.2).

Octet 0 picks the mode. Even: the rest is a raw reply to our request (authenticator
``REQUEST_AUTH``, secret ``SECRET``) and goes through the checks and the decoder. Odd: octet
1 is the code, octet 2 the identifier and the rest an attribute area; it is wrapped into a
reply with valid Response Authenticator and Message-Authenticator so that everything past
the checks is reached. Contract: the checks never raise, ``decode_packet`` raises only
RemoteProtocolError, a correctly signed reply verifies and decodes to the attributes sent,
typed values (pyrad) and the tunnel attributes raise only RemoteProtocolError.
"""

from __future__ import annotations

import contextlib

from broker.radius.constants import Attr
from broker.radius.dictionary import load_dictionary
from broker.radius.packet import (
    RadiusPacket,
    decode_attributes,
    decode_packet,
    decode_value,
    decode_verified_reply,
    encode_response,
    verify_reply,
)
from broker.radius.tunnel import parse_tunnels
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"fuzz-secret"
REQUEST_AUTH = bytes(range(16))
_MA = int(Attr.MESSAGE_AUTHENTICATOR)


def _names() -> dict[int, str]:
    out: dict[int, str] = {}
    for name, attr in load_dictionary().attributes.items():
        if isinstance(attr.code, int) and not attr.vendor:
            out.setdefault(attr.code, name)
    return out


_NAMES = _names()


def inspect(packet: RadiusPacket) -> None:
    """What the client does with an accepted reply: typed values and tunnel groups."""
    for attr_type, raw in packet.attributes:
        name = _NAMES.get(attr_type)
        if name is not None:
            with contextlib.suppress(RemoteProtocolError):
                decode_value(name, raw)
    packet.vendor_attributes(3561, 1)
    parse_tunnels(packet.attributes, SECRET, REQUEST_AUTH)


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    if data[0] & 1 == 0:
        raw = data[1:]
        verify_reply(raw, REQUEST_AUTH, SECRET)
        decode_verified_reply(raw, REQUEST_AUTH, SECRET)
        try:
            packet = decode_packet(raw)
        except RemoteProtocolError:
            return
        inspect(packet)
        return
    try:
        attrs = [(t, v) for t, v in decode_attributes(data[3:]) if t != _MA]
    except RemoteProtocolError:
        return
    try:
        raw = encode_response(data[1], data[2], attrs, SECRET, REQUEST_AUTH)
    except LocalProtocolError:
        return  # longer than 4096 octets once the Message-Authenticator is added
    signed = decode_verified_reply(raw, REQUEST_AUTH, SECRET)
    assert signed is not None
    assert [(t, v) for t, v in signed.attributes if t != _MA] == attrs
    inspect(signed)
