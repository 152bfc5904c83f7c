"""Fuzz target: PPPoE session-stage frames (RFC 2516 6) and the PPP frame inside.

Contract: ``decode_session_frame`` and ``split_frame`` raise only RemoteProtocolError; a
decoded frame re-encodes to the same octets up to the PPPoE LENGTH.
"""

from __future__ import annotations

from broker.ppp.codec import build_frame, split_frame
from broker.pppoe.codec import HEADER_LEN, decode_session_frame, encode_session_frame
from broker.wire import RemoteProtocolError


def test_one_input(data: bytes) -> None:
    try:
        session_id, ppp = decode_session_frame(data)
    except RemoteProtocolError:
        return
    assert encode_session_frame(session_id, ppp) == data[: HEADER_LEN + len(ppp)]
    try:
        protocol, information = split_frame(ppp)
    except RemoteProtocolError:
        return
    assert build_frame(protocol, information) == ppp
