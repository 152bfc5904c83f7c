"""Fuzz target: the RADIUS authentication client engine (RFC 2865 4, RFC 3579 3.2, tunnel
attributes RFC 2868) receiving replies to an Access-Request it sent.

Input layout: octet 0 picks the mode, octet 1 the reply code, the rest an attribute area.
Even mode: the octets after octet 1 are the raw reply datagram (forged: it must be counted
and dropped). Odd mode: the attribute area is wrapped into a reply correctly signed for the
request in flight (Response Authenticator, Message-Authenticator), so the engine's handling
past the BlastRADIUS checks is reached. Contract: ``receive_datagram`` never raises, every
datagram is either counted as dropped or ends the call with exactly one event.
"""

from __future__ import annotations

import random

from broker.radius.client import AuthRequest, RadiusClient, RadiusServer
from broker.radius.constants import Attr
from broker.radius.packet import decode_attributes, encode_response
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"fuzz-secret"
SERVER = RadiusServer("r1", "192.0.2.50", secret=SECRET, timeout=(1.0, 1.0))
_MA = int(Attr.MESSAGE_AUTHENTICATOR)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    client = RadiusClient([SERVER], sockets=1, rand_bytes=random.Random(3).randbytes)
    client.authenticate("sub", AuthRequest("user@isp", pap_password=b"pw"), 0.0)
    (request,) = client.datagrams_to_send(0.0)
    ident, authenticator = request.payload[1], request.payload[4:20]
    if data[0] & 1 == 0:
        raw = data[1:]
    else:
        try:
            attrs = [(t, v) for t, v in decode_attributes(data[2:]) if t != _MA]
            raw = encode_response(data[1], ident, attrs, SECRET, authenticator)
        except (RemoteProtocolError, LocalProtocolError):
            return
    before = dict(client.counters)
    client.receive_datagram(raw, (SERVER.address, SERVER.port), 0, 0.5)
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    dropped = sum(
        client.counters[k] - before.get(k, 0)
        for k in ("forged_replies", "malformed", "unknown_reply", "unexpected_code")
    )
    assert (len(events), dropped) in ((1, 0), (0, 1)), (events, client.counters)
    timer = client.get_timer()
    assert timer is None or timer >= 0.5
