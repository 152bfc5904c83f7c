"""Incoming-call state machines as transition tables (RFC 2661 sections 7.4.1 and 7.4.2).

Two tables, one per role: :data:`LAC_TABLE` (we place ICRQ and ICCN) and :data:`LNS_TABLE`
(we answer ICRQ with ICRP and accept ICCN). A pair missing from a table is a protocol error
(:func:`session_transition`): the session is cleared with a CDN (Result Code 2, general
error) so the peer does not keep a half-open call. Outgoing calls (OCRQ/OCRP/OCCN, 7.5) are
not offered: an LNS asking for one gets a CDN.
"""

from __future__ import annotations

from enum import Enum, auto


class SessionState(Enum):
    IDLE = auto()  #: RFC 2661 7.4.1/7.4.2 idle
    WAIT_TUNNEL = auto()  #: RFC 2661 7.4.1 wait-tunnel (LAC)
    WAIT_REPLY = auto()  #: RFC 2661 7.4.1 wait-reply (LAC, ICRQ sent)
    WAIT_CONNECT = auto()  #: RFC 2661 7.4.2 wait-connect (LNS, ICRP sent)
    ESTABLISHED = auto()  #: RFC 2661 7.4.1/7.4.2 established
    CLOSED = auto()  #: cleaned up

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class SessionInput(Enum):
    LOCAL_OPEN = auto()
    TUNNEL_OPEN = auto()
    LOCAL_CLOSE = auto()
    TUNNEL_CLOSED = auto()
    RX_ICRQ_OK = auto()
    RX_ICRQ_BAD = auto()
    RX_ICRP_OK = auto()
    RX_ICRP_BAD = auto()
    RX_ICCN_OK = auto()
    RX_ICCN_BAD = auto()
    RX_CDN = auto()
    RX_SLI = auto()
    RX_WEN = auto()
    RX_OTHER = auto()  # OCRQ/OCRP/OCCN or a tunnel message type with a session id
    RX_UNKNOWN_MANDATORY = auto()  # session message with an unknown M=1 AVP (RFC 2661 4.1)
    SETUP_TIMEOUT = auto()  # ICRQ/ICRP acknowledged but never answered

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class SessionAction(Enum):
    WAIT_FOR_TUNNEL = auto()
    SEND_ICRQ = auto()
    SEND_ICRP = auto()  # LNS accepted the ICRQ
    SEND_ICCN = auto()  # LAC: ICRP accepted, report established
    ESTABLISH = auto()  # LNS: ICCN accepted, report established
    SEND_CDN = auto()  # result chosen by the classifier or the caller
    SEND_CDN_UNKNOWN_AVP = auto()  # CDN result 2 error 8
    PEER_CLOSED = auto()  # CDN received
    CLEANUP = auto()  # gone without a message (never announced to the peer)
    TUNNEL_GONE = auto()  # the tunnel was cleared under us
    REPORT = auto()  # SLI / WEN: report an event, nothing else
    IGNORE = auto()
    PROTOCOL_ERROR = auto()  # missing pair: CDN result 2


S = SessionState
I = SessionInput  # noqa: E741
A = SessionAction

_ALL = list(SessionInput)

#: RFC 2661 7.4.1 LAC incoming call states
LAC_TABLE: dict[tuple[SessionState, SessionInput], tuple[SessionAction, SessionState]] = {
    (S.IDLE, I.LOCAL_OPEN): (A.WAIT_FOR_TUNNEL, S.WAIT_TUNNEL),
    (S.IDLE, I.RX_ICCN_OK): (A.CLEANUP, S.IDLE),
    (S.IDLE, I.RX_ICRP_OK): (A.CLEANUP, S.IDLE),
    (S.IDLE, I.RX_CDN): (A.CLEANUP, S.IDLE),
    (S.WAIT_TUNNEL, I.TUNNEL_OPEN): (A.SEND_ICRQ, S.WAIT_REPLY),
    (S.WAIT_TUNNEL, I.LOCAL_CLOSE): (A.CLEANUP, S.CLOSED),
    (S.WAIT_TUNNEL, I.TUNNEL_CLOSED): (A.TUNNEL_GONE, S.CLOSED),
    (S.WAIT_REPLY, I.RX_ICRP_OK): (A.SEND_ICCN, S.ESTABLISHED),
    (S.WAIT_REPLY, I.RX_ICRP_BAD): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_REPLY, I.RX_ICRQ_OK): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_REPLY, I.RX_ICRQ_BAD): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_REPLY, I.RX_CDN): (A.PEER_CLOSED, S.CLOSED),
    (S.WAIT_REPLY, I.RX_ICCN_OK): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_REPLY, I.RX_SLI): (A.REPORT, S.WAIT_REPLY),
    (S.WAIT_REPLY, I.RX_WEN): (A.REPORT, S.WAIT_REPLY),
    (S.WAIT_REPLY, I.RX_UNKNOWN_MANDATORY): (A.SEND_CDN_UNKNOWN_AVP, S.CLOSED),
    (S.WAIT_REPLY, I.LOCAL_CLOSE): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_REPLY, I.TUNNEL_CLOSED): (A.TUNNEL_GONE, S.CLOSED),
    (S.WAIT_REPLY, I.SETUP_TIMEOUT): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_CDN): (A.PEER_CLOSED, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRQ_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRQ_BAD): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRP_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRP_BAD): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICCN_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_SLI): (A.REPORT, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_WEN): (A.REPORT, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_UNKNOWN_MANDATORY): (A.SEND_CDN_UNKNOWN_AVP, S.CLOSED),
    (S.ESTABLISHED, I.LOCAL_CLOSE): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.TUNNEL_CLOSED): (A.TUNNEL_GONE, S.CLOSED),
    **{(s, I.SETUP_TIMEOUT): (A.IGNORE, s) for s in (S.IDLE, S.WAIT_TUNNEL, S.ESTABLISHED)},
    **{(S.CLOSED, i): (A.IGNORE, S.CLOSED) for i in _ALL},
}

#: RFC 2661 7.4.2 LNS incoming call states
LNS_TABLE: dict[tuple[SessionState, SessionInput], tuple[SessionAction, SessionState]] = {
    (S.IDLE, I.RX_ICRQ_OK): (A.SEND_ICRP, S.WAIT_CONNECT),
    (S.IDLE, I.RX_ICRQ_BAD): (A.SEND_CDN, S.CLOSED),
    (S.IDLE, I.RX_ICRP_OK): (A.SEND_CDN, S.CLOSED),
    (S.IDLE, I.RX_ICRP_BAD): (A.SEND_CDN, S.CLOSED),
    (S.IDLE, I.RX_ICCN_OK): (A.CLEANUP, S.CLOSED),
    (S.IDLE, I.RX_ICCN_BAD): (A.CLEANUP, S.CLOSED),
    (S.IDLE, I.RX_CDN): (A.CLEANUP, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_ICCN_OK): (A.ESTABLISH, S.ESTABLISHED),
    (S.WAIT_CONNECT, I.RX_ICCN_BAD): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_ICRQ_OK): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_ICRQ_BAD): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_ICRP_OK): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_ICRP_BAD): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_CDN): (A.PEER_CLOSED, S.CLOSED),
    (S.WAIT_CONNECT, I.RX_SLI): (A.REPORT, S.WAIT_CONNECT),
    (S.WAIT_CONNECT, I.RX_WEN): (A.REPORT, S.WAIT_CONNECT),
    (S.WAIT_CONNECT, I.RX_UNKNOWN_MANDATORY): (A.SEND_CDN_UNKNOWN_AVP, S.CLOSED),
    (S.WAIT_CONNECT, I.LOCAL_CLOSE): (A.SEND_CDN, S.CLOSED),
    (S.WAIT_CONNECT, I.TUNNEL_CLOSED): (A.TUNNEL_GONE, S.CLOSED),
    (S.WAIT_CONNECT, I.SETUP_TIMEOUT): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_CDN): (A.PEER_CLOSED, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRQ_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRQ_BAD): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRP_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICRP_BAD): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICCN_OK): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_ICCN_BAD): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.RX_SLI): (A.REPORT, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_WEN): (A.REPORT, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_UNKNOWN_MANDATORY): (A.SEND_CDN_UNKNOWN_AVP, S.CLOSED),
    (S.ESTABLISHED, I.LOCAL_CLOSE): (A.SEND_CDN, S.CLOSED),
    (S.ESTABLISHED, I.TUNNEL_CLOSED): (A.TUNNEL_GONE, S.CLOSED),
    **{(s, I.SETUP_TIMEOUT): (A.IGNORE, s) for s in (S.IDLE, S.WAIT_TUNNEL, S.ESTABLISHED)},
    **{(S.CLOSED, i): (A.IGNORE, S.CLOSED) for i in _ALL},
}


def session_transition(
    table: dict[tuple[SessionState, SessionInput], tuple[SessionAction, SessionState]],
    state: SessionState,
    event: SessionInput,
) -> tuple[SessionAction, SessionState]:
    """Look up a pair; a missing pair is a protocol error that clears the session."""
    found = table.get((state, event))
    if found is None:
        return (A.PROTOCOL_ERROR, S.CLOSED)
    return found
