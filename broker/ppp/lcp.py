"""The RFC 1661 option negotiation automaton, and LCP on top of it.

:class:`ControlAutomaton` runs the section 4 automaton (transitions from
:mod:`broker.ppp.lcp_table`) with the restart timer and counters of section 4.6 and the
packet handling of section 5 (codes 1-7). Subclasses decide about options through hooks;
:class:`LcpAutomaton` adds LCP's options (section 6: MRU, Authentication-Protocol,
Magic-Number; ACCM/PFC/ACFC rejected as RFC 2516 section 7 requires on PPPoE), codes 8-11
(Protocol-Reject, Echo, Discard) and the Echo-Request keepalive. NCPs (IPCP in the
simulator) subclass :class:`ControlAutomaton` as well.

The automaton is sans-I/O: it never reads a clock; every entry point takes ``now``.
Output frames carry the 2-octet PPP protocol field first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from broker.ppp.codec import (
    LCP_OPTIONS,
    ControlPacket,
    Option,
    OptionSize,
    decode_control,
    decode_options,
    encode_control,
    encode_options,
    option_u16,
    option_u32,
    u16_option,
    u32_option,
)
from broker.ppp.constants import (
    MIN_MRU,
    ChapAlgorithm,
    LcpCode,
    LcpOption,
    PppProtocol,
)
from broker.ppp.lcp_table import TABLE, TIMER_STATES, Action, Event, State
from broker.wire import RemoteProtocolError

RandBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class RestartConfig:
    """Restart timer and counters, RFC 1661 section 4.6."""

    restart_timer: float = 3.0
    max_configure: int = 10
    max_terminate: int = 2
    max_failure: int = 5


class Signal(Enum):
    """What the automaton tells its owner (the This-Layer-* actions and LCP extras)."""

    UP = "tlu"
    DOWN = "tld"
    STARTED = "tls"
    FINISHED = "tlf"
    ECHO_TIMEOUT = "echo-timeout"


def _bump(counters: dict[str, int], key: str) -> None:
    counters[key] = counters.get(key, 0) + 1


class ControlAutomaton:
    """RFC 1661 automaton for one control protocol (LCP or an NCP)."""

    protocol: int = 0
    registry: Mapping[int, OptionSize] = {}
    # One automaton per subscriber is held for the whole call: slots instead of a dict
    # (~1.2 KiB less per session; an instance dict stops sharing keys past 30 attributes).
    __slots__ = (
        "__dict__",
        "_deadline",
        "_next_id",
        "_now",
        "_req_data",
        "_req_id",
        "_response",
        "_rx",
        "_rx_options",
        "_rx_raw",
        "_term_id",
        "counters",
        "failure_count",
        "initial_received_request",
        "last_received_request",
        "last_sent_request",
        "out",
        "rand_bytes",
        "restart",
        "restart_count",
        "signals",
        "state",
    )  # fmt: skip

    def __init__(self, restart: RestartConfig, *, rand_bytes: RandBytes = os.urandom) -> None:
        self.restart = restart
        self.rand_bytes = rand_bytes
        self.state = State.INITIAL
        self.restart_count = 0
        self.failure_count = 0
        self._deadline: float | None = None
        self._now = 0.0
        self._next_id = rand_bytes(1)[0]
        self._req_id: int | None = None
        self._req_data = b""
        self._term_id: int | None = None
        self._rx: ControlPacket = ControlPacket(0, 0)
        self._rx_raw = b""
        self._rx_options: tuple[Option, ...] = ()
        self._response: tuple[int, tuple[Option, ...]] = (LcpCode.CONFIGURE_ACK, ())
        self.out: list[bytes] = []
        self.signals: list[Signal] = []
        self.counters: dict[str, int] = {}
        #: Option bytes (no code/id/length) of the first and last Configure-Request received
        #: and the last one sent, for L2TP proxy LCP (RFC 2661 section 4.4.5).
        self.initial_received_request: bytes | None = None
        self.last_received_request: bytes | None = None
        self.last_sent_request: bytes | None = None

    # -- hooks for subclasses ------------------------------------------------------------
    def request_options(self) -> Sequence[Option]:
        """Options for our next Configure-Request."""
        return ()

    def examine_request(self, options: tuple[Option, ...]) -> tuple[int, tuple[Option, ...]]:
        """Verdict on the peer's request: (CONFIGURE_ACK|NAK|REJECT, options to send back)."""
        if options:
            return LcpCode.CONFIGURE_REJECT, options
        return LcpCode.CONFIGURE_ACK, options

    def peer_request_acked(self, options: tuple[Option, ...]) -> None:
        """We sent Configure-Ack for these options of the peer."""

    def request_acked(self, options: tuple[Option, ...]) -> None:
        """The peer acknowledged our request."""

    def request_naked(self, options: tuple[Option, ...]) -> None:
        """The peer sent Configure-Nak for our request."""

    def request_rejected(self, options: tuple[Option, ...]) -> None:
        """The peer sent Configure-Reject for our request."""

    def receive_other(self, packet: ControlPacket) -> Event | None:
        """Codes beyond 7; the default treats them as unknown (RUC)."""
        return Event.RUC

    def send_echo_reply(self) -> None:
        """The 'ser' action (LCP only)."""

    def layer_up(self) -> None:
        """Called on This-Layer-Up, after the signal is queued."""

    def layer_down(self) -> None:
        """Called on This-Layer-Down, after the signal is queued."""

    # -- commands (RFC 1661 section 4.3 administrative and lower-layer events) -----------
    def up(self, now: float) -> None:
        self._now = now
        self._fire(Event.UP)

    def down(self, now: float) -> None:
        self._now = now
        self._fire(Event.DOWN)

    def open(self, now: float) -> None:
        self._now = now
        self._fire(Event.OPEN)

    def close(self, now: float) -> None:
        self._now = now
        self._fire(Event.CLOSE)

    def frames_to_send(self) -> list[bytes]:
        out = self.out[:]  # the list is shared with NCPs/authenticators of the same link
        self.out.clear()
        return out

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        self._now = now
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._fire(Event.TO_PLUS if self.restart_count > 0 else Event.TO_MINUS)

    @property
    def opened(self) -> bool:
        return self.state is State.OPENED

    # -- input -----------------------------------------------------------------------------
    def receive(self, payload: bytes, now: float) -> None:
        """Feed one packet (the PPP information field). Malformed -> RemoteProtocolError."""
        self._now = now
        pkt = decode_control(payload)
        self._rx = pkt
        self._rx_raw = payload[: 4 + len(pkt.data)]
        code = pkt.code
        if code == LcpCode.CONFIGURE_REQUEST:
            options = decode_options(pkt.data, self.registry)
            if self.initial_received_request is None:
                self.initial_received_request = pkt.data
            self.last_received_request = pkt.data
            verdict, reply = self.examine_request(options)
            if verdict == LcpCode.CONFIGURE_NAK and self.failure_count >= self.restart.max_failure:
                # RFC 1661 section 4.6 Max-Failure: reject what we would keep Nak'ing.
                kinds = {o.type for o in reply}
                reply = tuple(o for o in options if o.type in kinds)
                verdict = LcpCode.CONFIGURE_REJECT
            self._rx_options = options
            self._response = (verdict, reply)
            ok = verdict == LcpCode.CONFIGURE_ACK
            self._fire(Event.RCR_PLUS if ok else Event.RCR_MINUS)
        elif code in (LcpCode.CONFIGURE_ACK, LcpCode.CONFIGURE_NAK, LcpCode.CONFIGURE_REJECT):
            negotiating = self.state in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT)
            if negotiating or self.state is State.OPENED:
                if pkt.identifier != self._req_id:
                    _bump(self.counters, "stale-reply")
                    return
                options = decode_options(pkt.data, self.registry)
                if code == LcpCode.CONFIGURE_ACK:
                    if pkt.data != self._req_data:
                        _bump(self.counters, "bad-ack")
                        return
                    self.request_acked(options)
                elif negotiating:
                    if code == LcpCode.CONFIGURE_NAK:
                        self.request_naked(options)
                    else:
                        self.request_rejected(options)
                self._req_id = None  # answered; a duplicate is stale
            self._fire(Event.RCA if code == LcpCode.CONFIGURE_ACK else Event.RCN)
        elif code == LcpCode.TERMINATE_REQUEST:
            self._fire(Event.RTR)
        elif code == LcpCode.TERMINATE_ACK:
            self._fire(Event.RTA)
        elif code == LcpCode.CODE_REJECT:
            rejected = pkt.data[0] if pkt.data else 0
            catastrophic = LcpCode.CONFIGURE_REQUEST <= rejected <= LcpCode.CODE_REJECT
            self._fire(Event.RXJ_MINUS if catastrophic else Event.RXJ_PLUS)
        else:
            event = self.receive_other(pkt)
            if event is not None:
                self._fire(event)

    # -- the automaton ---------------------------------------------------------------------
    def _fire(self, event: Event) -> None:
        transition = TABLE[(self.state, event)]
        if transition is None:
            _bump(self.counters, "illegal-event")
            return
        actions, next_state = transition
        for action in actions:
            self._do(action, actions)
        self.state = next_state
        if next_state not in TIMER_STATES:
            self._deadline = None
        for action in actions:
            if action is Action.TLU:
                self.layer_up()
            elif action is Action.TLD:
                self.layer_down()

    def _new_id(self) -> int:
        self._next_id = (self._next_id + 1) & 0xFF
        return self._next_id

    def _send(self, code: int, ident: int, data: bytes = b"") -> None:
        self.out.append(encode_control(self.protocol, code, ident, data))

    def _start_timer(self) -> None:
        self._deadline = self._now + self.restart.restart_timer

    def _do(self, action: Action, actions: tuple[Action, ...]) -> None:
        if action is Action.IRC:
            if Action.STR in actions:
                self.restart_count = self.restart.max_terminate
            else:
                self.restart_count = self.restart.max_configure
                if self.state in (State.STARTING, State.CLOSED, State.STOPPED, State.OPENED):
                    self.failure_count = 0  # a new negotiation starts
        elif action is Action.ZRC:
            self.restart_count = 0
            self._start_timer()
        elif action is Action.SCR:
            data = encode_options(sorted(self.request_options(), key=lambda o: o.type))
            self._req_id = self._new_id()
            self._req_data = data
            self.last_sent_request = data
            self._send(LcpCode.CONFIGURE_REQUEST, self._req_id, data)
            self.restart_count -= 1
            self._start_timer()
        elif action is Action.SCA:
            self.failure_count = 0  # Max-Failure counts Naks sent without an Ack between
            self.peer_request_acked(self._rx_options)
            self._send(LcpCode.CONFIGURE_ACK, self._rx.identifier, self._rx.data)
        elif action is Action.SCN:
            code, reply = self._response
            if code == LcpCode.CONFIGURE_NAK:
                self.failure_count += 1
            self._send(code, self._rx.identifier, encode_options(reply))
        elif action is Action.STR:
            self._term_id = self._new_id()
            self._send(LcpCode.TERMINATE_REQUEST, self._term_id)
            self.restart_count -= 1
            self._start_timer()
        elif action is Action.STA:
            self._send(LcpCode.TERMINATE_ACK, self._rx.identifier)
        elif action is Action.SCJ:
            self._send(LcpCode.CODE_REJECT, self._new_id(), self._rx_raw[:1400])
        elif action is Action.SER:
            self.send_echo_reply()
        elif action is Action.TLU:
            self.signals.append(Signal.UP)
        elif action is Action.TLD:
            self.signals.append(Signal.DOWN)
        elif action is Action.TLS:
            self.signals.append(Signal.STARTED)
        elif action is Action.TLF:
            self.signals.append(Signal.FINISHED)


# -- LCP ------------------------------------------------------------------------------------

#: Authentication methods by configuration name: (protocol, option data after the protocol).
AUTH_METHODS: dict[str, tuple[int, bytes]] = {
    "chap": (PppProtocol.CHAP, bytes((ChapAlgorithm.MD5,))),
    "mschapv2": (PppProtocol.CHAP, bytes((ChapAlgorithm.MSCHAP_V2,))),
    "pap": (PppProtocol.PAP, b""),
}


def auth_option(name: str) -> Option:
    proto, extra = AUTH_METHODS[name]
    return Option(LcpOption.AUTH_PROTOCOL, proto.to_bytes(2, "big") + extra)


def auth_name(option: Option) -> str | None:
    """The configuration name of an Authentication-Protocol option, None if unsupported."""
    for name, (proto, extra) in AUTH_METHODS.items():
        if option_u16(option) == proto and option.data[2:] == extra:
            return name
    return None


class LcpAutomaton(ControlAutomaton):
    """LCP (RFC 1661 sections 5 and 6) for either end of a PPPoE link.

    ``auth_request``: methods we ask the peer to authenticate with, in preference order
    (the authenticator side); ``auth_accept``: methods we agree to authenticate ourselves
    with when the peer asks (the client side). ``extra_request``: more options to request
    (the simulator uses it to exercise rejection).
    """

    protocol = PppProtocol.LCP
    registry = LCP_OPTIONS
    __slots__ = (
        "_auth_index", "_echo_deadline", "_echo_sent_at", "_rejected", "auth_accept",
        "auth_failed", "auth_request", "echo_failures", "echo_interval", "echo_outstanding",
        "echo_rtts", "echo_timed_out", "extra_request", "local_auth", "magic_acked",
        "mru_limit", "our_magic", "our_mru", "peer_auth", "peer_magic", "peer_mru",
    )  # fmt: skip

    def __init__(
        self,
        restart: RestartConfig,
        *,
        mru: int,
        auth_request: Sequence[str] = (),
        auth_accept: Sequence[str] = (),
        extra_request: Iterable[Option] = (),
        echo_interval: float = 0.0,
        echo_failures: int = 3,
        rand_bytes: RandBytes = os.urandom,
    ) -> None:
        super().__init__(restart, rand_bytes=rand_bytes)
        self.mru_limit = mru
        self.our_mru: int | None = mru
        self.auth_request = tuple(auth_request)
        self.auth_accept = tuple(auth_accept)
        self._auth_index = 0
        self.auth_failed = False
        self.our_magic = self._random_magic()
        self.extra_request = {o.type: o for o in extra_request}
        self._rejected: set[int] = set()
        self.echo_interval = echo_interval
        self.echo_failures = echo_failures
        self._echo_deadline: float | None = None
        self.echo_outstanding = 0
        self.echo_timed_out = False
        #: When a list is set, the round-trip time of each answered Echo-Request is appended
        #: (seconds; the load generator's keepalive figures).
        self.echo_rtts: list[float] | None = None
        self._echo_sent_at: float | None = None
        # negotiated values
        self.peer_mru = 1500
        self.peer_magic = 0
        self.magic_acked = False
        self.peer_auth: str | None = None  # what the peer asked us to authenticate with
        self.local_auth: str | None = None  # what the peer agreed to authenticate with

    def _random_magic(self) -> int:
        while True:
            magic = int.from_bytes(self.rand_bytes(4), "big")
            if magic:
                return magic

    @property
    def requested_auth(self) -> str | None:
        if self._auth_index < len(self.auth_request):
            return self.auth_request[self._auth_index]
        return None

    # -- our request -----------------------------------------------------------------------
    def request_options(self) -> Sequence[Option]:
        opts: list[Option] = []
        if self.our_mru is not None and LcpOption.MRU not in self._rejected:
            opts.append(u16_option(LcpOption.MRU, self.our_mru))
        wanted = self.requested_auth
        if wanted is not None:
            opts.append(auth_option(wanted))
        if LcpOption.MAGIC_NUMBER not in self._rejected:
            opts.append(u32_option(LcpOption.MAGIC_NUMBER, self.our_magic))
        opts.extend(o for t, o in self.extra_request.items() if t not in self._rejected)
        return opts

    def request_acked(self, options: tuple[Option, ...]) -> None:
        self.local_auth = None
        self.magic_acked = False
        for o in options:
            if o.type == LcpOption.AUTH_PROTOCOL:
                self.local_auth = auth_name(o)
            elif o.type == LcpOption.MAGIC_NUMBER:
                self.magic_acked = True

    def request_naked(self, options: tuple[Option, ...]) -> None:
        for o in options:
            if o.type == LcpOption.MRU:
                value = option_u16(o)
                if MIN_MRU <= value <= self.mru_limit:
                    self.our_mru = value
            elif o.type == LcpOption.AUTH_PROTOCOL:
                self._auth_nak(auth_name(o))
            elif o.type == LcpOption.MAGIC_NUMBER:
                self.our_magic = self._random_magic()
            elif o.type in self.extra_request:
                self.extra_request[o.type] = o

    def _auth_nak(self, suggested: str | None) -> None:
        if not self.auth_request:
            return
        if suggested is not None and suggested in self.auth_request[self._auth_index + 1 :]:
            self._auth_index = self.auth_request.index(suggested)
        else:
            self._auth_index += 1
        if self._auth_index >= len(self.auth_request):
            self.auth_failed = True
            self._auth_index = len(self.auth_request) - 1

    def request_rejected(self, options: tuple[Option, ...]) -> None:
        for o in options:
            if o.type == LcpOption.AUTH_PROTOCOL:
                if self.auth_request:
                    self.auth_failed = True
            else:
                self._rejected.add(o.type)

    # -- the peer's request ----------------------------------------------------------------
    def examine_request(self, options: tuple[Option, ...]) -> tuple[int, tuple[Option, ...]]:
        naks: list[Option] = []
        rejects: list[Option] = []
        for o in options:
            if o.type == LcpOption.MRU:
                value = option_u16(o)
                if not MIN_MRU <= value <= self.mru_limit:
                    naks.append(u16_option(LcpOption.MRU, max(MIN_MRU, min(value, self.mru_limit))))
            elif o.type == LcpOption.AUTH_PROTOCOL:
                if not self.auth_accept:
                    rejects.append(o)
                elif auth_name(o) not in self.auth_accept:
                    naks.append(auth_option(self.auth_accept[0]))
            elif o.type == LcpOption.MAGIC_NUMBER:
                value = option_u32(o)
                if value == 0 or value == self.our_magic:
                    if value:
                        _bump(self.counters, "magic-loop")
                    naks.append(u32_option(LcpOption.MAGIC_NUMBER, self._random_magic()))
            else:
                # ACCM, PFC, ACFC (RFC 2516 section 7), Quality-Protocol, unknown types.
                rejects.append(o)
        if rejects:
            return LcpCode.CONFIGURE_REJECT, tuple(rejects)
        if naks:
            return LcpCode.CONFIGURE_NAK, tuple(naks)
        return LcpCode.CONFIGURE_ACK, options

    def peer_request_acked(self, options: tuple[Option, ...]) -> None:
        self.peer_mru = 1500
        self.peer_magic = 0
        self.peer_auth = None
        for o in options:
            if o.type == LcpOption.MRU:
                self.peer_mru = option_u16(o)
            elif o.type == LcpOption.MAGIC_NUMBER:
                self.peer_magic = option_u32(o)
            elif o.type == LcpOption.AUTH_PROTOCOL:
                self.peer_auth = auth_name(o)

    @property
    def magic(self) -> int:
        """Our Magic-Number as negotiated (0 when not negotiated)."""
        return self.our_magic if self.magic_acked else 0

    # -- codes 8-11 and keepalive ----------------------------------------------------------
    def receive_other(self, packet: ControlPacket) -> Event | None:
        code = packet.code
        if code == LcpCode.PROTOCOL_REJECT:
            if self.state is not State.OPENED:
                return None  # RFC 1661 section 5.7: only meaningful in Opened
            if len(packet.data) < 2:
                raise RemoteProtocolError("Protocol-Reject without a protocol")
            rejected = (packet.data[0] << 8) | packet.data[1]
            _bump(self.counters, f"protocol-rejected-{rejected:04x}")
            return Event.RXJ_MINUS if rejected == PppProtocol.LCP else Event.RXJ_PLUS
        if code in (LcpCode.ECHO_REQUEST, LcpCode.ECHO_REPLY, LcpCode.DISCARD_REQUEST):
            if len(packet.data) < 4:
                raise RemoteProtocolError("LCP echo/discard without a Magic-Number")
            magic = int.from_bytes(packet.data[:4], "big")
            if magic and magic == self.magic:
                _bump(self.counters, "echo-loopback")
            elif code == LcpCode.ECHO_REPLY and self.state is State.OPENED:
                self.echo_outstanding = 0
                sent = self._echo_sent_at
                if sent is not None and self.echo_rtts is not None:
                    self.echo_rtts.append(self._now - sent)
                self._echo_sent_at = None
            return Event.RXR
        return Event.RUC

    def send_echo_reply(self) -> None:
        if self._rx.code == LcpCode.ECHO_REQUEST:
            data = self.magic.to_bytes(4, "big") + self._rx.data[4:]
            self._send(LcpCode.ECHO_REPLY, self._rx.identifier, data)

    def send_protocol_reject(self, protocol: int, information: bytes) -> None:
        """Protocol-Reject (RFC 1661 section 5.7); only sent in the Opened state."""
        if self.state is not State.OPENED:
            return
        room = max(0, self.peer_mru - 6)
        data = protocol.to_bytes(2, "big") + information[:room]
        self._send(LcpCode.PROTOCOL_REJECT, self._new_id(), data)

    def layer_up(self) -> None:
        if self.echo_interval > 0:
            self._echo_deadline = self._now + self.echo_interval
        self.echo_outstanding = 0

    def layer_down(self) -> None:
        self._echo_deadline = None

    def stop_keepalive(self) -> None:
        self._echo_deadline = None

    def get_timer(self) -> float | None:
        restart = self._deadline
        echo = self._echo_deadline if self.state is State.OPENED else None
        if restart is None:
            return echo
        if echo is None:
            return restart
        return min(restart, echo)

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        echo = self._echo_deadline
        if echo is None or now < echo or self.state is not State.OPENED:
            return
        if self.echo_outstanding >= self.echo_failures:
            self._echo_deadline = None
            self.echo_timed_out = True
            self.signals.append(Signal.ECHO_TIMEOUT)
            return
        self.echo_outstanding += 1
        self._send(LcpCode.ECHO_REQUEST, self._new_id(), self.magic.to_bytes(4, "big"))
        self._echo_sent_at = now
        self._echo_deadline = now + self.echo_interval
