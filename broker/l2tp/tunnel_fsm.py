"""Control connection state machine as a transition table (RFC 2661 section 7.2.1).

The RFC's table is extended with the states the reliable transport needs: ``CLOSING`` keeps
the connection for the StopCCN hold time (RFC 2661 5.7: at least one full retransmission
cycle, 31 s) so the last StopCCN is retransmitted or re-acknowledged, then ``CLOSED``.
A pair missing from :data:`TUNNEL_TABLE` is a protocol error (:func:`tunnel_transition`):
the connection is cleared with StopCCN Result Code 7 "Finite State Machine error".
"""

from __future__ import annotations

from enum import Enum, auto


class TunnelState(Enum):
    IDLE = auto()  #: RFC 2661 7.2.1 idle
    WAIT_CTL_REPLY = auto()  #: RFC 2661 7.2.1 wait-ctl-reply (SCCRQ sent)
    WAIT_CTL_CONN = auto()  #: RFC 2661 7.2.1 wait-ctl-conn (SCCRP sent)
    ESTABLISHED = auto()  #: RFC 2661 7.2.1 established
    CLOSING = auto()  #: RFC 2661 5.7: StopCCN sent or received, state held 31 s
    CLOSED = auto()  #: cleaned up, the endpoint forgets the tunnel

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class TunnelInput(Enum):
    LOCAL_OPEN = auto()
    LOCAL_CLOSE = auto()
    RX_SCCRQ_OK = auto()
    RX_SCCRQ_BAD = auto()
    RX_SCCRP_OK = auto()
    RX_SCCRP_BAD = auto()
    RX_SCCCN_OK = auto()
    RX_SCCCN_BAD = auto()
    RX_STOPCCN = auto()
    RX_HELLO = auto()
    RX_SESSION = auto()  # ICRQ, ICRP, ICCN, CDN, SLI, WEN, OC*: for the session layer
    RX_UNKNOWN_MANDATORY = auto()  # tunnel-scoped message with an unknown M=1 AVP (RFC 4.1)
    RETRANSMIT_EXHAUSTED = auto()
    HELLO_DUE = auto()
    HOLD_EXPIRED = auto()
    SETUP_TIMEOUT = auto()  # acknowledged but never answered (no SCCRP / SCCCN)

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class TunnelAction(Enum):
    SEND_SCCRQ = auto()
    SEND_SCCRP = auto()
    SEND_SCCCN = auto()  # and report the tunnel up, start waiting sessions
    ESTABLISH = auto()  # SCCCN accepted: report the tunnel up
    SEND_STOPCCN = auto()  # with the result the classifier or the caller chose
    STOP_UNKNOWN_AVP = auto()  # StopCCN result 2 error 8 (RFC 2661 4.1, 4.4.2)
    PEER_STOPPED = auto()  # StopCCN received: ack, clear sessions, hold
    DISPATCH = auto()  # hand to the session layer
    ACK_ONLY = auto()  # nothing beyond the transport's acknowledgement
    SEND_HELLO = auto()
    CLEAR = auto()  # retransmission exhausted / never started: gone without a StopCCN
    FINISH = auto()  # hold time over
    PROTOCOL_ERROR = auto()  # missing pair: StopCCN result 7


S = TunnelState
I = TunnelInput  # noqa: E741
A = TunnelAction

_RX_ALL = [i for i in TunnelInput if i.name.startswith("RX_")]

TUNNEL_TABLE: dict[tuple[TunnelState, TunnelInput], tuple[TunnelAction, TunnelState]] = {
    # idle (RFC 2661 7.2.1)
    (S.IDLE, I.LOCAL_OPEN): (A.SEND_SCCRQ, S.WAIT_CTL_REPLY),
    (S.IDLE, I.RX_SCCRQ_OK): (A.SEND_SCCRP, S.WAIT_CTL_CONN),
    (S.IDLE, I.RX_SCCRQ_BAD): (A.SEND_STOPCCN, S.CLOSING),
    (S.IDLE, I.LOCAL_CLOSE): (A.CLEAR, S.CLOSED),
    (S.IDLE, I.RX_STOPCCN): (A.PEER_STOPPED, S.CLOSING),
    (S.IDLE, I.HELLO_DUE): (A.ACK_ONLY, S.IDLE),
    (S.IDLE, I.SETUP_TIMEOUT): (A.ACK_ONLY, S.IDLE),
    # wait-ctl-reply
    (S.WAIT_CTL_REPLY, I.RX_SCCRP_OK): (A.SEND_SCCCN, S.ESTABLISHED),
    (S.WAIT_CTL_REPLY, I.RX_SCCRP_BAD): (A.SEND_STOPCCN, S.CLOSING),
    (S.WAIT_CTL_REPLY, I.RX_STOPCCN): (A.PEER_STOPPED, S.CLOSING),
    (S.WAIT_CTL_REPLY, I.RX_HELLO): (A.ACK_ONLY, S.WAIT_CTL_REPLY),
    (S.WAIT_CTL_REPLY, I.RX_UNKNOWN_MANDATORY): (A.STOP_UNKNOWN_AVP, S.CLOSING),
    (S.WAIT_CTL_REPLY, I.LOCAL_CLOSE): (A.SEND_STOPCCN, S.CLOSING),
    (S.WAIT_CTL_REPLY, I.RETRANSMIT_EXHAUSTED): (A.CLEAR, S.CLOSED),
    (S.WAIT_CTL_REPLY, I.HELLO_DUE): (A.ACK_ONLY, S.WAIT_CTL_REPLY),
    (S.WAIT_CTL_REPLY, I.SETUP_TIMEOUT): (A.SEND_STOPCCN, S.CLOSING),
    # wait-ctl-conn
    (S.WAIT_CTL_CONN, I.RX_SCCCN_OK): (A.ESTABLISH, S.ESTABLISHED),
    (S.WAIT_CTL_CONN, I.RX_SCCCN_BAD): (A.SEND_STOPCCN, S.CLOSING),
    (S.WAIT_CTL_CONN, I.RX_STOPCCN): (A.PEER_STOPPED, S.CLOSING),
    (S.WAIT_CTL_CONN, I.RX_HELLO): (A.ACK_ONLY, S.WAIT_CTL_CONN),
    (S.WAIT_CTL_CONN, I.RX_UNKNOWN_MANDATORY): (A.STOP_UNKNOWN_AVP, S.CLOSING),
    (S.WAIT_CTL_CONN, I.LOCAL_CLOSE): (A.SEND_STOPCCN, S.CLOSING),
    (S.WAIT_CTL_CONN, I.RETRANSMIT_EXHAUSTED): (A.CLEAR, S.CLOSED),
    (S.WAIT_CTL_CONN, I.HELLO_DUE): (A.ACK_ONLY, S.WAIT_CTL_CONN),
    (S.WAIT_CTL_CONN, I.SETUP_TIMEOUT): (A.SEND_STOPCCN, S.CLOSING),
    # established
    (S.ESTABLISHED, I.RX_SESSION): (A.DISPATCH, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_HELLO): (A.ACK_ONLY, S.ESTABLISHED),
    (S.ESTABLISHED, I.RX_STOPCCN): (A.PEER_STOPPED, S.CLOSING),
    (S.ESTABLISHED, I.RX_UNKNOWN_MANDATORY): (A.STOP_UNKNOWN_AVP, S.CLOSING),
    (S.ESTABLISHED, I.LOCAL_CLOSE): (A.SEND_STOPCCN, S.CLOSING),
    (S.ESTABLISHED, I.RETRANSMIT_EXHAUSTED): (A.CLEAR, S.CLOSED),
    (S.ESTABLISHED, I.HELLO_DUE): (A.SEND_HELLO, S.ESTABLISHED),
    (S.ESTABLISHED, I.SETUP_TIMEOUT): (A.ACK_ONLY, S.ESTABLISHED),
    # closing: only acknowledge (the transport does), wait for the hold time
    **{(S.CLOSING, i): (A.ACK_ONLY, S.CLOSING) for i in _RX_ALL},
    (S.CLOSING, I.LOCAL_CLOSE): (A.ACK_ONLY, S.CLOSING),
    (S.CLOSING, I.RETRANSMIT_EXHAUSTED): (A.ACK_ONLY, S.CLOSING),
    (S.CLOSING, I.HELLO_DUE): (A.ACK_ONLY, S.CLOSING),
    (S.CLOSING, I.SETUP_TIMEOUT): (A.ACK_ONLY, S.CLOSING),
    (S.CLOSING, I.HOLD_EXPIRED): (A.FINISH, S.CLOSED),
    # closed: nothing happens any more
    **{(S.CLOSED, i): (A.ACK_ONLY, S.CLOSED) for i in TunnelInput},
}


def tunnel_transition(state: TunnelState, event: TunnelInput) -> tuple[TunnelAction, TunnelState]:
    """Look up a pair; a missing pair is a protocol error that clears the connection."""
    found = TUNNEL_TABLE.get((state, event))
    if found is None:
        return (A.PROTOCOL_ERROR, S.CLOSING)
    return found
