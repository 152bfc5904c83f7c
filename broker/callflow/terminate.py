"""Acct-Terminate-Cause values the call flow reports (RFC 2866 section 5.10)."""

from __future__ import annotations

from enum import IntEnum


class TerminateCause(IntEnum):
    USER_REQUEST = 1  #: RFC 2866 5.10 User Request (PADT, LCP Terminate from the CPE)
    LOST_CARRIER = 2  #: RFC 2866 5.10 Lost Carrier (echo loss)
    LOST_SERVICE = 3  #: RFC 2866 5.10 Lost Service (tunnel to the LNS lost)
    IDLE_TIMEOUT = 4  #: RFC 2866 5.10 Idle Timeout
    SESSION_TIMEOUT = 5  #: RFC 2866 5.10 Session Timeout
    ADMIN_RESET = 6  #: RFC 2866 5.10 Admin Reset (operator kill, Disconnect-Request)
    ADMIN_REBOOT = 7  #: RFC 2866 5.10 Admin Reboot (graceful shutdown)
    PORT_ERROR = 8  #: RFC 2866 5.10 Port Error
    NAS_ERROR = 9  #: RFC 2866 5.10 NAS Error
    NAS_REQUEST = 10  #: RFC 2866 5.10 NAS Request
    NAS_REBOOT = 11  #: RFC 2866 5.10 NAS Reboot (crash recovery)
    SERVICE_UNAVAILABLE = 15  #: RFC 2866 5.10 Service Unavailable
    USER_ERROR = 17  #: RFC 2866 5.10 User Error
    HOST_REQUEST = 18  #: RFC 2866 5.10 Host Request (CDN/StopCCN from the LNS)
