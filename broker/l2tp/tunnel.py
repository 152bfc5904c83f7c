"""One L2TP control connection (tunnel) with its sessions, in either role.

RFC 2661 sections 5.1 and 5.1.1 (establishment and tunnel authentication), 5.5 (HELLO),
5.7 (StopCCN and the 31 s hold), 5.8 (reliable delivery, via
:class:`~broker.l2tp.reliable.ReliableTransport`), 6.1-6.5 (tunnel messages), 7.2.1 (the
state table in :mod:`broker.l2tp.tunnel_fsm`), 4.1 (unknown M=1 AVPs clear the tunnel or
the session with Result Code 2 / Error Code 8).

The tunnel never reads a clock and never does I/O: :class:`~broker.l2tp.endpoint.L2tpEndpoint`
feeds it decoded messages, drains its datagrams and runs its timer.
"""

from __future__ import annotations

import hmac
import os
from collections import deque
from collections.abc import Callable

from broker.l2tp.avps import (
    Avp,
    L2tpError,
    UnknownMandatoryAvp,
    UnknownMessageType,
    bytes_avp,
    challenge_response,
    parse_result_code,
    parse_str,
    parse_uint16,
    parse_uint32,
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.codec import ControlMessage, encode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import (
    PROTOCOL_VERSION_1_0,
    SESSION_MESSAGE_TYPES,
    AvpType,
    CdnResult,
    ErrorCode,
    MessageType,
    StopCcnResult,
)
from broker.l2tp.events import (
    IncomingTunnel,
    L2tpEvent,
    Peer,
    SessionClosed,
    TunnelClosed,
    TunnelEstablished,
)
from broker.l2tp.reliable import ReliableTransport
from broker.l2tp.session import LacSession, LnsSession, Result, SessionPolicy
from broker.l2tp.session_fsm import SessionInput, SessionState
from broker.l2tp.tunnel_fsm import TunnelAction, TunnelInput, TunnelState, tunnel_transition
from broker.wire import LocalProtocolError, RemoteProtocolError

_ZLB_FLAGS = 0xC802  # T=1 L=1 S=1 Ver=2 (RFC 2661 3.1)
CHALLENGE_LEN = 16
MAX_SESSIONS = 0xFFFF  # session ids 1..65535 (RFC 2661 5.3: 0 is reserved)

#: tunnel policy (LNS role): given (peer, peer host name) return None to accept the SCCRQ
#: or a Result to refuse it with a StopCCN.
TunnelPolicy = Callable[[Peer, str], Result | None]
#: a close cause: (reason, result, error, message)
_Cause = tuple[str, int | None, int | None, str]

Session = LacSession | LnsSession
_SETUP_STATES = (SessionState.WAIT_REPLY, SessionState.WAIT_CONNECT)
_TUNNEL_SETUP_STATES = (TunnelState.WAIT_CTL_REPLY, TunnelState.WAIT_CTL_CONN)


#: Unacknowledged + unsent control messages above which refused ICRQs get no CDN.
REFUSAL_BACKLOG = 64


class TunnelConnection:
    """Control connection state: FSM, reliable transport, authentication, sessions."""

    def __init__(
        self,
        *,
        tunnel_id: int,
        peer: Peer,
        config: TunnelConfig,
        now: float,
        events: deque[L2tpEvent] | None = None,
        rand_bytes: Callable[[int], bytes] = os.urandom,
        counters: dict[str, int] | None = None,
        accept_calls: bool = False,
        session_policy: SessionPolicy | None = None,
        tunnel_policy: TunnelPolicy | None = None,
    ) -> None:
        self.tunnel_id = tunnel_id
        self.peer = peer
        self.config = config
        self.events: deque[L2tpEvent] = deque() if events is None else events
        self.counters: dict[str, int] = {} if counters is None else counters
        for key in (
            "unknown_session",
            "auth_failed",
            "protocol_errors",
            "sessions_refused",
            "refusals_unanswered",
        ):
            self.counters.setdefault(key, 0)
        self._rand = rand_bytes
        self.accept_calls = accept_calls
        self._session_policy = session_policy
        self._tunnel_policy = tunnel_policy
        self.state = TunnelState.IDLE
        self.peer_tunnel_id = 0
        self.peer_host_name = ""
        self.peer_framing_caps = 0
        self.peer_bearer_caps = 0
        self.tie_breaker: bytes | None = None
        self.sessions: dict[int, Session] = {}
        self._by_peer_sid: dict[int, int] = {}
        self._setup_pending: set[int] = set()  # sessions waiting for ICRP / ICCN
        self._our_challenge: bytes | None = None
        self._peer_challenge: bytes | None = None
        self._cause: _Cause | None = None  # set by classifiers for *_BAD inputs
        self._reported_closed = False
        self.hold_until: float | None = None
        self.last_rx = now
        self._progress = now  # last non-HELLO message delivered or queued (setup timeout)
        self.transport: ReliableTransport[ControlMessage | L2tpError] = ReliableTransport(
            make_zlb=self._zlb,
            retransmit=config.retransmit,
            receive_window=config.receive_window,
            zlb_delay=config.zlb_delay,
            counters=self.counters,
        )

    # -- small helpers -------------------------------------------------------------------
    def _zlb(self, ns: int, nr: int) -> bytes:
        return (
            _ZLB_FLAGS.to_bytes(2, "big")
            + (12).to_bytes(2, "big")
            + self.peer_tunnel_id.to_bytes(2, "big")
            + b"\0\0"
            + ns.to_bytes(2, "big")
            + nr.to_bytes(2, "big")
        )

    def emit(self, event: L2tpEvent) -> None:
        self.events.append(event)

    def send_message(
        self, message_type: MessageType, session_id: int, avps: list[Avp], now: float
    ) -> None:
        """Queue a control message for reliable delivery (header ids filled in here)."""
        if message_type is not MessageType.HELLO:
            self._progress = now
        peer_tid = self.peer_tunnel_id
        secret = self.config.secret
        rand = self._rand

        def build(ns: int) -> bytes:
            msg = ControlMessage(peer_tid, session_id, ns, 0, message_type, tuple(avps))
            return encode_control(msg, secret, rand)

        self.transport.send(build, now)

    @property
    def established(self) -> bool:
        return self.state is TunnelState.ESTABLISHED

    @property
    def closed(self) -> bool:
        return self.state is TunnelState.CLOSED

    def _new_session_id(self) -> int:
        if len(self.sessions) >= MAX_SESSIONS:
            raise LocalProtocolError("tunnel already carries 65535 sessions")
        for _ in range(64):
            sid = int.from_bytes(self._rand(2), "big")
            if sid and sid not in self.sessions:
                return sid
        start = int.from_bytes(self._rand(2), "big")  # nearly full: walk from a random start
        for i in range(MAX_SESSIONS + 1):
            sid = (start + i) & 0xFFFF
            if sid and sid not in self.sessions:
                return sid
        raise LocalProtocolError("no free session id")  # pragma: no cover

    # -- commands ------------------------------------------------------------------------
    def open(self, now: float) -> None:
        """LAC (initiator): send the SCCRQ."""
        self.apply(TunnelInput.LOCAL_OPEN, now)

    def close(self, result: int, error: int | None, message: str, now: float) -> None:
        """Send a StopCCN (RFC 2661 5.7); sessions are cleared implicitly."""
        self._cause = ("local", result, error, message)
        self.apply(TunnelInput.LOCAL_CLOSE, now)

    def open_session(self, params: CallParams, now: float) -> int:
        """LAC: a new incoming call; the ICRQ goes out once the tunnel is established.

        On a tunnel that is already closing the call fails at once with SessionClosed
        (Result 2, Error 1 "no control connection") instead of raising.
        """
        sid = self._new_session_id()
        if self.state in (TunnelState.CLOSING, TunnelState.CLOSED):
            # The caller has not seen TunnelClosed yet: fail the call the ordinary way.
            self.emit(
                SessionClosed(
                    self.tunnel_id,
                    sid,
                    int(CdnResult.GENERAL_ERROR),
                    int(ErrorCode.NO_CONTROL_CONNECTION),
                    "tunnel is closing",
                    None,
                    False,
                    True,
                )
            )
            return sid
        session = LacSession(self, sid, params)
        self.sessions[sid] = session
        session.handle(SessionInput.LOCAL_OPEN, now)
        if self.established:
            session.handle(SessionInput.TUNNEL_OPEN, now)
        self._after_session(session)
        return sid

    def close_session(
        self, session_id: int, result: int, error: int | None, message: str, now: float
    ) -> None:
        """Clear one call with a CDN (RFC 2661 5.6); unknown ids are ignored."""
        session = self.sessions.get(session_id)
        if session is None:
            return
        session.handle(SessionInput.LOCAL_CLOSE, now, result=(result, error, message))
        self._after_session(session)

    def note_activity(self, now: float) -> None:
        """A data message arrived on this tunnel: postpones the HELLO (RFC 2661 5.5)."""
        self.last_rx = now

    # -- input ---------------------------------------------------------------------------
    def receive(self, msg: ControlMessage, now: float) -> None:
        """A decoded control message for this tunnel."""
        self.last_rx = now
        for item in self.transport.receive(msg.ns, msg.nr, msg.is_zlb, msg, now):
            self._deliver(item, now)

    def receive_error(self, exc: L2tpError, now: float) -> None:
        """A message the codec rejected after a valid header: it still takes its Ns slot
        (so it is acknowledged), then clears the session or tunnel per RFC 2661 4.1."""
        if exc.ns is None or exc.nr is None:
            return
        self.last_rx = now
        for item in self.transport.receive(exc.ns, exc.nr, False, exc, now):
            self._deliver(item, now)

    def _deliver(self, item: ControlMessage | L2tpError, now: float) -> None:
        if isinstance(item, L2tpError):
            self._deliver_error(item, now)
            return
        mt = item.message_type
        if mt is not MessageType.HELLO:
            self._progress = now
        if mt is MessageType.SCCRQ:
            inp = self._classify_sccrq(item)
        elif mt is MessageType.SCCRP:
            inp = self._classify_sccrp(item)
        elif mt is MessageType.SCCCN:
            inp = self._classify_scccn(item)
        elif mt is MessageType.StopCCN:
            inp = TunnelInput.RX_STOPCCN
        elif mt is MessageType.HELLO:
            inp = TunnelInput.RX_HELLO
        else:
            inp = TunnelInput.RX_SESSION
        self.apply(inp, now, item)

    def _deliver_error(self, exc: L2tpError, now: float) -> None:
        if isinstance(exc, UnknownMessageType) and not exc.mandatory:
            return  # RFC 2661 4.4.1: unknown Message Type with M=0 is ignored
        what = (
            f"AVP {exc.vendor_id}:{exc.avp_type}"
            if isinstance(exc, UnknownMandatoryAvp)
            else f"message type {exc.message_type}"
        )
        error = (
            int(ErrorCode.UNKNOWN_MANDATORY_AVP)
            if isinstance(exc, UnknownMandatoryAvp) or exc.error_code is None
            else int(exc.error_code)
        )
        cause: _Cause = (
            "unknown-mandatory-avp",
            int(StopCcnResult.GENERAL_ERROR),
            error,
            f"unknown mandatory {what}",
        )
        mt = exc.message_type
        if isinstance(exc, UnknownMandatoryAvp) and mt in SESSION_MESSAGE_TYPES:
            session = self._find_session(exc.session_id or 0, None)
            if session is not None and self.established:
                session.handle(
                    SessionInput.RX_UNKNOWN_MANDATORY,
                    now,
                    result=(int(CdnResult.GENERAL_ERROR), cause[2], cause[3]),
                )
                self._after_session(session)
                return
            if session is None and self.established:
                self.counters["unknown_session"] += 1
                return
        self._cause = cause
        self.apply(TunnelInput.RX_UNKNOWN_MANDATORY, now)

    # -- classifiers (table inputs from messages) -----------------------------------------
    def _bad(self, reason: str, result: int, error: int | None, message: str) -> None:
        self._cause = (reason, result, error, message)
        if reason == "auth-failed":
            self.counters["auth_failed"] += 1

    def _learn_peer(self, msg: ControlMessage) -> str | None:
        """Common SCCRQ/SCCRP checks (RFC 2661 6.1, 6.2); returns a problem or None."""
        try:
            atid = msg.get(AvpType.ASSIGNED_TUNNEL_ID)
            if atid is not None:
                self.peer_tunnel_id = parse_uint16(atid.value)
            host = msg.get(AvpType.HOST_NAME)
            self.peer_host_name = "" if host is None else parse_str(host.value)
            fc = msg.get(AvpType.FRAMING_CAPABILITIES)
            self.peer_framing_caps = 0 if fc is None else parse_uint32(fc.value)
            bc = msg.get(AvpType.BEARER_CAPABILITIES)
            self.peer_bearer_caps = 0 if bc is None else parse_uint32(bc.value)
            rws = msg.get(AvpType.RECEIVE_WINDOW_SIZE)
            window = 4 if rws is None else parse_uint16(rws.value)
            ch = msg.get(AvpType.CHALLENGE)
            self._peer_challenge = None if ch is None else ch.value
        except RemoteProtocolError as exc:
            return str(exc)[:200]
        if not self.peer_tunnel_id:
            return "missing or zero Assigned Tunnel ID"
        if host is None or not host.value:
            return "missing Host Name"
        if fc is None:
            return "missing Framing Capabilities"
        if window == 0:
            return "Receive Window Size 0"
        self.transport.set_peer_window(window)
        return None

    def _check_version(self, msg: ControlMessage) -> bool:
        pv = msg.get(AvpType.PROTOCOL_VERSION)
        return pv is not None and pv.value == PROTOCOL_VERSION_1_0

    def _classify_sccrq(self, msg: ControlMessage) -> TunnelInput:
        if self.state is not TunnelState.IDLE:
            return TunnelInput.RX_SCCRQ_OK  # the table decides (protocol error), learn nothing
        problem = self._learn_peer(msg)
        if problem is not None:
            self._bad("rejected", StopCcnResult.GENERAL_ERROR, ErrorCode.BAD_VALUE, problem)
            return TunnelInput.RX_SCCRQ_BAD
        if not self._check_version(msg):
            self._bad("rejected", StopCcnResult.UNSUPPORTED_VERSION, 0x0100, "version 1.0 only")
            return TunnelInput.RX_SCCRQ_BAD
        if self._peer_challenge is not None and not self.config.secret:
            self._bad("auth-failed", StopCcnResult.NOT_AUTHORIZED, None, "no shared secret")
            return TunnelInput.RX_SCCRQ_BAD
        if self._tunnel_policy is not None:
            verdict = self._tunnel_policy(self.peer, self.peer_host_name)
            if verdict is not None:
                self._bad("rejected", *verdict)
                return TunnelInput.RX_SCCRQ_BAD
        return TunnelInput.RX_SCCRQ_OK

    def _classify_sccrp(self, msg: ControlMessage) -> TunnelInput:
        if self.state is not TunnelState.WAIT_CTL_REPLY:
            return TunnelInput.RX_SCCRP_OK  # the table decides (protocol error)
        problem = self._learn_peer(msg)
        if problem is not None:
            self._bad("rejected", StopCcnResult.GENERAL_ERROR, ErrorCode.BAD_VALUE, problem)
            return TunnelInput.RX_SCCRP_BAD
        if not self._check_version(msg):
            self._bad("rejected", StopCcnResult.UNSUPPORTED_VERSION, 0x0100, "version 1.0 only")
            return TunnelInput.RX_SCCRP_BAD
        if not self._response_ok(msg, MessageType.SCCRP):
            self._bad("auth-failed", StopCcnResult.NOT_AUTHORIZED, None, "challenge failed")
            return TunnelInput.RX_SCCRP_BAD
        if self._peer_challenge is not None and not self.config.secret:
            self._bad("auth-failed", StopCcnResult.NOT_AUTHORIZED, None, "no shared secret")
            return TunnelInput.RX_SCCRP_BAD
        return TunnelInput.RX_SCCRP_OK

    def _classify_scccn(self, msg: ControlMessage) -> TunnelInput:
        if self.state is not TunnelState.WAIT_CTL_CONN:
            return TunnelInput.RX_SCCCN_OK
        if not self._response_ok(msg, MessageType.SCCCN):
            self._bad("auth-failed", StopCcnResult.NOT_AUTHORIZED, None, "challenge failed")
            return TunnelInput.RX_SCCCN_BAD
        return TunnelInput.RX_SCCCN_OK

    def _response_ok(self, msg: ControlMessage, carrier: MessageType) -> bool:
        """RFC 2661 5.1.1: the reply must answer our challenge with MD5(type, secret, chal)."""
        if self._our_challenge is None:
            return True
        assert self.config.secret is not None
        got = msg.get(AvpType.CHALLENGE_RESPONSE)
        want = challenge_response(int(carrier), self.config.secret, self._our_challenge)
        return got is not None and hmac.compare_digest(got.value, want)

    # -- the machine ---------------------------------------------------------------------
    def apply(self, event: TunnelInput, now: float, msg: ControlMessage | None = None) -> None:
        """Run one input through :data:`~broker.l2tp.tunnel_fsm.TUNNEL_TABLE` and act."""
        was = self.state
        action, self.state = tunnel_transition(was, event)
        cause, self._cause = self._cause, None
        if action is TunnelAction.SEND_SCCRQ:
            self._send_sccrq(now)
        elif action is TunnelAction.SEND_SCCRP:
            self._send_sccrp(now)
            self.emit(
                IncomingTunnel(self.tunnel_id, self.peer, self.peer_tunnel_id, self.peer_host_name)
            )
        elif action is TunnelAction.SEND_SCCCN:
            avps = []
            if self._peer_challenge is not None and self.config.secret:
                avps.append(self._response_avp(MessageType.SCCCN))
            self.send_message(MessageType.SCCCN, 0, avps, now)
            self._up(now)
        elif action is TunnelAction.ESTABLISH:
            self._up(now)
        elif action is TunnelAction.SEND_STOPCCN:
            self._stop(cause or ("local", int(StopCcnResult.GENERAL_REQUEST), None, ""), was, now)
        elif action is TunnelAction.STOP_UNKNOWN_AVP:
            self._stop(
                cause
                or (
                    "unknown-mandatory-avp",
                    int(StopCcnResult.GENERAL_ERROR),
                    int(ErrorCode.UNKNOWN_MANDATORY_AVP),
                    "",
                ),
                was,
                now,
            )
        elif action is TunnelAction.PROTOCOL_ERROR:
            self.counters["protocol_errors"] += 1
            name = "local" if msg is None or msg.message_type is None else msg.message_type.name
            self._stop(
                (
                    "protocol-error",
                    int(StopCcnResult.FSM_ERROR),
                    None,
                    f"unexpected {name} in state {was.name}",
                ),
                was,
                now,
            )
        elif action is TunnelAction.PEER_STOPPED:
            result: Result | None = None
            rc = None if msg is None else msg.get(AvpType.RESULT_CODE)
            if rc is not None:
                try:
                    result = parse_result_code(rc.value)
                except RemoteProtocolError:
                    result = None
            r, e, m = result if result is not None else (None, None, "")
            self.transport.stop()
            self.transport.ack_now(now)
            self._clear(("stopccn-received", r, e, m), was, by_peer=True)
            self.hold_until = now + self.config.stopccn_hold
        elif action is TunnelAction.DISPATCH:
            assert msg is not None
            self._dispatch_session(msg, now)
        elif action is TunnelAction.SEND_HELLO:
            self.send_message(MessageType.HELLO, 0, [], now)
        elif action is TunnelAction.CLEAR:
            self.transport.stop()
            self._clear(cause or ("local", None, None, ""), was, by_peer=False)
        elif action is TunnelAction.FINISH:
            self.hold_until = None
        # ACK_ONLY: the transport already acknowledged

    def _response_avp(self, carrier: MessageType) -> Avp:
        assert self.config.secret is not None and self._peer_challenge is not None
        value = challenge_response(int(carrier), self.config.secret, self._peer_challenge)
        return bytes_avp(AvpType.CHALLENGE_RESPONSE, value)

    def _setup_avps(self) -> list[Avp]:
        c = self.config
        avps = [
            protocol_version_avp(),
            str_avp(AvpType.HOST_NAME, c.host_name),
            uint32_avp(AvpType.FRAMING_CAPABILITIES, c.framing_caps),
            uint32_avp(AvpType.BEARER_CAPABILITIES, c.bearer_caps),
            uint16_avp(AvpType.FIRMWARE_REVISION, c.firmware_revision, mandatory=False),
            str_avp(AvpType.VENDOR_NAME, c.vendor_name, mandatory=False),
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, self.tunnel_id),
            uint16_avp(AvpType.RECEIVE_WINDOW_SIZE, c.receive_window),
        ]
        if c.secret:
            self._our_challenge = self._rand(CHALLENGE_LEN)
            avps.append(bytes_avp(AvpType.CHALLENGE, self._our_challenge))
        return avps

    def _send_sccrq(self, now: float) -> None:
        avps = self._setup_avps()
        self.tie_breaker = self._rand(8)
        avps.append(
            uint64_avp(
                AvpType.TIE_BREAKER, int.from_bytes(self.tie_breaker, "big"), mandatory=False
            )
        )
        self.send_message(MessageType.SCCRQ, 0, avps, now)

    def _send_sccrp(self, now: float) -> None:
        avps = self._setup_avps()
        if self._peer_challenge is not None and self.config.secret:
            avps.append(self._response_avp(MessageType.SCCRP))
        self.send_message(MessageType.SCCRP, 0, avps, now)

    def _up(self, now: float) -> None:
        self.emit(
            TunnelEstablished(self.tunnel_id, self.peer_tunnel_id, self.peer, self.peer_host_name)
        )
        for session in list(self.sessions.values()):
            if session.state is SessionState.WAIT_TUNNEL:
                session.handle(SessionInput.TUNNEL_OPEN, now)
                self._after_session(session)

    def _stop(self, cause: _Cause, was: TunnelState, now: float) -> None:
        _reason, result, error, message = cause
        avps = [
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, self.tunnel_id),
            result_code_avp(result if result is not None else 1, error, message),
        ]
        # Messages in flight stay ahead of the StopCCN (the peer delivers in order); those
        # never sent (window full) are dropped so the StopCCN is not stuck behind them.
        self.transport.drop_unsent()
        self.send_message(MessageType.StopCCN, 0, avps, now)
        self._clear(cause, was, by_peer=False)
        self.hold_until = now + self.config.stopccn_hold

    def _clear(self, cause: _Cause, was: TunnelState, *, by_peer: bool) -> None:
        reason, result, error, message = cause
        for session in list(self.sessions.values()):
            session.handle(
                SessionInput.TUNNEL_CLOSED,
                0.0,
                result=(result if result is not None else 0, error, message),
                tunnel_by_peer=by_peer,
            )
        self.sessions.clear()
        self._by_peer_sid.clear()
        self._setup_pending.clear()
        if not self._reported_closed:
            self._reported_closed = True
            self.emit(
                TunnelClosed(
                    self.tunnel_id,
                    reason,
                    result,
                    error,
                    message,
                    was is not TunnelState.ESTABLISHED,
                )
            )

    # -- sessions ------------------------------------------------------------------------
    def _find_session(self, session_id: int, msg: ControlMessage | None) -> Session | None:
        if session_id:
            return self.sessions.get(session_id)
        if msg is not None and msg.message_type is MessageType.CDN:
            # a CDN sent before the peer learnt our id names the session by its own id
            try:
                asid = msg.get(AvpType.ASSIGNED_SESSION_ID)
                peer_sid = None if asid is None else parse_uint16(asid.value)
            except RemoteProtocolError:
                return None
            if peer_sid:
                local = self._by_peer_sid.get(peer_sid)
                return None if local is None else self.sessions.get(local)
        return None

    def _after_session(self, session: Session) -> None:
        """Bookkeeping after a session input: setup tracking, forget closed sessions."""
        if session.state in _SETUP_STATES:
            self._setup_pending.add(session.session_id)
        else:
            self._setup_pending.discard(session.session_id)
        if session.state in (SessionState.CLOSED, SessionState.IDLE):
            self.sessions.pop(session.session_id, None)
            if self._by_peer_sid.get(session.peer_session_id) == session.session_id:
                del self._by_peer_sid[session.peer_session_id]

    def _dispatch_session(self, msg: ControlMessage, now: float) -> None:
        if msg.message_type is MessageType.ICRQ and msg.session_id == 0:
            self._incoming_call(msg, now)
            return
        session = self._find_session(msg.session_id, msg)
        if session is None:
            self.counters["unknown_session"] += 1
            return
        event, result = session.classify(msg)
        before = session.peer_session_id
        session.handle(event, now, msg, result)
        if session.peer_session_id and session.peer_session_id != before:
            self._by_peer_sid[session.peer_session_id] = session.session_id
        self._after_session(session)

    def _incoming_call(self, msg: ControlMessage, now: float) -> None:
        if not self.accept_calls and self.transport.outstanding >= REFUSAL_BACKLOG:
            # A peer that keeps placing calls we refuse while it acknowledges nothing would
            # grow our send queue by one CDN per ICRQ until retransmission gives up: past the
            # backlog the ICRQ is only acknowledged (ZLB), not answered.
            self.counters["sessions_refused"] += 1
            self.counters["refusals_unanswered"] += 1
            return
        try:
            sid = self._new_session_id()
        except LocalProtocolError:
            sid = 0
        session = LnsSession(self, sid, CallParams())
        if not self.accept_calls or sid == 0:
            self.counters["sessions_refused"] += 1
            session.classify_icrq(msg, None)
            err = ErrorCode.NO_GENERAL_ERROR if sid else ErrorCode.INSUFFICIENT_RESOURCES
            session.handle(
                SessionInput.RX_ICRQ_BAD,
                now,
                msg,
                (int(CdnResult.PERMANENT_NO_FACILITIES), int(err), "not accepting calls"),
            )
            return
        self.sessions[sid] = session
        event, result = session.classify_icrq(msg, self._session_policy)
        if event is SessionInput.RX_ICRQ_BAD:
            self.counters["sessions_refused"] += 1
        session.handle(event, now, msg, result)
        if session.state is not SessionState.CLOSED and session.peer_session_id:
            self._by_peer_sid[session.peer_session_id] = sid
        self._after_session(session)

    # -- timers and output ---------------------------------------------------------------
    def _hello_deadline(self) -> float | None:
        if self.state is TunnelState.ESTABLISHED and self.transport.outstanding == 0:
            return self.last_rx + self.config.hello_interval
        return None

    def _setup_deadline(self) -> float | None:
        """Nothing outstanding, yet a reply (SCCRP/SCCCN/ICRP/ICCN) is still awaited."""
        if self.transport.outstanding:
            return None
        if self.state in _TUNNEL_SETUP_STATES or (self._setup_pending and self.established):
            return self._progress + self.config.setup_timeout
        return None

    def get_timer(self) -> float | None:
        deadlines = [
            d
            for d in (
                self.transport.get_timer(),
                self.hold_until if self.state is TunnelState.CLOSING else None,
                self._hello_deadline(),
                self._setup_deadline(),
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self.transport.handle_timer(now)
        if self.transport.exhausted:
            self.transport.exhausted = False
            self.counters["retransmit_exhausted"] = self.counters.get("retransmit_exhausted", 0) + 1
            self._cause = (
                "retransmit-exhausted",
                None,
                None,
                f"no acknowledgement after {len(self.config.retransmit)} timeouts",
            )
            self.apply(TunnelInput.RETRANSMIT_EXHAUSTED, now)
        if (
            self.state is TunnelState.CLOSING
            and self.hold_until is not None
            and now >= self.hold_until
        ):
            self.apply(TunnelInput.HOLD_EXPIRED, now)
        setup = self._setup_deadline()
        if setup is not None and now >= setup:
            self._setup_timed_out(now)
        hello = self._hello_deadline()
        if hello is not None and now >= hello:
            self.apply(TunnelInput.HELLO_DUE, now)

    def _setup_timed_out(self, now: float) -> None:
        waited = self.config.setup_timeout
        if self.state in _TUNNEL_SETUP_STATES:
            self._cause = (
                "setup-timeout",
                int(StopCcnResult.GENERAL_REQUEST),
                None,
                f"no reply within {waited:g} s",
            )
            self.apply(TunnelInput.SETUP_TIMEOUT, now)
            return
        for sid in list(self._setup_pending):
            session = self.sessions.get(sid)
            if session is None:
                self._setup_pending.discard(sid)
                continue
            session.handle(
                SessionInput.SETUP_TIMEOUT,
                now,
                result=(int(CdnResult.TIMEOUT), None, f"no reply within {waited:g} s"),
            )
            self._after_session(session)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        return self.transport.datagrams_to_send(now)
