"""RADIUS wire numbers: packet codes, attribute types and the attribute values we use.

RFC 2865 sections 3-5 (codes, attributes), RFC 2866 section 5 (accounting), RFC 2867 section 4
(tunnel accounting), RFC 2868 section 3 (tunnel attributes), RFC 2869 section 5 (extensions),
RFC 5176 section 3 (Disconnect/CoA), RFC 5997 (Status-Server), RFC 4679 (DSL Forum VSAs).
"""

from __future__ import annotations

from enum import IntEnum

#: RFC 2865 section 3: the header is Code, Identifier, Length, Authenticator.
HEADER_LENGTH = 20
#: RFC 2865 section 3: Length is at most 4096 octets.
MAX_PACKET_LENGTH = 4096
#: RFC 2865 section 3: the Authenticator is 16 octets.
AUTHENTICATOR_LENGTH = 16
#: RFC 2865 section 5: an attribute value is at most 253 octets.
MAX_ATTRIBUTE_VALUE = 253
#: RFC 2865 section 3: the default authentication port.
AUTH_PORT = 1812
#: RFC 2866 section 3: the default accounting port.
ACCT_PORT = 1813
#: RFC 5176 section 3: the default Dynamic Authorization port.
COA_PORT = 3799
#: SMI Network Management Private Enterprise Code of the DSL Forum (RFC 4679 section 3.3).
VENDOR_DSL_FORUM = 3561


class Code(IntEnum):
    ACCESS_REQUEST = 1  #: RFC 2865 section 4.1
    ACCESS_ACCEPT = 2  #: RFC 2865 section 4.2
    ACCESS_REJECT = 3  #: RFC 2865 section 4.3
    ACCOUNTING_REQUEST = 4  #: RFC 2866 section 4.1
    ACCOUNTING_RESPONSE = 5  #: RFC 2866 section 4.2
    ACCESS_CHALLENGE = 11  #: RFC 2865 section 4.4
    STATUS_SERVER = 12  #: RFC 5997 section 3
    STATUS_CLIENT = 13  #: RFC 2865 section 3 (reserved)
    DISCONNECT_REQUEST = 40  #: RFC 5176 section 3
    DISCONNECT_ACK = 41  #: RFC 5176 section 3
    DISCONNECT_NAK = 42  #: RFC 5176 section 3
    COA_REQUEST = 43  #: RFC 5176 section 3
    COA_ACK = 44  #: RFC 5176 section 3
    COA_NAK = 45  #: RFC 5176 section 3


class Attr(IntEnum):
    USER_NAME = 1  #: RFC 2865 section 5.1
    USER_PASSWORD = 2  #: RFC 2865 section 5.2
    CHAP_PASSWORD = 3  #: RFC 2865 section 5.3
    NAS_IP_ADDRESS = 4  #: RFC 2865 section 5.4
    NAS_PORT = 5  #: RFC 2865 section 5.5
    SERVICE_TYPE = 6  #: RFC 2865 section 5.6
    FRAMED_PROTOCOL = 7  #: RFC 2865 section 5.7
    FRAMED_IP_ADDRESS = 8  #: RFC 2865 section 5.8
    FRAMED_IP_NETMASK = 9  #: RFC 2865 section 5.9
    FILTER_ID = 11  #: RFC 2865 section 5.11
    FRAMED_MTU = 12  #: RFC 2865 section 5.12
    REPLY_MESSAGE = 18  #: RFC 2865 section 5.18
    STATE = 24  #: RFC 2865 section 5.24
    CLASS = 25  #: RFC 2865 section 5.25
    VENDOR_SPECIFIC = 26  #: RFC 2865 section 5.26
    SESSION_TIMEOUT = 27  #: RFC 2865 section 5.27
    IDLE_TIMEOUT = 28  #: RFC 2865 section 5.28
    CALLED_STATION_ID = 30  #: RFC 2865 section 5.30
    CALLING_STATION_ID = 31  #: RFC 2865 section 5.31
    NAS_IDENTIFIER = 32  #: RFC 2865 section 5.32
    PROXY_STATE = 33  #: RFC 2865 section 5.33
    ACCT_STATUS_TYPE = 40  #: RFC 2866 section 5.1
    ACCT_DELAY_TIME = 41  #: RFC 2866 section 5.2
    ACCT_INPUT_OCTETS = 42  #: RFC 2866 section 5.3
    ACCT_OUTPUT_OCTETS = 43  #: RFC 2866 section 5.4
    ACCT_SESSION_ID = 44  #: RFC 2866 section 5.5
    ACCT_AUTHENTIC = 45  #: RFC 2866 section 5.6
    ACCT_SESSION_TIME = 46  #: RFC 2866 section 5.7
    ACCT_INPUT_PACKETS = 47  #: RFC 2866 section 5.8
    ACCT_OUTPUT_PACKETS = 48  #: RFC 2866 section 5.9
    ACCT_TERMINATE_CAUSE = 49  #: RFC 2866 section 5.10
    ACCT_MULTI_SESSION_ID = 50  #: RFC 2866 section 5.11
    ACCT_LINK_COUNT = 51  #: RFC 2866 section 5.12
    ACCT_INPUT_GIGAWORDS = 52  #: RFC 2869 section 5.1
    ACCT_OUTPUT_GIGAWORDS = 53  #: RFC 2869 section 5.2
    EVENT_TIMESTAMP = 55  #: RFC 2869 section 5.3
    CHAP_CHALLENGE = 60  #: RFC 2865 section 5.40
    NAS_PORT_TYPE = 61  #: RFC 2865 section 5.41
    PORT_LIMIT = 62  #: RFC 2865 section 5.42
    TUNNEL_TYPE = 64  #: RFC 2868 section 3.1
    TUNNEL_MEDIUM_TYPE = 65  #: RFC 2868 section 3.2
    TUNNEL_CLIENT_ENDPOINT = 66  #: RFC 2868 section 3.3
    TUNNEL_SERVER_ENDPOINT = 67  #: RFC 2868 section 3.4
    ACCT_TUNNEL_CONNECTION = 68  #: RFC 2867 section 4.1
    TUNNEL_PASSWORD = 69  #: RFC 2868 section 3.5
    CONNECT_INFO = 77  #: RFC 2869 section 5.11
    EAP_MESSAGE = 79  #: RFC 2869 section 5.13
    MESSAGE_AUTHENTICATOR = 80  #: RFC 2869 section 5.14, RFC 3579 section 3.2
    TUNNEL_PRIVATE_GROUP_ID = 81  #: RFC 2868 section 3.6
    TUNNEL_ASSIGNMENT_ID = 82  #: RFC 2868 section 3.7
    TUNNEL_PREFERENCE = 83  #: RFC 2868 section 3.8
    ACCT_INTERIM_INTERVAL = 85  #: RFC 2869 section 5.16
    ACCT_TUNNEL_PACKETS_LOST = 86  #: RFC 2867 section 4.2
    NAS_PORT_ID = 87  #: RFC 2869 section 5.17
    FRAMED_POOL = 88  #: RFC 2869 section 5.18
    TUNNEL_CLIENT_AUTH_ID = 90  #: RFC 2868 section 3.9
    TUNNEL_SERVER_AUTH_ID = 91  #: RFC 2868 section 3.10
    ERROR_CAUSE = 101  #: RFC 5176 section 3.5


class DslForumAttr(IntEnum):
    """Vendor-Type of the DSL Forum VSAs (vendor 3561)."""

    AGENT_CIRCUIT_ID = 1  #: RFC 4679 section 3.3.1
    AGENT_REMOTE_ID = 2  #: RFC 4679 section 3.3.2
    ACTUAL_DATA_RATE_UPSTREAM = 129  #: RFC 4679 section 3.3.3
    ACTUAL_DATA_RATE_DOWNSTREAM = 130  #: RFC 4679 section 3.3.4
    ACCESS_LOOP_ENCAPSULATION = 144  #: RFC 4679 section 3.3.17
    IWF_SESSION = 254  #: RFC 4679 section 3.3.18


class ServiceType(IntEnum):
    LOGIN_USER = 1  #: RFC 2865 section 5.6
    FRAMED_USER = 2  #: RFC 2865 section 5.6
    AUTHENTICATE_ONLY = 8  #: RFC 2865 section 5.6
    AUTHORIZE_ONLY = 17  #: RFC 5176 section 3.2


class FramedProtocol(IntEnum):
    PPP = 1  #: RFC 2865 section 5.7


class NasPortType(IntEnum):
    ASYNC = 0  #: RFC 2865 section 5.41
    VIRTUAL = 5  #: RFC 2865 section 5.41
    ETHERNET = 15  #: RFC 2865 section 5.41
    XDSL = 16  #: RFC 2865 section 5.41
    CABLE = 17  #: RFC 2865 section 5.41
    PPPOA = 30  #: RFC 4603 section 2
    PPPOEOA = 31  #: RFC 4603 section 2
    PPPOEOE = 32  #: RFC 4603 section 2
    PPPOEOVLAN = 33  #: RFC 4603 section 2
    PPPOEOQINQ = 34  #: RFC 4603 section 2


class TunnelType(IntEnum):
    PPTP = 1  #: RFC 2868 section 3.1
    L2F = 2  #: RFC 2868 section 3.1
    L2TP = 3  #: RFC 2868 section 3.1
    ATMP = 4  #: RFC 2868 section 3.1
    VTP = 5  #: RFC 2868 section 3.1
    AH = 6  #: RFC 2868 section 3.1
    IP = 7  #: RFC 2868 section 3.1
    MIN_IP_IP = 8  #: RFC 2868 section 3.1
    ESP = 9  #: RFC 2868 section 3.1
    GRE = 10  #: RFC 2868 section 3.1
    DVS = 11  #: RFC 2868 section 3.1
    IP_IN_IP = 12  #: RFC 2868 section 3.1


class TunnelMediumType(IntEnum):
    IPV4 = 1  #: RFC 2868 section 3.2
    IPV6 = 2  #: RFC 2868 section 3.2
    NSAP = 3  #: RFC 2868 section 3.2
    HDLC = 4  #: RFC 2868 section 3.2
    BBN_1822 = 5  #: RFC 2868 section 3.2
    IEEE_802 = 6  #: RFC 2868 section 3.2
    E163 = 7  #: RFC 2868 section 3.2
    E164 = 8  #: RFC 2868 section 3.2
    F69 = 9  #: RFC 2868 section 3.2
    X121 = 10  #: RFC 2868 section 3.2
    IPX = 11  #: RFC 2868 section 3.2
    APPLETALK = 12  #: RFC 2868 section 3.2
    DECNET_IV = 13  #: RFC 2868 section 3.2
    BANYAN_VINES = 14  #: RFC 2868 section 3.2
    E164_NSAP = 15  #: RFC 2868 section 3.2


class AcctStatusType(IntEnum):
    START = 1  #: RFC 2866 section 5.1
    STOP = 2  #: RFC 2866 section 5.1
    INTERIM_UPDATE = 3  #: RFC 2866 section 5.1, RFC 2869 section 2.1
    ACCOUNTING_ON = 7  #: RFC 2866 section 5.1
    ACCOUNTING_OFF = 8  #: RFC 2866 section 5.1
    TUNNEL_START = 9  #: RFC 2867 section 4.1
    TUNNEL_STOP = 10  #: RFC 2867 section 4.1
    TUNNEL_REJECT = 11  #: RFC 2867 section 4.1
    TUNNEL_LINK_START = 12  #: RFC 2867 section 4.1
    TUNNEL_LINK_STOP = 13  #: RFC 2867 section 4.1
    TUNNEL_LINK_REJECT = 14  #: RFC 2867 section 4.1


class AcctTerminateCause(IntEnum):
    USER_REQUEST = 1  #: RFC 2866 section 5.10
    LOST_CARRIER = 2  #: RFC 2866 section 5.10
    LOST_SERVICE = 3  #: RFC 2866 section 5.10
    IDLE_TIMEOUT = 4  #: RFC 2866 section 5.10
    SESSION_TIMEOUT = 5  #: RFC 2866 section 5.10
    ADMIN_RESET = 6  #: RFC 2866 section 5.10
    ADMIN_REBOOT = 7  #: RFC 2866 section 5.10
    PORT_ERROR = 8  #: RFC 2866 section 5.10
    NAS_ERROR = 9  #: RFC 2866 section 5.10
    NAS_REQUEST = 10  #: RFC 2866 section 5.10
    NAS_REBOOT = 11  #: RFC 2866 section 5.10
    PORT_UNNEEDED = 12  #: RFC 2866 section 5.10
    PORT_PREEMPTED = 13  #: RFC 2866 section 5.10
    PORT_SUSPENDED = 14  #: RFC 2866 section 5.10
    SERVICE_UNAVAILABLE = 15  #: RFC 2866 section 5.10
    CALLBACK = 16  #: RFC 2866 section 5.10
    USER_ERROR = 17  #: RFC 2866 section 5.10
    HOST_REQUEST = 18  #: RFC 2866 section 5.10


class ErrorCause(IntEnum):
    RESIDUAL_SESSION_CONTEXT_REMOVED = 201  #: RFC 5176 section 3.5
    INVALID_EAP_PACKET = 202  #: RFC 5176 section 3.5
    UNSUPPORTED_ATTRIBUTE = 401  #: RFC 5176 section 3.5
    MISSING_ATTRIBUTE = 402  #: RFC 5176 section 3.5
    NAS_IDENTIFICATION_MISMATCH = 403  #: RFC 5176 section 3.5
    INVALID_REQUEST = 404  #: RFC 5176 section 3.5
    UNSUPPORTED_SERVICE = 405  #: RFC 5176 section 3.5
    UNSUPPORTED_EXTENSION = 406  #: RFC 5176 section 3.5
    INVALID_ATTRIBUTE_VALUE = 407  #: RFC 5176 section 3.5
    ADMINISTRATIVELY_PROHIBITED = 501  #: RFC 5176 section 3.5
    REQUEST_NOT_ROUTABLE = 502  #: RFC 5176 section 3.5
    SESSION_CONTEXT_NOT_FOUND = 503  #: RFC 5176 section 3.5
    SESSION_CONTEXT_NOT_REMOVABLE = 504  #: RFC 5176 section 3.5
    OTHER_PROXY_PROCESSING_ERROR = 505  #: RFC 5176 section 3.5
    RESOURCES_UNAVAILABLE = 506  #: RFC 5176 section 3.5
    REQUEST_INITIATED = 507  #: RFC 5176 section 3.5
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508  #: RFC 5176 section 3.5
