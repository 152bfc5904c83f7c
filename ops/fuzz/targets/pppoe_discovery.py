"""Fuzz target: PPPoE Discovery packets (RFC 2516 5, tags Appendix A, DSL Forum TR-101
vendor tags with their sub-TLVs).

Contract: ``decode_discovery`` raises only RemoteProtocolError; the accessors (service
names, errors, vendor tags) never raise, line info raises only RemoteProtocolError and
re-encodes; on a decoded packet; a decoded packet
re-encodes and decodes back to the same packet.
"""

from __future__ import annotations

from broker.pppoe.codec import decode_discovery, encode_discovery
from broker.pppoe.tags import decode_line_info, decode_vendor_specific, encode_line_info
from broker.wire import RemoteProtocolError


def test_one_input(data: bytes) -> None:
    try:
        packet = decode_discovery(data)
    except RemoteProtocolError:
        return
    for accessor in (
        "service_names",
        "ac_name",
        "host_uniq",
        "ac_cookie",
        "relay_session_id",
        "max_payload",
        "errors",
        "vendor_specific",
    ):
        getattr(packet, accessor)
    assert decode_discovery(encode_discovery(packet)) == packet
    try:
        info = packet.line_info  # DSL Forum sub-tags: RemoteProtocolError when malformed
    except RemoteProtocolError:
        return
    if info is not None:
        # encode_line_info gives the whole Vendor-Specific value (vendor id + sub-tags)
        again = decode_line_info([decode_vendor_specific(encode_line_info(info))])
        assert again == info, (again, info)
