"""Wire numbers for PPP: protocol field, LCP/IPCP codes and options, PAP, CHAP, proxy authen.

RFC 1661 (PPP, LCP), RFC 1334 (PAP), RFC 1994 (CHAP), RFC 2433/2759 (MS-CHAP algorithms in
the CHAP Auth-Protocol option), RFC 1332 and RFC 1877 (IPCP), RFC 2661 section 4.4.5 (L2TP
Proxy Authen Type).
"""

from __future__ import annotations

from enum import IntEnum


class PppProtocol(IntEnum):
    """The PPP Protocol field (RFC 1661 section 2; assigned numbers RFC 1700)."""

    IPV4 = 0x0021  #: RFC 1332 section 1 (Internet Protocol)
    IPV6 = 0x0057  #: RFC 5072 section 2
    IPCP = 0x8021  #: RFC 1332 section 2
    IPV6CP = 0x8057  #: RFC 5072 section 3
    CCP = 0x80FD  #: RFC 1962 section 2
    LCP = 0xC021  #: RFC 1661 section 5
    PAP = 0xC023  #: RFC 1334 section 2.2
    LQR = 0xC025  #: RFC 1989 section 2
    CHAP = 0xC223  #: RFC 1994 section 4


class LcpCode(IntEnum):
    """LCP (and NCP) packet codes, RFC 1661 section 5; NCPs use codes 1-7 only."""

    CONFIGURE_REQUEST = 1  #: RFC 1661 section 5.1
    CONFIGURE_ACK = 2  #: RFC 1661 section 5.2
    CONFIGURE_NAK = 3  #: RFC 1661 section 5.3
    CONFIGURE_REJECT = 4  #: RFC 1661 section 5.4
    TERMINATE_REQUEST = 5  #: RFC 1661 section 5.5
    TERMINATE_ACK = 6  #: RFC 1661 section 5.5
    CODE_REJECT = 7  #: RFC 1661 section 5.6
    PROTOCOL_REJECT = 8  #: RFC 1661 section 5.7
    ECHO_REQUEST = 9  #: RFC 1661 section 5.8
    ECHO_REPLY = 10  #: RFC 1661 section 5.8
    DISCARD_REQUEST = 11  #: RFC 1661 section 5.9


class LcpOption(IntEnum):
    """LCP Configuration Option types, RFC 1661 section 6."""

    MRU = 1  #: RFC 1661 section 6.1
    ACCM = 2  #: RFC 1662 section 7.1 (forbidden on PPPoE, RFC 2516 section 7)
    AUTH_PROTOCOL = 3  #: RFC 1661 section 6.2
    QUALITY_PROTOCOL = 4  #: RFC 1661 section 6.3
    MAGIC_NUMBER = 5  #: RFC 1661 section 6.4
    PFC = 7  #: RFC 1661 section 6.5 (Protocol-Field-Compression)
    ACFC = 8  #: RFC 1661 section 6.6 (forbidden on PPPoE, RFC 2516 section 7)


class PapCode(IntEnum):
    AUTHENTICATE_REQUEST = 1  #: RFC 1334 section 2.2.1
    AUTHENTICATE_ACK = 2  #: RFC 1334 section 2.2.2
    AUTHENTICATE_NAK = 3  #: RFC 1334 section 2.2.2


class ChapCode(IntEnum):
    CHALLENGE = 1  #: RFC 1994 section 4.1
    RESPONSE = 2  #: RFC 1994 section 4.1
    SUCCESS = 3  #: RFC 1994 section 4.2
    FAILURE = 4  #: RFC 1994 section 4.2


class ChapAlgorithm(IntEnum):
    """The Algorithm octet of a CHAP Auth-Protocol option."""

    MD5 = 5  #: RFC 1994 section 3
    MSCHAP_V1 = 0x80  #: RFC 2433 section 2
    MSCHAP_V2 = 0x81  #: RFC 2759 section 2


class IpcpOption(IntEnum):
    IP_ADDRESSES = 1  #: RFC 1332 section 3.1 (deprecated)
    IP_COMPRESSION = 2  #: RFC 1332 section 3.2
    IP_ADDRESS = 3  #: RFC 1332 section 3.3
    PRIMARY_DNS = 129  #: RFC 1877 section 1.1
    PRIMARY_NBNS = 130  #: RFC 1877 section 1.2
    SECONDARY_DNS = 131  #: RFC 1877 section 1.3
    SECONDARY_NBNS = 132  #: RFC 1877 section 1.4


class ProxyAuthenType(IntEnum):
    """L2TP Proxy Authen Type AVP values, RFC 2661 section 4.4.5."""

    RESERVED = 0  #: RFC 2661 section 4.4.5
    TEXTUAL = 1  #: RFC 2661 section 4.4.5 (textual username/password exchange)
    CHAP = 2  #: RFC 2661 section 4.4.5 (PPP CHAP)
    PAP = 3  #: RFC 2661 section 4.4.5 (PPP PAP)
    NO_AUTHENTICATION = 4  #: RFC 2661 section 4.4.5
    MSCHAP_V1 = 5  #: RFC 2661 section 4.4.5 (Microsoft CHAP Version 1)


#: PPP's default MRU (RFC 1661 section 6.1) and the PPPoE maximum (RFC 2516 section 7).
DEFAULT_MRU = 1500
PPPOE_MRU = 1492
#: The smallest MRU we agree to; RFC 1661 requires every implementation to receive 1500
#: octets anyway, this only stops absurd values.
MIN_MRU = 64
