"""L2TP wire numbers (RFC 2661 sections 3.1, 3.2, 4.4; RFC 3145 section 2).

Every value the codec or the engines put on the wire is an :class:`~enum.IntEnum` member
here, with the RFC section that defines it.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

L2TP_VERSION = 2  #: RFC 2661 3.1, Ver field
L2TP_PORT = 1701  #: RFC 2661 8.1, UDP port
CONTROL_HEADER_LEN = 12  #: RFC 2661 3.1, T=1 L=1 S=1 O=0: flags, Length, ids, Ns, Nr
AVP_HEADER_LEN = 6  #: RFC 2661 4.1, flags+Length, Vendor ID, Attribute Type
AVP_MAX_LEN = 1023  #: RFC 2661 4.1, 10-bit Length field
VENDOR_IETF = 0  #: RFC 2661 4.1, Vendor ID 0 = IETF attributes


class HeaderFlag(IntFlag):
    """Bits of the first header word (RFC 2661 3.1)."""

    TYPE = 0x8000  #: RFC 2661 3.1, T bit: 1 = control message
    LENGTH = 0x4000  #: RFC 2661 3.1, L bit: Length field present
    SEQUENCE = 0x0800  #: RFC 2661 3.1, S bit: Ns and Nr present
    OFFSET = 0x0200  #: RFC 2661 3.1, O bit: Offset Size present
    PRIORITY = 0x0100  #: RFC 2661 3.1, P bit: data message priority
    VERSION_MASK = 0x000F  #: RFC 2661 3.1, Ver field


class AvpFlag(IntFlag):
    """Bits of the first AVP header word (RFC 2661 4.1)."""

    MANDATORY = 0x8000  #: RFC 2661 4.1, M bit
    HIDDEN = 0x4000  #: RFC 2661 4.1, H bit
    RESERVED = 0x3C00  #: RFC 2661 4.1, rsvd bits: set -> treat AVP as unrecognized
    LENGTH_MASK = 0x03FF  #: RFC 2661 4.1, 10-bit Length


class MessageType(IntEnum):
    """Control message types (Message Type AVP value)."""

    SCCRQ = 1  #: RFC 2661 3.2, Start-Control-Connection-Request
    SCCRP = 2  #: RFC 2661 3.2, Start-Control-Connection-Reply
    SCCCN = 3  #: RFC 2661 3.2, Start-Control-Connection-Connected
    StopCCN = 4  #: RFC 2661 3.2, Stop-Control-Connection-Notification
    HELLO = 6  #: RFC 2661 3.2, Hello
    OCRQ = 7  #: RFC 2661 3.2, Outgoing-Call-Request
    OCRP = 8  #: RFC 2661 3.2, Outgoing-Call-Reply
    OCCN = 9  #: RFC 2661 3.2, Outgoing-Call-Connected
    ICRQ = 10  #: RFC 2661 3.2, Incoming-Call-Request
    ICRP = 11  #: RFC 2661 3.2, Incoming-Call-Reply
    ICCN = 12  #: RFC 2661 3.2, Incoming-Call-Connected
    CDN = 14  #: RFC 2661 3.2, Call-Disconnect-Notify
    WEN = 15  #: RFC 2661 3.2, WAN-Error-Notify
    SLI = 16  #: RFC 2661 3.2, Set-Link-Info


#: Message types that belong to a session (RFC 2661 4.1: an unknown M=1 AVP in these ends
#: the session with a CDN; in the others it ends the tunnel with a StopCCN).
SESSION_MESSAGE_TYPES = frozenset(
    {
        MessageType.OCRQ,
        MessageType.OCRP,
        MessageType.OCCN,
        MessageType.ICRQ,
        MessageType.ICRP,
        MessageType.ICCN,
        MessageType.CDN,
        MessageType.WEN,
        MessageType.SLI,
    }
)


class AvpType(IntEnum):
    """IETF (Vendor ID 0) attribute types."""

    MESSAGE_TYPE = 0  #: RFC 2661 4.4.1
    RESULT_CODE = 1  #: RFC 2661 4.4.2
    PROTOCOL_VERSION = 2  #: RFC 2661 4.4.3
    FRAMING_CAPABILITIES = 3  #: RFC 2661 4.4.3
    BEARER_CAPABILITIES = 4  #: RFC 2661 4.4.3
    TIE_BREAKER = 5  #: RFC 2661 4.4.3
    FIRMWARE_REVISION = 6  #: RFC 2661 4.4.3
    HOST_NAME = 7  #: RFC 2661 4.4.3
    VENDOR_NAME = 8  #: RFC 2661 4.4.3
    ASSIGNED_TUNNEL_ID = 9  #: RFC 2661 4.4.3
    RECEIVE_WINDOW_SIZE = 10  #: RFC 2661 4.4.3
    CHALLENGE = 11  #: RFC 2661 4.4.3
    Q931_CAUSE = 12  #: RFC 2661 4.4.4
    CHALLENGE_RESPONSE = 13  #: RFC 2661 4.4.3
    ASSIGNED_SESSION_ID = 14  #: RFC 2661 4.4.4
    CALL_SERIAL_NUMBER = 15  #: RFC 2661 4.4.4
    MINIMUM_BPS = 16  #: RFC 2661 4.4.4
    MAXIMUM_BPS = 17  #: RFC 2661 4.4.4
    BEARER_TYPE = 18  #: RFC 2661 4.4.4
    FRAMING_TYPE = 19  #: RFC 2661 4.4.4
    CALLED_NUMBER = 21  #: RFC 2661 4.4.4
    CALLING_NUMBER = 22  #: RFC 2661 4.4.4
    SUB_ADDRESS = 23  #: RFC 2661 4.4.4
    TX_CONNECT_SPEED = 24  #: RFC 2661 4.4.4
    PHYSICAL_CHANNEL_ID = 25  #: RFC 2661 4.4.4
    INITIAL_RECEIVED_LCP_CONFREQ = 26  #: RFC 2661 4.4.5
    LAST_SENT_LCP_CONFREQ = 27  #: RFC 2661 4.4.5
    LAST_RECEIVED_LCP_CONFREQ = 28  #: RFC 2661 4.4.5
    PROXY_AUTHEN_TYPE = 29  #: RFC 2661 4.4.5
    PROXY_AUTHEN_NAME = 30  #: RFC 2661 4.4.5
    PROXY_AUTHEN_CHALLENGE = 31  #: RFC 2661 4.4.5
    PROXY_AUTHEN_ID = 32  #: RFC 2661 4.4.5
    PROXY_AUTHEN_RESPONSE = 33  #: RFC 2661 4.4.5
    CALL_ERRORS = 34  #: RFC 2661 4.4.6
    ACCM = 35  #: RFC 2661 4.4.6
    RANDOM_VECTOR = 36  #: RFC 2661 4.4.3
    PRIVATE_GROUP_ID = 37  #: RFC 2661 4.4.4
    RX_CONNECT_SPEED = 38  #: RFC 2661 4.4.4
    SEQUENCING_REQUIRED = 39  #: RFC 2661 4.4.4
    PPP_DISCONNECT_CAUSE = 46  #: RFC 3145 2


class StopCcnResult(IntEnum):
    """Result Code values in a StopCCN."""

    GENERAL_REQUEST = 1  #: RFC 2661 4.4.2, general request to clear control connection
    GENERAL_ERROR = 2  #: RFC 2661 4.4.2, general error, Error Code indicates the problem
    CHANNEL_EXISTS = 3  #: RFC 2661 4.4.2, control channel already exists
    NOT_AUTHORIZED = 4  #: RFC 2661 4.4.2, requester is not authorized
    UNSUPPORTED_VERSION = 5  #: RFC 2661 4.4.2, protocol version not supported
    SHUTTING_DOWN = 6  #: RFC 2661 4.4.2, requester is being shut down
    FSM_ERROR = 7  #: RFC 2661 4.4.2, finite state machine error


class CdnResult(IntEnum):
    """Result Code values in a CDN."""

    LOST_CARRIER = 1  #: RFC 2661 4.4.2, call disconnected due to loss of carrier
    GENERAL_ERROR = 2  #: RFC 2661 4.4.2, reason indicated in Error Code
    ADMINISTRATIVE = 3  #: RFC 2661 4.4.2, administrative reasons
    TEMPORARY_NO_FACILITIES = 4  #: RFC 2661 4.4.2, temporary lack of facilities
    PERMANENT_NO_FACILITIES = 5  #: RFC 2661 4.4.2, permanent lack of facilities
    INVALID_DESTINATION = 6  #: RFC 2661 4.4.2, invalid destination
    NO_CARRIER = 7  #: RFC 2661 4.4.2, no carrier detected
    BUSY = 8  #: RFC 2661 4.4.2, busy signal
    NO_DIAL_TONE = 9  #: RFC 2661 4.4.2, no dial tone
    TIMEOUT = 10  #: RFC 2661 4.4.2, not established within time allotted by LAC
    NO_FRAMING = 11  #: RFC 2661 4.4.2, no appropriate framing detected


class ErrorCode(IntEnum):
    """General error codes carried in the Result Code AVP."""

    NO_GENERAL_ERROR = 0  #: RFC 2661 4.4.2
    NO_CONTROL_CONNECTION = 1  #: RFC 2661 4.4.2, no control connection exists yet
    BAD_LENGTH = 2  #: RFC 2661 4.4.2, length is wrong
    BAD_VALUE = 3  #: RFC 2661 4.4.2, a field is out of range or reserved non-zero
    INSUFFICIENT_RESOURCES = 4  #: RFC 2661 4.4.2
    INVALID_SESSION_ID = 5  #: RFC 2661 4.4.2
    VENDOR_SPECIFIC = 6  #: RFC 2661 4.4.2, generic vendor-specific error
    TRY_ANOTHER = 7  #: RFC 2661 4.4.2, try another LNS (message names it)
    UNKNOWN_MANDATORY_AVP = 8  #: RFC 2661 4.4.2, unknown mandatory AVP received


class ProxyAuthenType(IntEnum):
    """Proxy Authen Type AVP values."""

    RESERVED = 0  #: RFC 2661 4.4.5
    TEXTUAL = 1  #: RFC 2661 4.4.5, textual username/password exchange
    CHAP = 2  #: RFC 2661 4.4.5, PPP CHAP
    PAP = 3  #: RFC 2661 4.4.5, PPP PAP
    NONE = 4  #: RFC 2661 4.4.5, no authentication
    MSCHAP_V1 = 5  #: RFC 2661 4.4.5, Microsoft CHAP version 1


class FramingCap(IntFlag):
    """Framing Capabilities / Framing Type bits."""

    SYNC = 0x1  #: RFC 2661 4.4.3, S bit: synchronous framing
    ASYNC = 0x2  #: RFC 2661 4.4.3, A bit: asynchronous framing


class BearerCap(IntFlag):
    """Bearer Capabilities / Bearer Type bits."""

    DIGITAL = 0x1  #: RFC 2661 4.4.3, D bit: digital access
    ANALOG = 0x2  #: RFC 2661 4.4.3, A bit: analog access


class PppDisconnectDirection(IntEnum):
    """Direction field of the PPP Disconnect Cause Code AVP."""

    GLOBAL = 0  #: RFC 3145 2, global error
    AT_PEER = 1  #: RFC 3145 2, at peer
    AT_LOCAL = 2  #: RFC 3145 2, at local


PROTOCOL_VERSION_1_0 = b"\x01\x00"  #: RFC 2661 4.4.3, Ver 1 Rev 0
