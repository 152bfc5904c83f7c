"""Fuzz target: L2TP data messages (RFC 2661 3.1 header with L, S, O, P bits).

Contract: ``split_data`` raises only RemoteProtocolError; a decoded header and payload
re-encode to a message that splits back to the same header and payload.
"""

from __future__ import annotations

from broker.l2tp.data import encode_data, split_data
from broker.wire import RemoteProtocolError


def test_one_input(data: bytes) -> None:
    try:
        header, payload = split_data(data)
    except RemoteProtocolError:
        return
    encoded = encode_data(header, payload)
    again_header, again_payload = split_data(encoded)
    assert again_payload == payload
    # An O bit with Offset Size 0 is not re-sent, so the Length may shrink by 2.
    assert again_header.length == (None if header.length is None else len(encoded))
    assert again_header.offset_pad == header.offset_pad
    assert (again_header.tunnel_id, again_header.session_id) == (
        header.tunnel_id,
        header.session_id,
    )
    assert (again_header.ns, again_header.nr, again_header.priority) == (
        header.ns,
        header.nr,
        header.priority,
    )
