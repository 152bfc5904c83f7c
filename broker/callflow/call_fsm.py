"""Per-subscriber call state machine (DESIGN.md section 1; RFC 2809 compulsory tunneling).

DISCOVERED -> LCP -> AUTH -> RADIUS -> SELECTING -> TUNNELING -> SPLICED -> CLOSING -> CLOSED.
A transition table maps (state, input) to (action, next state); the orchestrator owns the
actions. A pair missing from the table is an input that cannot happen in that state: the
orchestrator counts it and ignores it (``lookup`` returns None).
"""

from __future__ import annotations

from enum import Enum


class CallState(Enum):
    DISCOVERED = "discovered"  # PADS sent, PPP not yet negotiated
    LCP = "lcp"  # LCP negotiating
    AUTH = "auth"  # LCP opened, waiting for PAP/CHAP credentials
    RADIUS = "radius"  # Access-Request outstanding
    SELECTING = "selecting"  # load view / reservation in progress
    TUNNELING = "tunneling"  # tunnel and/or session being set up with an LNS
    SPLICED = "spliced"  # ICCN sent, frames spliced, accounting started
    CLOSING = "closing"  # waiting for the data plane to hand back counters
    CLOSED = "closed"

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


class CallInput(Enum):
    LCP_STARTED = "lcp-started"
    LCP_OPENED = "lcp-opened"
    CREDENTIALS = "credentials"
    RADIUS_ACCEPT = "radius-accept"
    RADIUS_REJECT = "radius-reject"
    RADIUS_TIMEOUT = "radius-timeout"
    VIEW_READY = "view-ready"
    RESERVED = "reserved"
    RESERVE_REFUSED = "reserve-refused"
    NO_CANDIDATE = "no-candidate"
    SETUP_FAILED = "setup-failed"  # tunnel or session failed: walk the candidate list
    SESSION_UP = "session-up"
    END = "end"  # PADT, LCP terminate, echo loss, CDN, StopCCN, disconnect, kill, shutdown
    DETACHED = "detached"  # data plane released the session and returned its counters

    #: Members are singletons compared by identity: hash by identity too (C speed; the
    #: transition tables are looked up on every packet, Enum.__hash__ is Python code).
    __hash__ = object.__hash__


S, I = CallState, CallInput  # noqa: E741

#: (state, input) -> (action, next state). The action name is a method of the orchestrator.
TRANSITIONS: dict[tuple[CallState, CallInput], tuple[str, CallState]] = {
    (S.DISCOVERED, I.LCP_STARTED): ("noop", S.LCP),
    (S.DISCOVERED, I.END): ("abandon", S.CLOSED),
    (S.LCP, I.LCP_OPENED): ("noop", S.AUTH),
    (S.LCP, I.END): ("abandon", S.CLOSED),
    (S.AUTH, I.CREDENTIALS): ("ask_radius", S.RADIUS),
    (S.AUTH, I.END): ("abandon", S.CLOSED),
    (S.RADIUS, I.RADIUS_ACCEPT): ("query_view", S.SELECTING),
    (S.RADIUS, I.RADIUS_REJECT): ("reject_call", S.CLOSED),
    (S.RADIUS, I.RADIUS_TIMEOUT): ("radius_unreachable", S.SELECTING),
    (S.RADIUS, I.END): ("abandon", S.CLOSED),
    (S.SELECTING, I.VIEW_READY): ("reserve_next", S.SELECTING),
    (S.SELECTING, I.RESERVED): ("open_session", S.TUNNELING),
    (S.SELECTING, I.RESERVE_REFUSED): ("reserve_next", S.SELECTING),
    (S.SELECTING, I.NO_CANDIDATE): ("reject_call", S.CLOSED),
    (S.SELECTING, I.END): ("abandon", S.CLOSED),
    (S.TUNNELING, I.SESSION_UP): ("splice", S.SPLICED),
    (S.TUNNELING, I.SETUP_FAILED): ("reserve_next", S.SELECTING),
    (S.TUNNELING, I.END): ("abandon", S.CLOSED),
    (S.SPLICED, I.END): ("detach", S.CLOSING),
    (S.CLOSING, I.DETACHED): ("finish", S.CLOSED),
    (S.CLOSING, I.END): ("noop", S.CLOSING),
    (S.CLOSED, I.END): ("noop", S.CLOSED),
}


def lookup(state: CallState, event: CallInput) -> tuple[str, CallState] | None:
    return TRANSITIONS.get((state, event))
