"""PPPoE (RFC 2516): discovery and session-stage codecs and the DiscoveryServer engine.

Pure code: no sockets, no clock. The raw Ethernet adapter lives in
:mod:`broker.adapters.rawether`.
"""

from __future__ import annotations

from broker.pppoe.codec import (
    DiscoveryPacket,
    Tag,
    decode_discovery,
    decode_session_frame,
    encode_discovery,
    encode_session_frame,
)
from broker.pppoe.constants import (
    DSL_FORUM_VENDOR_ID,
    ETH_P_PPP_DISC,
    ETH_P_PPP_SES,
    Code,
    DslForumSubTag,
    TagType,
)
from broker.pppoe.discovery import (
    DiscoveryConfig,
    DiscoveryServer,
    OutFrame,
    PppoeSessionKey,
    SessionOpened,
    SessionTerminated,
)
from broker.pppoe.tags import LineInfo, decode_line_info, encode_line_info

__all__ = [
    "DSL_FORUM_VENDOR_ID",
    "ETH_P_PPP_DISC",
    "ETH_P_PPP_SES",
    "Code",
    "DiscoveryConfig",
    "DiscoveryPacket",
    "DiscoveryServer",
    "DslForumSubTag",
    "LineInfo",
    "OutFrame",
    "PppoeSessionKey",
    "SessionOpened",
    "SessionTerminated",
    "Tag",
    "TagType",
    "decode_discovery",
    "decode_line_info",
    "decode_session_frame",
    "encode_discovery",
    "encode_line_info",
    "encode_session_frame",
]
