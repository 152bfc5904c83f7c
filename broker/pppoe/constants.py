"""PPPoE wire numbers: RFC 2516 codes and tags, RFC 4638 PPP-Max-Payload, RFC 4679 / TR-101
DSL Forum vendor-specific sub-tags."""

from __future__ import annotations

from enum import IntEnum

#: RFC 2516 §4: Ethernet type of the Discovery stage.
ETH_P_PPP_DISC = 0x8863
#: RFC 2516 §4: Ethernet type of the PPP Session stage.
ETH_P_PPP_SES = 0x8864

#: RFC 2516 §4: VER and TYPE nibbles, both 0x1.
VER_TYPE = 0x11
#: RFC 2516 §4: PPPoE header length (VER/TYPE, CODE, SESSION_ID, LENGTH).
HEADER_LEN = 6
#: RFC 2516 §7: PPP MTU without RFC 4638 on a 1500-octet Ethernet.
DEFAULT_MAX_PAYLOAD = 1492
#: RFC 2516 §Appendix A: Relay-Session-Id value is at most 12 octets.
RELAY_SESSION_ID_MAX = 12
#: RFC 4679 §3.3.1 / TR-101: DSL Forum IANA enterprise number.
DSL_FORUM_VENDOR_ID = 3561


class Code(IntEnum):
    SESSION = 0x00  #: RFC 2516 §6: session stage
    PADO = 0x07  #: RFC 2516 §5.2
    PADI = 0x09  #: RFC 2516 §5.1
    PADR = 0x19  #: RFC 2516 §5.3
    PADS = 0x65  #: RFC 2516 §5.4
    PADT = 0xA7  #: RFC 2516 §5.5


class TagType(IntEnum):
    END_OF_LIST = 0x0000  #: RFC 2516 Appendix A
    SERVICE_NAME = 0x0101  #: RFC 2516 Appendix A
    AC_NAME = 0x0102  #: RFC 2516 Appendix A
    HOST_UNIQ = 0x0103  #: RFC 2516 Appendix A
    AC_COOKIE = 0x0104  #: RFC 2516 Appendix A
    VENDOR_SPECIFIC = 0x0105  #: RFC 2516 Appendix A
    RELAY_SESSION_ID = 0x0110  #: RFC 2516 Appendix A
    PPP_MAX_PAYLOAD = 0x0120  #: RFC 4638 §4
    SERVICE_NAME_ERROR = 0x0201  #: RFC 2516 Appendix A
    AC_SYSTEM_ERROR = 0x0202  #: RFC 2516 Appendix A
    GENERIC_ERROR = 0x0203  #: RFC 2516 Appendix A


class DslForumSubTag(IntEnum):
    AGENT_CIRCUIT_ID = 0x01  #: RFC 4679 §3.3.1
    AGENT_REMOTE_ID = 0x02  #: RFC 4679 §3.3.2
    ACTUAL_RATE_UP = 0x81  #: RFC 4679 §3.3.3
    ACTUAL_RATE_DOWN = 0x82  #: RFC 4679 §3.3.4
    MIN_RATE_UP = 0x83  #: RFC 4679 §3.3.5
    MIN_RATE_DOWN = 0x84  #: RFC 4679 §3.3.6
    ATTAINABLE_RATE_UP = 0x85  #: RFC 4679 §3.3.7
    ATTAINABLE_RATE_DOWN = 0x86  #: RFC 4679 §3.3.8
    MAX_RATE_UP = 0x87  #: RFC 4679 §3.3.9
    MAX_RATE_DOWN = 0x88  #: RFC 4679 §3.3.10
