"""The RFC 1661 section 4.1 option negotiation automaton as a literal transition table.

States (section 4.2), events (section 4.3) and actions (section 4.4). Every (state, event)
pair is in :data:`TABLE`; the RFC's illegal transitions ('-') map to :data:`ILLEGAL`, which
the automaton counts and ignores. The footnote letters (p, r, x) of the RFC table describe
optional behaviour we do not implement (passive, restart, crossed connection handled as the
plain transition).
"""

from __future__ import annotations

from enum import Enum, IntEnum


class State(IntEnum):
    INITIAL = 0  #: RFC 1661 section 4.2
    STARTING = 1  #: RFC 1661 section 4.2
    CLOSED = 2  #: RFC 1661 section 4.2
    STOPPED = 3  #: RFC 1661 section 4.2
    CLOSING = 4  #: RFC 1661 section 4.2
    STOPPING = 5  #: RFC 1661 section 4.2
    REQ_SENT = 6  #: RFC 1661 section 4.2
    ACK_RCVD = 7  #: RFC 1661 section 4.2
    ACK_SENT = 8  #: RFC 1661 section 4.2
    OPENED = 9  #: RFC 1661 section 4.2


class Event(Enum):
    UP = "Up"  # RFC 1661 section 4.3: lower layer is Up
    DOWN = "Down"  # lower layer is Down
    OPEN = "Open"  # administrative Open
    CLOSE = "Close"  # administrative Close
    TO_PLUS = "TO+"  # Timeout with counter > 0
    TO_MINUS = "TO-"  # Timeout with counter expired
    RCR_PLUS = "RCR+"  # Receive-Configure-Request (Good)
    RCR_MINUS = "RCR-"  # Receive-Configure-Request (Bad)
    RCA = "RCA"  # Receive-Configure-Ack
    RCN = "RCN"  # Receive-Configure-Nak/Rej
    RTR = "RTR"  # Receive-Terminate-Request
    RTA = "RTA"  # Receive-Terminate-Ack
    RUC = "RUC"  # Receive-Unknown-Code
    RXJ_PLUS = "RXJ+"  # Receive-Code-Reject (permitted) or Receive-Protocol-Reject
    RXJ_MINUS = "RXJ-"  # Receive-Code-Reject (catastrophic) or Receive-Protocol-Reject
    RXR = "RXR"  # Receive-Echo-Request, Receive-Echo-Reply or Receive-Discard-Request

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class Action(Enum):
    TLU = "tlu"  # RFC 1661 section 4.4: This-Layer-Up
    TLD = "tld"  # This-Layer-Down
    TLS = "tls"  # This-Layer-Started
    TLF = "tlf"  # This-Layer-Finished
    IRC = "irc"  # Initialize-Restart-Count
    ZRC = "zrc"  # Zero-Restart-Count
    SCR = "scr"  # Send-Configure-Request
    SCA = "sca"  # Send-Configure-Ack
    SCN = "scn"  # Send-Configure-Nak/Rej
    STR = "str"  # Send-Terminate-Request
    STA = "sta"  # Send-Terminate-Ack
    SCJ = "scj"  # Send-Code-Reject
    SER = "ser"  # Send-Echo-Reply


Transition = tuple[tuple[Action, ...], State]

#: The RFC's '-' (an event that cannot happen in that state).
ILLEGAL: Transition | None = None

S = State
E = Event
TLU, TLD, TLS, TLF = Action.TLU, Action.TLD, Action.TLS, Action.TLF
IRC, ZRC, SCR, SCA, SCN = Action.IRC, Action.ZRC, Action.SCR, Action.SCA, Action.SCN
STR, STA, SCJ, SER = Action.STR, Action.STA, Action.SCJ, Action.SER

# fmt: off
TABLE: dict[tuple[State, Event], Transition | None] = {
    # -- Initial (0) ---------------------------------------------------------------------
    (S.INITIAL, E.UP): ((), S.CLOSED),
    (S.INITIAL, E.DOWN): ILLEGAL,
    (S.INITIAL, E.OPEN): ((TLS,), S.STARTING),
    (S.INITIAL, E.CLOSE): ((), S.INITIAL),
    (S.INITIAL, E.TO_PLUS): ILLEGAL,
    (S.INITIAL, E.TO_MINUS): ILLEGAL,
    (S.INITIAL, E.RCR_PLUS): ILLEGAL,
    (S.INITIAL, E.RCR_MINUS): ILLEGAL,
    (S.INITIAL, E.RCA): ILLEGAL,
    (S.INITIAL, E.RCN): ILLEGAL,
    (S.INITIAL, E.RTR): ILLEGAL,
    (S.INITIAL, E.RTA): ILLEGAL,
    (S.INITIAL, E.RUC): ILLEGAL,
    (S.INITIAL, E.RXJ_PLUS): ILLEGAL,
    (S.INITIAL, E.RXJ_MINUS): ILLEGAL,
    (S.INITIAL, E.RXR): ILLEGAL,
    # -- Starting (1) --------------------------------------------------------------------
    (S.STARTING, E.UP): ((IRC, SCR), S.REQ_SENT),
    (S.STARTING, E.DOWN): ILLEGAL,
    (S.STARTING, E.OPEN): ((), S.STARTING),
    (S.STARTING, E.CLOSE): ((TLF,), S.INITIAL),
    (S.STARTING, E.TO_PLUS): ILLEGAL,
    (S.STARTING, E.TO_MINUS): ILLEGAL,
    (S.STARTING, E.RCR_PLUS): ILLEGAL,
    (S.STARTING, E.RCR_MINUS): ILLEGAL,
    (S.STARTING, E.RCA): ILLEGAL,
    (S.STARTING, E.RCN): ILLEGAL,
    (S.STARTING, E.RTR): ILLEGAL,
    (S.STARTING, E.RTA): ILLEGAL,
    (S.STARTING, E.RUC): ILLEGAL,
    (S.STARTING, E.RXJ_PLUS): ILLEGAL,
    (S.STARTING, E.RXJ_MINUS): ILLEGAL,
    (S.STARTING, E.RXR): ILLEGAL,
    # -- Closed (2) ----------------------------------------------------------------------
    (S.CLOSED, E.UP): ILLEGAL,
    (S.CLOSED, E.DOWN): ((), S.INITIAL),
    (S.CLOSED, E.OPEN): ((IRC, SCR), S.REQ_SENT),
    (S.CLOSED, E.CLOSE): ((), S.CLOSED),
    (S.CLOSED, E.TO_PLUS): ILLEGAL,
    (S.CLOSED, E.TO_MINUS): ILLEGAL,
    (S.CLOSED, E.RCR_PLUS): ((STA,), S.CLOSED),
    (S.CLOSED, E.RCR_MINUS): ((STA,), S.CLOSED),
    (S.CLOSED, E.RCA): ((STA,), S.CLOSED),
    (S.CLOSED, E.RCN): ((STA,), S.CLOSED),
    (S.CLOSED, E.RTR): ((STA,), S.CLOSED),
    (S.CLOSED, E.RTA): ((), S.CLOSED),
    (S.CLOSED, E.RUC): ((SCJ,), S.CLOSED),
    (S.CLOSED, E.RXJ_PLUS): ((), S.CLOSED),
    (S.CLOSED, E.RXJ_MINUS): ((TLF,), S.CLOSED),
    (S.CLOSED, E.RXR): ((), S.CLOSED),
    # -- Stopped (3) ---------------------------------------------------------------------
    (S.STOPPED, E.UP): ILLEGAL,
    (S.STOPPED, E.DOWN): ((TLS,), S.STARTING),
    (S.STOPPED, E.OPEN): ((), S.STOPPED),
    (S.STOPPED, E.CLOSE): ((), S.CLOSED),
    (S.STOPPED, E.TO_PLUS): ILLEGAL,
    (S.STOPPED, E.TO_MINUS): ILLEGAL,
    (S.STOPPED, E.RCR_PLUS): ((IRC, SCR, SCA), S.ACK_SENT),
    (S.STOPPED, E.RCR_MINUS): ((IRC, SCR, SCN), S.REQ_SENT),
    (S.STOPPED, E.RCA): ((STA,), S.STOPPED),
    (S.STOPPED, E.RCN): ((STA,), S.STOPPED),
    (S.STOPPED, E.RTR): ((STA,), S.STOPPED),
    (S.STOPPED, E.RTA): ((), S.STOPPED),
    (S.STOPPED, E.RUC): ((SCJ,), S.STOPPED),
    (S.STOPPED, E.RXJ_PLUS): ((), S.STOPPED),
    (S.STOPPED, E.RXJ_MINUS): ((TLF,), S.STOPPED),
    (S.STOPPED, E.RXR): ((), S.STOPPED),
    # -- Closing (4) ---------------------------------------------------------------------
    (S.CLOSING, E.UP): ILLEGAL,
    (S.CLOSING, E.DOWN): ((), S.INITIAL),
    (S.CLOSING, E.OPEN): ((), S.STOPPING),
    (S.CLOSING, E.CLOSE): ((), S.CLOSING),
    (S.CLOSING, E.TO_PLUS): ((STR,), S.CLOSING),
    (S.CLOSING, E.TO_MINUS): ((TLF,), S.CLOSED),
    (S.CLOSING, E.RCR_PLUS): ((), S.CLOSING),
    (S.CLOSING, E.RCR_MINUS): ((), S.CLOSING),
    (S.CLOSING, E.RCA): ((), S.CLOSING),
    (S.CLOSING, E.RCN): ((), S.CLOSING),
    (S.CLOSING, E.RTR): ((STA,), S.CLOSING),
    (S.CLOSING, E.RTA): ((TLF,), S.CLOSED),
    (S.CLOSING, E.RUC): ((SCJ,), S.CLOSING),
    (S.CLOSING, E.RXJ_PLUS): ((), S.CLOSING),
    (S.CLOSING, E.RXJ_MINUS): ((TLF,), S.CLOSED),
    (S.CLOSING, E.RXR): ((), S.CLOSING),
    # -- Stopping (5) --------------------------------------------------------------------
    (S.STOPPING, E.UP): ILLEGAL,
    (S.STOPPING, E.DOWN): ((), S.STARTING),
    (S.STOPPING, E.OPEN): ((), S.STOPPING),
    (S.STOPPING, E.CLOSE): ((), S.CLOSING),
    (S.STOPPING, E.TO_PLUS): ((STR,), S.STOPPING),
    (S.STOPPING, E.TO_MINUS): ((TLF,), S.STOPPED),
    (S.STOPPING, E.RCR_PLUS): ((), S.STOPPING),
    (S.STOPPING, E.RCR_MINUS): ((), S.STOPPING),
    (S.STOPPING, E.RCA): ((), S.STOPPING),
    (S.STOPPING, E.RCN): ((), S.STOPPING),
    (S.STOPPING, E.RTR): ((STA,), S.STOPPING),
    (S.STOPPING, E.RTA): ((TLF,), S.STOPPED),
    (S.STOPPING, E.RUC): ((SCJ,), S.STOPPING),
    (S.STOPPING, E.RXJ_PLUS): ((), S.STOPPING),
    (S.STOPPING, E.RXJ_MINUS): ((TLF,), S.STOPPED),
    (S.STOPPING, E.RXR): ((), S.STOPPING),
    # -- Req-Sent (6) --------------------------------------------------------------------
    (S.REQ_SENT, E.UP): ILLEGAL,
    (S.REQ_SENT, E.DOWN): ((), S.STARTING),
    (S.REQ_SENT, E.OPEN): ((), S.REQ_SENT),
    (S.REQ_SENT, E.CLOSE): ((IRC, STR), S.CLOSING),
    (S.REQ_SENT, E.TO_PLUS): ((SCR,), S.REQ_SENT),
    (S.REQ_SENT, E.TO_MINUS): ((TLF,), S.STOPPED),
    (S.REQ_SENT, E.RCR_PLUS): ((SCA,), S.ACK_SENT),
    (S.REQ_SENT, E.RCR_MINUS): ((SCN,), S.REQ_SENT),
    (S.REQ_SENT, E.RCA): ((IRC,), S.ACK_RCVD),
    (S.REQ_SENT, E.RCN): ((IRC, SCR), S.REQ_SENT),
    (S.REQ_SENT, E.RTR): ((STA,), S.REQ_SENT),
    (S.REQ_SENT, E.RTA): ((), S.REQ_SENT),
    (S.REQ_SENT, E.RUC): ((SCJ,), S.REQ_SENT),
    (S.REQ_SENT, E.RXJ_PLUS): ((), S.REQ_SENT),
    (S.REQ_SENT, E.RXJ_MINUS): ((TLF,), S.STOPPED),
    (S.REQ_SENT, E.RXR): ((), S.REQ_SENT),
    # -- Ack-Rcvd (7) --------------------------------------------------------------------
    (S.ACK_RCVD, E.UP): ILLEGAL,
    (S.ACK_RCVD, E.DOWN): ((), S.STARTING),
    (S.ACK_RCVD, E.OPEN): ((), S.ACK_RCVD),
    (S.ACK_RCVD, E.CLOSE): ((IRC, STR), S.CLOSING),
    (S.ACK_RCVD, E.TO_PLUS): ((SCR,), S.REQ_SENT),
    (S.ACK_RCVD, E.TO_MINUS): ((TLF,), S.STOPPED),
    (S.ACK_RCVD, E.RCR_PLUS): ((SCA, TLU), S.OPENED),
    (S.ACK_RCVD, E.RCR_MINUS): ((SCN,), S.ACK_RCVD),
    (S.ACK_RCVD, E.RCA): ((SCR,), S.REQ_SENT),
    (S.ACK_RCVD, E.RCN): ((SCR,), S.REQ_SENT),
    (S.ACK_RCVD, E.RTR): ((STA,), S.REQ_SENT),
    (S.ACK_RCVD, E.RTA): ((), S.REQ_SENT),
    (S.ACK_RCVD, E.RUC): ((SCJ,), S.ACK_RCVD),
    (S.ACK_RCVD, E.RXJ_PLUS): ((), S.REQ_SENT),
    (S.ACK_RCVD, E.RXJ_MINUS): ((TLF,), S.STOPPED),
    (S.ACK_RCVD, E.RXR): ((), S.ACK_RCVD),
    # -- Ack-Sent (8) --------------------------------------------------------------------
    (S.ACK_SENT, E.UP): ILLEGAL,
    (S.ACK_SENT, E.DOWN): ((), S.STARTING),
    (S.ACK_SENT, E.OPEN): ((), S.ACK_SENT),
    (S.ACK_SENT, E.CLOSE): ((IRC, STR), S.CLOSING),
    (S.ACK_SENT, E.TO_PLUS): ((SCR,), S.ACK_SENT),
    (S.ACK_SENT, E.TO_MINUS): ((TLF,), S.STOPPED),
    (S.ACK_SENT, E.RCR_PLUS): ((SCA,), S.ACK_SENT),
    (S.ACK_SENT, E.RCR_MINUS): ((SCN,), S.REQ_SENT),
    (S.ACK_SENT, E.RCA): ((IRC, TLU), S.OPENED),
    (S.ACK_SENT, E.RCN): ((IRC, SCR), S.ACK_SENT),
    (S.ACK_SENT, E.RTR): ((STA,), S.REQ_SENT),
    (S.ACK_SENT, E.RTA): ((), S.ACK_SENT),
    (S.ACK_SENT, E.RUC): ((SCJ,), S.ACK_SENT),
    (S.ACK_SENT, E.RXJ_PLUS): ((), S.ACK_SENT),
    (S.ACK_SENT, E.RXJ_MINUS): ((TLF,), S.STOPPED),
    (S.ACK_SENT, E.RXR): ((), S.ACK_SENT),
    # -- Opened (9) ----------------------------------------------------------------------
    (S.OPENED, E.UP): ILLEGAL,
    (S.OPENED, E.DOWN): ((TLD,), S.STARTING),
    (S.OPENED, E.OPEN): ((), S.OPENED),
    (S.OPENED, E.CLOSE): ((TLD, IRC, STR), S.CLOSING),
    (S.OPENED, E.TO_PLUS): ILLEGAL,
    (S.OPENED, E.TO_MINUS): ILLEGAL,
    (S.OPENED, E.RCR_PLUS): ((TLD, SCR, SCA), S.ACK_SENT),
    (S.OPENED, E.RCR_MINUS): ((TLD, SCR, SCN), S.REQ_SENT),
    (S.OPENED, E.RCA): ((TLD, SCR), S.REQ_SENT),
    (S.OPENED, E.RCN): ((TLD, SCR), S.REQ_SENT),
    (S.OPENED, E.RTR): ((TLD, ZRC, STA), S.STOPPING),
    (S.OPENED, E.RTA): ((TLD, SCR), S.REQ_SENT),
    (S.OPENED, E.RUC): ((SCJ,), S.OPENED),
    (S.OPENED, E.RXJ_PLUS): ((), S.OPENED),
    (S.OPENED, E.RXJ_MINUS): ((TLD, IRC, STR), S.STOPPING),
    (S.OPENED, E.RXR): ((SER,), S.OPENED),
}
# fmt: on

#: States in which the Restart timer runs (those with TO events, RFC 1661 section 4.1).
TIMER_STATES = frozenset({S.CLOSING, S.STOPPING, S.REQ_SENT, S.ACK_RCVD, S.ACK_SENT})
