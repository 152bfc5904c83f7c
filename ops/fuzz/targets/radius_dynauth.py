"""Fuzz target: Disconnect-Request and CoA-Request (RFC 5176) through ``DynAuthServer``.

Octet 0 picks the mode. Even: the rest is a raw datagram from a known client. Odd: octet 1
picks Disconnect or CoA and whether a Message-Authenticator is added, octet 2 is the
identifier and the rest an attribute area, sent correctly signed so the decisions past the
authenticator check are reached. Contract: ``receive_datagram`` never raises (malformed
input is counted), every datagram gets at most one reply and a signed one always gets one
(a reply, or a duplicate's cached reply) unless its Event-Timestamp is stale or its
State/Proxy-State leave no room for a reply.
"""

from __future__ import annotations

from broker.radius.constants import Attr, Code
from broker.radius.dynauth import (
    DisconnectOutcome,
    DynAuthClient,
    DynAuthServer,
    SessionCriteria,
)
from broker.radius.packet import decode_attributes, encode_request
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"fuzz-dynauth"
CLIENT = ("192.0.2.9", 3799)
NOW = 1_700_000_000.0
_OUTCOMES = tuple(DisconnectOutcome)


def _find(criteria: SessionCriteria) -> DisconnectOutcome:
    key = len(repr(criteria))
    if key % 7 == 0:
        raise RuntimeError("the broker failed")  # the server must answer anyway
    return _OUTCOMES[key % len(_OUTCOMES)]


def _server() -> DynAuthServer:
    return DynAuthServer(
        [DynAuthClient("fuzz", CLIENT[0], SECRET)],
        nas_ip="192.0.2.1",
        nas_identifier="lac-1",
        find_and_disconnect=_find,
    )


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    server = _server()
    if data[0] & 1 == 0:
        server.receive_datagram(data[1:], CLIENT, NOW)
        server.receive_datagram(data[1:], ("198.51.100.7", 3799), NOW)  # unknown client
        assert len(server.datagrams_to_send(NOW)) <= 1
        return
    code = Code.DISCONNECT_REQUEST if data[1] & 1 == 0 else Code.COA_REQUEST
    try:
        attrs = decode_attributes(data[3:])
    except RemoteProtocolError:
        return
    attrs = [(t, v) for t, v in attrs if t != Attr.MESSAGE_AUTHENTICATOR]
    try:
        raw = encode_request(
            code, data[2], attrs, SECRET, add_message_authenticator=bool(data[1] & 2)
        )
    except LocalProtocolError:
        return
    for attempt in range(2):  # the second is a retransmission: answered from the cache
        server.receive_datagram(raw, CLIENT, NOW + attempt)
        replies = server.datagrams_to_send(NOW + attempt)
        if server.counters["stale_timestamp"] or server.counters["malformed"]:
            assert not replies  # stale, or too big to be answered within 4096 octets
            return
        assert len(replies) == 1, (server.counters, replies)
    server.handle_timer(NOW + 3600)
    while server.next_event() is not None:
        pass
