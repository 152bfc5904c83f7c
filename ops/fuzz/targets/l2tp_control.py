"""Fuzz target: L2TP control messages (RFC 2661 3.1, 4.1) incl. hidden AVPs (4.3).

Contract: ``decode_control`` raises only RemoteProtocolError (L2tpError); ``peek_header``
too; ``describe`` never raises; a decoded message whose hidden AVPs are all hidable
re-encodes (with the same secret) and decodes back to the same message.
"""

from __future__ import annotations

import contextlib

from broker.l2tp.avps import spec_for
from broker.l2tp.codec import ControlMessage, decode_control, describe, encode_control, peek_header
from broker.wire import RemoteProtocolError

#: The secret of the golden vectors (tests/vectors/l2tp/capture.py), so their hidden AVPs open.
SECRET = b"vector-secret"


def _rand(n: int) -> bytes:
    return bytes(range(1, n + 1)) if n <= 255 else bytes(n)


def _round_trips(msg: ControlMessage) -> bool:
    for avp in msg.avps:
        if avp.hidden:
            spec = spec_for(avp.type, avp.vendor_id)
            if spec is not None and not spec.hidable:
                return False  # the decoder accepts it; we refuse to send it (RFC 2661 4.4)
    return True


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        peek_header(data)
    # Bit 0 of the first octet picks "with secret" / "without", the rest is the datagram.
    secret = SECRET if data[:1] and data[0] & 1 == 0 else None
    try:
        msg = decode_control(data, secret)
    except RemoteProtocolError:
        return
    describe(msg)
    if not _round_trips(msg):
        return
    again = decode_control(encode_control(msg, SECRET, _rand), SECRET)
    assert again == msg, (again, msg)
