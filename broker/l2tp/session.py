"""L2TP sessions for incoming calls in both roles (RFC 2661 sections 5.2.1, 6.6-6.8, 6.12-6.14,
7.4.1 and 7.4.2).

:class:`LacSession` places a call: ICRQ once the tunnel is up, ICCN (connect speed, framing
type, proxy LCP AVPs 26-28 and proxy authentication AVPs 29-33) when the ICRP arrives.
:class:`LnsSession` answers: ICRP for an acceptable ICRQ, established on ICCN. Both clear
with a CDN carrying a Result Code. The transitions live in :mod:`broker.l2tp.session_fsm`;
this module classifies received messages into table inputs and carries out the actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from broker.l2tp.avps import (
    Avp,
    bytes_avp,
    empty_avp,
    parse_accm,
    parse_call_errors,
    parse_ppp_disconnect_cause,
    parse_proxy_authen_id,
    parse_result_code,
    parse_str,
    parse_uint16,
    parse_uint32,
    proxy_authen_id_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, CdnResult, ErrorCode, MessageType
from broker.l2tp.events import (
    IncomingSession,
    L2tpEvent,
    SessionClosed,
    SessionEstablished,
    SetLinkInfoReceived,
    WanErrorNotifyReceived,
)
from broker.l2tp.session_fsm import (
    LAC_TABLE,
    LNS_TABLE,
    SessionAction,
    SessionInput,
    SessionState,
    session_transition,
)
from broker.wire import RemoteProtocolError

#: (result, error, message) of a Result Code AVP
Result = tuple[int, int | None, str]
#: LNS policy: given (tunnel id, session id, call params) return None to accept the call or
#: a Result to refuse it with a CDN.
SessionPolicy = Callable[[int, int, CallParams], Result | None]

#: AVPs hidden when the tunnel's ``hide_avps`` is on (RFC 2661 4.3: subscriber data)
HIDDEN_WHEN_ASKED = frozenset(
    {
        AvpType.CALLED_NUMBER,
        AvpType.CALLING_NUMBER,
        AvpType.INITIAL_RECEIVED_LCP_CONFREQ,
        AvpType.LAST_SENT_LCP_CONFREQ,
        AvpType.LAST_RECEIVED_LCP_CONFREQ,
        AvpType.PROXY_AUTHEN_TYPE,
        AvpType.PROXY_AUTHEN_NAME,
        AvpType.PROXY_AUTHEN_CHALLENGE,
        AvpType.PROXY_AUTHEN_ID,
        AvpType.PROXY_AUTHEN_RESPONSE,
    }
)


class SessionHost(Protocol):
    """What a session needs from its tunnel."""

    tunnel_id: int
    peer_tunnel_id: int
    config: TunnelConfig

    def send_message(
        self, message_type: MessageType, session_id: int, avps: list[Avp], now: float
    ) -> None: ...

    def emit(self, event: L2tpEvent) -> None: ...


def _u16(msg: ControlMessage, t: AvpType) -> int | None:
    avp = msg.get(t)
    return None if avp is None else parse_uint16(avp.value)


def _u32(msg: ControlMessage, t: AvpType) -> int | None:
    avp = msg.get(t)
    return None if avp is None else parse_uint32(avp.value)


def _raw(msg: ControlMessage, t: AvpType) -> bytes | None:
    avp = msg.get(t)
    return None if avp is None else avp.value


def _text(msg: ControlMessage, t: AvpType) -> str | None:
    avp = msg.get(t)
    return None if avp is None else parse_str(avp.value)


def params_from_messages(icrq: ControlMessage | None, iccn: ControlMessage | None) -> CallParams:
    """What the LAC told us about a call in its ICRQ and ICCN (LNS role)."""
    kw: dict[str, object] = {}
    if icrq is not None:
        kw["called_number"] = _text(icrq, AvpType.CALLED_NUMBER) or ""
        kw["calling_number"] = _text(icrq, AvpType.CALLING_NUMBER) or ""
        kw["serial"] = _u32(icrq, AvpType.CALL_SERIAL_NUMBER) or 0
        kw["bearer_type"] = _u32(icrq, AvpType.BEARER_TYPE)
        kw["physical_channel_id"] = _u32(icrq, AvpType.PHYSICAL_CHANNEL_ID)
    if iccn is not None:
        kw["tx_connect_speed"] = _u32(iccn, AvpType.TX_CONNECT_SPEED) or 0
        kw["rx_connect_speed"] = _u32(iccn, AvpType.RX_CONNECT_SPEED)
        kw["framing_type"] = _u32(iccn, AvpType.FRAMING_TYPE) or 0
        kw["private_group_id"] = _raw(iccn, AvpType.PRIVATE_GROUP_ID)
        kw["initial_received_confreq"] = _raw(iccn, AvpType.INITIAL_RECEIVED_LCP_CONFREQ)
        kw["last_sent_confreq"] = _raw(iccn, AvpType.LAST_SENT_LCP_CONFREQ)
        kw["last_received_confreq"] = _raw(iccn, AvpType.LAST_RECEIVED_LCP_CONFREQ)
        kw["authen_type"] = _u16(iccn, AvpType.PROXY_AUTHEN_TYPE)
        kw["authen_name"] = _text(iccn, AvpType.PROXY_AUTHEN_NAME)
        kw["authen_challenge"] = _raw(iccn, AvpType.PROXY_AUTHEN_CHALLENGE)
        ident = _raw(iccn, AvpType.PROXY_AUTHEN_ID)
        kw["authen_id"] = None if ident is None else parse_proxy_authen_id(ident)
        kw["authen_response"] = _raw(iccn, AvpType.PROXY_AUTHEN_RESPONSE)
        kw["sequencing_required"] = iccn.get(AvpType.SEQUENCING_REQUIRED) is not None
    return CallParams(**kw)  # type: ignore[arg-type]


#: What an established LAC session keeps of its CallParams (shared, immutable).
_SENT_PARAMS = CallParams()


class _Session:
    """State shared by both roles; subclasses give the table and the classifier."""

    table: ClassVar[dict[tuple[SessionState, SessionInput], tuple[SessionAction, SessionState]]]

    __slots__ = (
        "_icrq",
        "announced",
        "host",
        "params",
        "peer_session_id",
        "sequencing_required",
        "session_id",
        "state",
    )

    def __init__(self, host: SessionHost, session_id: int, params: CallParams) -> None:
        self.host = host
        self.session_id = session_id
        self.params = params
        self.state = SessionState.IDLE
        self.peer_session_id = 0
        self.sequencing_required = params.sequencing_required
        self.announced = False  # the user knows this session (SessionClosed is owed)
        self._icrq: ControlMessage | None = None

    # -- helpers -------------------------------------------------------------------------
    def _hide(self, t: AvpType) -> bool:
        return self.host.config.hide_avps and t in HIDDEN_WHEN_ASKED

    def _send(self, mt: MessageType, avps: list[Avp], now: float) -> None:
        self.host.send_message(mt, self.peer_session_id, avps, now)

    def _closed(
        self, result: Result | None, by_peer: bool, was: SessionState, cause: object = None
    ) -> None:
        if not self.announced:
            return
        self.announced = False
        r, e, m = result if result is not None else (None, None, "")
        self.host.emit(
            SessionClosed(
                self.host.tunnel_id,
                self.session_id,
                r,
                e,
                m,
                cause if isinstance(cause, tuple) else None,
                by_peer,
                was is not SessionState.ESTABLISHED,
            )
        )

    def _send_cdn(self, result: Result, now: float) -> None:
        r, e, m = result
        self._send(
            MessageType.CDN,
            [result_code_avp(r, e, m), uint16_avp(AvpType.ASSIGNED_SESSION_ID, self.session_id)],
            now,
        )

    # -- the machine ---------------------------------------------------------------------
    def handle(
        self,
        event: SessionInput,
        now: float,
        msg: ControlMessage | None = None,
        result: Result | None = None,
        tunnel_by_peer: bool = False,
    ) -> SessionAction:
        """Run one input through the table; returns the action taken (for tests)."""
        was = self.state
        action, self.state = session_transition(self.table, was, event)
        if action is SessionAction.WAIT_FOR_TUNNEL:
            self.announced = True
        elif action is SessionAction.SEND_ICRQ:
            self._send_icrq(now)
        elif action is SessionAction.SEND_ICRP:
            self._send_icrp(msg, now)
        elif action is SessionAction.SEND_ICCN:
            self._send_iccn(msg, now)
        elif action is SessionAction.ESTABLISH:
            self._establish(msg)
        elif action is SessionAction.SEND_CDN:
            res = result or (int(CdnResult.ADMINISTRATIVE), None, "")
            self._send_cdn(res, now)
            self._closed(res, False, was)
        elif action is SessionAction.SEND_CDN_UNKNOWN_AVP:
            res = result or (
                int(CdnResult.GENERAL_ERROR),
                int(ErrorCode.UNKNOWN_MANDATORY_AVP),
                "unknown mandatory AVP",
            )
            self._send_cdn(res, now)
            self._closed(res, False, was)
        elif action is SessionAction.PEER_CLOSED:
            self._peer_closed(msg, was)
        elif action is SessionAction.CLEANUP:
            self._closed(result, False, was)
        elif action is SessionAction.TUNNEL_GONE:
            self._closed(result, tunnel_by_peer, was)
        elif action is SessionAction.REPORT:
            self._report(msg)
        elif action is SessionAction.PROTOCOL_ERROR:
            name = "local" if msg is None or msg.message_type is None else msg.message_type.name
            res = (
                int(CdnResult.GENERAL_ERROR),
                int(ErrorCode.NO_GENERAL_ERROR),
                f"unexpected {name} in state {was.name}",
            )
            if self._peer_knows(was):
                self._send_cdn(res, now)
            self._closed(res, False, was)
        return action

    def _peer_knows(self, was: SessionState) -> bool:
        """Whether the peer has heard of this session (so a CDN means something to it)."""
        return was in (SessionState.WAIT_REPLY, SessionState.WAIT_CONNECT, SessionState.ESTABLISHED)

    def _send_icrq(self, now: float) -> None:  # pragma: no cover - LAC only
        raise NotImplementedError

    def _send_icrp(self, msg: ControlMessage | None, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _send_iccn(self, msg: ControlMessage | None, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _establish(self, msg: ControlMessage | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _peer_closed(self, msg: ControlMessage | None, was: SessionState) -> None:
        result: Result | None = None
        cause: tuple[int, int, int, str] | None = None
        if msg is not None:
            rc = msg.get(AvpType.RESULT_CODE)
            if rc is not None:
                try:
                    result = parse_result_code(rc.value)
                except RemoteProtocolError:
                    result = None
            dc = msg.get(AvpType.PPP_DISCONNECT_CAUSE)
            if dc is not None:
                try:
                    cause = parse_ppp_disconnect_cause(dc.value)
                except RemoteProtocolError:
                    cause = None
        self._closed(result, True, was, cause)

    def _report(self, msg: ControlMessage | None) -> None:
        if msg is None:
            return
        tid = self.host.tunnel_id
        try:
            if msg.message_type is MessageType.SLI:
                accm = msg.get(AvpType.ACCM)
                send_accm, recv_accm = (
                    (0xFFFFFFFF, 0xFFFFFFFF) if accm is None else parse_accm(accm.value)
                )
                self.host.emit(SetLinkInfoReceived(tid, self.session_id, send_accm, recv_accm))
            elif msg.message_type is MessageType.WEN:
                ce = msg.get(AvpType.CALL_ERRORS)
                counts = (0, 0, 0, 0, 0, 0) if ce is None else parse_call_errors(ce.value)
                self.host.emit(WanErrorNotifyReceived(tid, self.session_id, *counts))
        except RemoteProtocolError:
            return

    def classify(self, msg: ControlMessage) -> tuple[SessionInput, Result | None]:
        """The table input for a received session message (subclasses refine ICRQ/ICRP/ICCN)."""
        mt = msg.message_type
        if mt is MessageType.CDN:
            return SessionInput.RX_CDN, None
        if mt is MessageType.SLI:
            return SessionInput.RX_SLI, None
        if mt is MessageType.WEN:
            return SessionInput.RX_WEN, None
        if mt is MessageType.ICRQ:
            return SessionInput.RX_ICRQ_OK, _unexpected(msg, self.state)
        if mt is MessageType.ICRP:
            return SessionInput.RX_ICRP_OK, _unexpected(msg, self.state)
        if mt is MessageType.ICCN:
            return SessionInput.RX_ICCN_OK, _unexpected(msg, self.state)
        return SessionInput.RX_OTHER, (
            int(CdnResult.GENERAL_ERROR),
            int(ErrorCode.NO_GENERAL_ERROR),
            f"{'?' if mt is None else mt.name} not supported",
        )


def _unexpected(msg: ControlMessage, state: SessionState) -> Result:
    name = "?" if msg.message_type is None else msg.message_type.name
    return (
        int(CdnResult.GENERAL_ERROR),
        int(ErrorCode.NO_GENERAL_ERROR),
        f"unexpected {name} in state {state.name}",
    )


class LacSession(_Session):
    """Our side of an incoming call placed towards an LNS (RFC 2661 7.4.1)."""

    table = LAC_TABLE
    __slots__ = ()

    def classify(self, msg: ControlMessage) -> tuple[SessionInput, Result | None]:
        if msg.message_type is MessageType.ICRP and self.state is SessionState.WAIT_REPLY:
            try:
                peer_sid = _u16(msg, AvpType.ASSIGNED_SESSION_ID)
            except RemoteProtocolError:
                peer_sid = None
            if not peer_sid:
                return SessionInput.RX_ICRP_BAD, (
                    int(CdnResult.GENERAL_ERROR),
                    int(ErrorCode.BAD_VALUE),
                    "ICRP without a valid Assigned Session ID",
                )
            return SessionInput.RX_ICRP_OK, None
        return super().classify(msg)

    def _send_icrq(self, now: float) -> None:
        p = self.params
        avps = [
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, self.session_id),
            uint32_avp(AvpType.CALL_SERIAL_NUMBER, p.serial & 0xFFFFFFFF),
        ]
        if p.bearer_type is not None:
            avps.append(uint32_avp(AvpType.BEARER_TYPE, p.bearer_type))
        if p.physical_channel_id is not None:
            avps.append(uint32_avp(AvpType.PHYSICAL_CHANNEL_ID, p.physical_channel_id))
        if p.called_number:
            avps.append(
                str_avp(
                    AvpType.CALLED_NUMBER,
                    p.called_number,
                    hidden=self._hide(AvpType.CALLED_NUMBER),
                )
            )
        if p.calling_number:
            avps.append(
                str_avp(
                    AvpType.CALLING_NUMBER,
                    p.calling_number,
                    hidden=self._hide(AvpType.CALLING_NUMBER),
                )
            )
        self._send(MessageType.ICRQ, avps, now)

    def _send_iccn(self, msg: ControlMessage | None, now: float) -> None:
        assert msg is not None
        self.peer_session_id = _u16(msg, AvpType.ASSIGNED_SESSION_ID) or 0
        p = self.params
        avps = [
            uint32_avp(AvpType.TX_CONNECT_SPEED, p.tx_connect_speed),
            uint32_avp(AvpType.FRAMING_TYPE, p.framing_type),
        ]
        if p.rx_connect_speed is not None:
            avps.append(uint32_avp(AvpType.RX_CONNECT_SPEED, p.rx_connect_speed))
        if p.private_group_id is not None:
            avps.append(bytes_avp(AvpType.PRIVATE_GROUP_ID, p.private_group_id))
        for t, raw in (
            (AvpType.INITIAL_RECEIVED_LCP_CONFREQ, p.initial_received_confreq),
            (AvpType.LAST_SENT_LCP_CONFREQ, p.last_sent_confreq),
            (AvpType.LAST_RECEIVED_LCP_CONFREQ, p.last_received_confreq),
        ):
            if raw is not None:
                avps.append(bytes_avp(t, raw, hidden=self._hide(t)))
        if p.authen_type is not None:
            t = AvpType.PROXY_AUTHEN_TYPE
            avps.append(uint16_avp(t, p.authen_type, hidden=self._hide(t)))
        if p.authen_name is not None:
            t = AvpType.PROXY_AUTHEN_NAME
            avps.append(str_avp(t, p.authen_name, hidden=self._hide(t)))
        if p.authen_challenge is not None:
            t = AvpType.PROXY_AUTHEN_CHALLENGE
            avps.append(bytes_avp(t, p.authen_challenge, hidden=self._hide(t)))
        if p.authen_id is not None:
            avps.append(
                proxy_authen_id_avp(p.authen_id, hidden=self._hide(AvpType.PROXY_AUTHEN_ID))
            )
        if p.authen_response is not None:
            t = AvpType.PROXY_AUTHEN_RESPONSE
            avps.append(bytes_avp(t, p.authen_response, hidden=self._hide(t)))
        if p.sequencing_required:
            avps.append(empty_avp(AvpType.SEQUENCING_REQUIRED))
        self._send(MessageType.ICCN, avps, now)
        # ICRQ and ICCN are sent (their retransmissions are the encoded messages): the proxy
        # LCP/authentication material is not needed any more (memory per session, and no
        # CHAP response or PAP password lingers for the life of the call).
        self.params = _SENT_PARAMS
        self.host.emit(
            SessionEstablished(
                self.host.tunnel_id,
                self.session_id,
                self.host.peer_tunnel_id,
                self.peer_session_id,
                self.sequencing_required,
            )
        )


class LnsSession(_Session):
    """The LNS side of an incoming call (RFC 2661 7.4.2): tests, emulators, switching."""

    table = LNS_TABLE
    __slots__ = ()

    def classify_icrq(
        self, msg: ControlMessage, policy: SessionPolicy | None
    ) -> tuple[SessionInput, Result | None]:
        """ICRQ arriving for this fresh session: records the peer's id and the parameters."""
        try:
            peer_sid = _u16(msg, AvpType.ASSIGNED_SESSION_ID)
            serial = _u32(msg, AvpType.CALL_SERIAL_NUMBER)
            params = params_from_messages(msg, None)
        except RemoteProtocolError as exc:
            return SessionInput.RX_ICRQ_BAD, (
                int(CdnResult.GENERAL_ERROR),
                int(ErrorCode.BAD_VALUE),
                str(exc)[:200],
            )
        self.peer_session_id = peer_sid or 0
        if not peer_sid or serial is None:
            return SessionInput.RX_ICRQ_BAD, (
                int(CdnResult.GENERAL_ERROR),
                int(ErrorCode.BAD_VALUE),
                "ICRQ without Assigned Session ID or Call Serial Number",
            )
        self.params = params
        self._icrq = msg
        if policy is not None:
            verdict = policy(self.host.tunnel_id, self.session_id, params)
            if verdict is not None:
                return SessionInput.RX_ICRQ_BAD, verdict
        return SessionInput.RX_ICRQ_OK, None

    def classify(self, msg: ControlMessage) -> tuple[SessionInput, Result | None]:
        if msg.message_type is MessageType.ICCN and self.state is SessionState.WAIT_CONNECT:
            try:
                speed = _u32(msg, AvpType.TX_CONNECT_SPEED)
                framing = _u32(msg, AvpType.FRAMING_TYPE)
                self.params = params_from_messages(self._icrq, msg)
            except RemoteProtocolError as exc:
                return SessionInput.RX_ICCN_BAD, (
                    int(CdnResult.GENERAL_ERROR),
                    int(ErrorCode.BAD_VALUE),
                    str(exc)[:200],
                )
            if speed is None or framing is None:
                return SessionInput.RX_ICCN_BAD, (
                    int(CdnResult.GENERAL_ERROR),
                    int(ErrorCode.BAD_VALUE),
                    "ICCN without (Tx) Connect Speed or Framing Type",
                )
            return SessionInput.RX_ICCN_OK, None
        return super().classify(msg)

    def _send_icrp(self, msg: ControlMessage | None, now: float) -> None:
        self._send(
            MessageType.ICRP, [uint16_avp(AvpType.ASSIGNED_SESSION_ID, self.session_id)], now
        )
        self.announced = True
        self.host.emit(
            IncomingSession(self.host.tunnel_id, self.session_id, self.peer_session_id, self.params)
        )

    def _establish(self, msg: ControlMessage | None) -> None:
        self.sequencing_required = self.params.sequencing_required
        self.host.emit(
            SessionEstablished(
                self.host.tunnel_id,
                self.session_id,
                self.host.peer_tunnel_id,
                self.peer_session_id,
                self.sequencing_required,
                self.params,
            )
        )
