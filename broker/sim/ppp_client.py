"""The subscriber (CPE) side of PPP as a sans-I/O engine, for tests, the load generator, demo.

LCP (RFC 1661) through :class:`~broker.ppp.lcp.LcpAutomaton`; the peer side of PAP
(RFC 1334 section 2.2) and CHAP-MD5 (RFC 1994 section 4.1); MS-CHAPv2 responses have the
RFC 2759 layout but a made-up NT-Response (the broker carries them unverified); IPCP
(RFC 1332 section 3.3, RFC 1877 DNS options) requesting 0.0.0.0 and taking the address the
peer Naks. :class:`IpcpAutomaton` can also play the address-assigning side (LNS emulator).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.ppp.codec import (
    IPCP_OPTIONS,
    ChapValue,
    Option,
    PapRequest,
    decode_chap_value,
    decode_control,
    decode_pap_message,
    encode_control,
    split_frame,
)
from broker.ppp.constants import (
    ChapCode,
    IpcpOption,
    LcpCode,
    PapCode,
    PppProtocol,
)
from broker.ppp.lcp import (
    ControlAutomaton,
    LcpAutomaton,
    RandBytes,
    RestartConfig,
    Signal,
)
from broker.ppp.lcp_table import State
from broker.wire import RemoteProtocolError

_ZERO = b"\x00\x00\x00\x00"
CHAP_METHODS = ("chap", "mschapv2")
_DNS = (IpcpOption.PRIMARY_DNS, IpcpOption.SECONDARY_DNS)


def _ip(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


class IpcpAutomaton(ControlAutomaton):
    """IPCP (RFC 1332) for either side.

    ``address``: our own address to request (0.0.0.0 asks the peer to assign one);
    ``assign``: the address to Nak into a peer request for 0.0.0.0 (None: accept anything);
    ``request_dns``: ask for DNS servers (RFC 1877); ``dns``: DNS servers to hand out.
    """

    protocol = PppProtocol.IPCP
    registry = IPCP_OPTIONS

    def __init__(
        self,
        restart: RestartConfig,
        *,
        address: bytes = _ZERO,
        assign: bytes | None = None,
        request_dns: bool = False,
        dns: Sequence[bytes] = (),
        rand_bytes: RandBytes = os.urandom,
    ) -> None:
        super().__init__(restart, rand_bytes=rand_bytes)
        self.address = address
        self.assign = assign
        self.peer_address = _ZERO
        self.dns_request: dict[int, bytes] = {t: _ZERO for t in _DNS} if request_dns else {}
        self.dns_offer: dict[int, bytes] = dict(zip(_DNS, dns, strict=False))
        self._rejected: set[int] = set()

    def request_options(self) -> Sequence[Option]:
        opts = []
        if IpcpOption.IP_ADDRESS not in self._rejected:
            opts.append(Option(IpcpOption.IP_ADDRESS, self.address))
        opts.extend(Option(t, a) for t, a in self.dns_request.items() if t not in self._rejected)
        return opts

    def request_naked(self, options: tuple[Option, ...]) -> None:
        for o in options:
            if o.type == IpcpOption.IP_ADDRESS:
                self.address = o.data
            elif o.type in self.dns_request:
                self.dns_request[o.type] = o.data

    def request_rejected(self, options: tuple[Option, ...]) -> None:
        self._rejected.update(o.type for o in options)

    def examine_request(self, options: tuple[Option, ...]) -> tuple[int, tuple[Option, ...]]:
        naks: list[Option] = []
        rejects: list[Option] = []
        for o in options:
            if o.type == IpcpOption.IP_ADDRESS:
                if self.assign is not None and o.data != self.assign:
                    naks.append(Option(o.type, self.assign))
                elif o.data == _ZERO:
                    rejects.append(o)  # we have nothing to assign
            elif o.type in self.dns_offer:
                if o.data != self.dns_offer[o.type]:
                    naks.append(Option(o.type, self.dns_offer[o.type]))
            else:
                rejects.append(o)
        if rejects:
            return LcpCode.CONFIGURE_REJECT, tuple(rejects)
        if naks:
            return LcpCode.CONFIGURE_NAK, tuple(naks)
        return LcpCode.CONFIGURE_ACK, options

    def peer_request_acked(self, options: tuple[Option, ...]) -> None:
        for o in options:
            if o.type == IpcpOption.IP_ADDRESS:
                self.peer_address = o.data


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientLcpOpened:
    pass


@dataclass(frozen=True, slots=True)
class ClientAuthenticated:
    message: str


@dataclass(frozen=True, slots=True)
class ClientAuthFailed:
    message: str


@dataclass(frozen=True, slots=True)
class ClientIpcpUp:
    address: str
    peer_address: str
    dns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientTerminated:
    """reason: 'peer-terminate', 'local', 'lcp-failed'."""

    reason: str


ClientEvent = (
    ClientLcpOpened | ClientAuthenticated | ClientAuthFailed | ClientIpcpUp | ClientTerminated
)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    mru: int = 1492
    restart_timer: float = 3.0
    max_configure: int = 10
    max_terminate: int = 2
    max_failure: int = 5
    echo_interval: float = 0.0  # 0: the client sends no keepalives of its own
    echo_failures: int = 3
    extra_options: tuple[Option, ...] = ()  # more LCP options to request (tests)
    request_dns: bool = False


def mschapv2_response(peer_challenge: bytes, challenge: bytes, password: bytes) -> bytes:
    """A 49-octet MS-CHAPv2 Response Value with the RFC 2759 section 4 layout.

    The NT-Response is NOT the real RFC 2759 computation (no MD4/DES here): the broker
    forwards it unverified, and the simulator only needs stable, distinct bytes.
    """
    fake_nt = hashlib.sha256(peer_challenge + challenge + password).digest()[:24]
    return peer_challenge + bytes(8) + fake_nt + b"\x00"


class PppClient:
    """CPE-side PPP: LCP, then PAP/CHAP as the peer, then IPCP; answers Echo-Requests."""

    def __init__(
        self,
        username: str | bytes,
        password: str | bytes,
        auth: Iterable[str] = ("chap", "pap", "mschapv2"),
        config: ClientConfig | None = None,
        *,
        rand_bytes: RandBytes = os.urandom,
        silent: bool = False,
    ) -> None:
        cfg = config or ClientConfig()
        self.config = cfg
        self.username = username.encode() if isinstance(username, str) else username
        self.password = password.encode() if isinstance(password, str) else password
        self.rand_bytes = rand_bytes
        self.silent = silent
        restart = RestartConfig(
            cfg.restart_timer, cfg.max_configure, cfg.max_terminate, cfg.max_failure
        )
        self.counters: dict[str, int] = {}
        self.lcp = LcpAutomaton(
            restart,
            mru=cfg.mru,
            auth_accept=tuple(auth),
            extra_request=cfg.extra_options,
            echo_interval=cfg.echo_interval,
            echo_failures=cfg.echo_failures,
            rand_bytes=rand_bytes,
        )
        self.lcp.counters = self.counters
        self.ipcp = IpcpAutomaton(restart, request_dns=cfg.request_dns, rand_bytes=rand_bytes)
        self.ipcp.counters = self.counters
        self.ipcp.out = self.lcp.out
        self._events: deque[ClientEvent] = deque()
        self.phase = "dead"  # establish, authenticate, network, terminating, finished
        self._reason: str | None = None
        self._terminated = False
        self._pap_id = 0
        self._pap_deadline: float | None = None
        self._pap_remaining = 0
        self._chap_last: tuple[int, bytes, bytes] | None = None  # (id, challenge, response)
        self.authenticated = False

    # -- commands --------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.phase = "establish"
        self.lcp.up(now)
        self.lcp.open(now)
        self._process(now)

    def terminate(self, now: float, reason: str = "local") -> None:
        """Send LCP Terminate-Request; ClientTerminated follows when LCP has finished."""
        if self.phase in ("terminating", "finished"):
            return
        self.phase = "terminating"
        self._reason = reason
        self._pap_deadline = None
        self.ipcp.close(now)
        self.lcp.close(now)
        if self.lcp.state in (State.INITIAL, State.CLOSED) and Signal.FINISHED not in (
            self.lcp.signals
        ):
            self._finish(reason)
        self._process(now)

    # -- engine contract -------------------------------------------------------------------
    def receive_frame(self, ppp: bytes, now: float) -> None:
        if self.silent or self.phase in ("dead", "finished"):
            self.counters["ignored"] = self.counters.get("ignored", 0) + 1
            return
        try:
            protocol, info = split_frame(ppp)
            if protocol == PppProtocol.LCP:
                was_opened = self.lcp.state is State.OPENED
                self.lcp.receive(info, now)
                if (
                    was_opened
                    and info[0] == LcpCode.TERMINATE_REQUEST
                    and self.lcp.state is State.STOPPING
                    and self._reason is None
                ):
                    self._finish("peer-terminate")
            elif not self.lcp.opened:
                self._count("dropped-before-lcp")
            elif protocol == PppProtocol.PAP:
                self._receive_pap(info, now)
            elif protocol == PppProtocol.CHAP:
                self._receive_chap(info, now)
            elif protocol == PppProtocol.IPCP:
                if self.phase == "network":
                    self.ipcp.receive(info, now)
                else:
                    self._count("dropped-ipcp-early")
            elif protocol == PppProtocol.IPV4:
                self._count("ipv4-frames")
            else:
                self.lcp.send_protocol_reject(protocol, info)
        except RemoteProtocolError:
            self._count("malformed")
        self._process(now)

    def frames_to_send(self) -> list[bytes]:
        return self.lcp.frames_to_send()

    def next_event(self) -> ClientEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        if self.phase in ("dead", "finished"):
            return None
        timers = (self.lcp.get_timer(), self.ipcp.get_timer(), self._pap_deadline)
        present = [t for t in timers if t is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        if self.phase in ("dead", "finished"):
            return
        self.lcp.handle_timer(now)
        self.ipcp.handle_timer(now)
        if self._pap_deadline is not None and now >= self._pap_deadline:
            if self._pap_remaining > 0:
                self._send_pap(now)
            else:
                self._pap_deadline = None
                self._events.append(ClientAuthFailed("no answer to Authenticate-Request"))
                self.terminate(now, "auth-timeout")
        self._process(now)

    # -- authentication (peer side) --------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _send_pap(self, now: float) -> None:
        self._pap_id = (self._pap_id + 1) & 0xFF
        data = PapRequest(self.username, self.password).encode()
        self.lcp.out.append(
            encode_control(PppProtocol.PAP, PapCode.AUTHENTICATE_REQUEST, self._pap_id, data)
        )
        self._pap_remaining -= 1
        self._pap_deadline = now + self.config.restart_timer

    def _receive_pap(self, info: bytes, now: float) -> None:
        pkt = decode_control(info)
        if self.phase != "authenticate" or pkt.identifier != self._pap_id:
            self._count("pap-stale")
            return
        message = decode_pap_message(pkt.data).decode("utf-8", "replace")
        if pkt.code == PapCode.AUTHENTICATE_ACK:
            self._pap_deadline = None
            self._authenticated(message, now)
        elif pkt.code == PapCode.AUTHENTICATE_NAK:
            self._pap_deadline = None
            self.phase = "auth-failed"
            self._events.append(ClientAuthFailed(message))
        else:
            self._count("pap-unexpected-code")

    def _receive_chap(self, info: bytes, now: float) -> None:
        pkt = decode_control(info)
        method = self.lcp.peer_auth
        if pkt.code == ChapCode.CHALLENGE:
            challenge = decode_chap_value(pkt.data)
            # RFC 1994 section 2: the authenticator may challenge again at any time (an
            # LNS that does not take proxy authentication re-challenges after hand-over).
            if self.phase not in ("authenticate", "network") or method not in CHAP_METHODS:
                self._count("chap-challenge-out-of-phase")
                return
            last = self._chap_last
            if last is not None and last[0] == pkt.identifier and last[1] == challenge.value:
                self.lcp.out.append(last[2])  # a retransmitted challenge
                return
            if method == "mschapv2":
                value = mschapv2_response(self.rand_bytes(16), challenge.value, self.password)
            else:
                value = hashlib.md5(
                    bytes((pkt.identifier,)) + self.password + challenge.value
                ).digest()
            frame = encode_control(
                PppProtocol.CHAP,
                ChapCode.RESPONSE,
                pkt.identifier,
                ChapValue(value, self.username).encode(),
            )
            self._chap_last = (pkt.identifier, challenge.value, frame)
            self.lcp.out.append(frame)
        elif pkt.code in (ChapCode.SUCCESS, ChapCode.FAILURE):
            last = self._chap_last
            if self.phase not in ("authenticate", "network") or last is None:
                self._count("chap-stale")
                return
            if pkt.identifier != last[0]:
                self._count("chap-stale")
                return
            message = pkt.data.decode("utf-8", "replace")
            if pkt.code == ChapCode.FAILURE:
                self.phase = "auth-failed"
                self._events.append(ClientAuthFailed(message))
            elif self.phase == "authenticate":
                self._authenticated(message, now)
            else:
                self._count("chap-rechallenge-success")
        else:
            self._count("chap-unexpected-code")

    def _authenticated(self, message: str, now: float) -> None:
        self.authenticated = True
        self._events.append(ClientAuthenticated(message))
        self._start_network(now)

    def _start_network(self, now: float) -> None:
        self.phase = "network"
        self.ipcp.up(now)
        self.ipcp.open(now)

    # -- signals ---------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        if not self._terminated:
            self._terminated = True
            self._events.append(ClientTerminated(reason))

    def _process(self, now: float) -> None:
        signals = self.lcp.signals
        while signals:
            signal = signals.pop(0)
            if signal is Signal.UP:
                self._events.append(ClientLcpOpened())
                method = self.lcp.peer_auth
                if method is None:
                    self._start_network(now)
                else:
                    self.phase = "authenticate"
                    self._chap_last = None
                    if method == "pap":
                        self._pap_remaining = self.config.max_configure
                        self._send_pap(now)
            elif signal is Signal.DOWN:
                if self.ipcp.state not in (State.INITIAL, State.STARTING):
                    self.ipcp.down(now)
                if self.phase != "terminating":
                    self.phase = "establish"
            elif signal is Signal.FINISHED:
                self.phase = "finished"
                self._finish(self._reason or "lcp-failed")
            elif signal is Signal.ECHO_TIMEOUT:
                self._finish("echo-timeout")
                self.terminate(now, "echo-timeout")
        ipcp_signals = self.ipcp.signals
        while ipcp_signals:
            if ipcp_signals.pop(0) is Signal.UP:
                dns = tuple(_ip(a) for a in self.ipcp.dns_request.values() if a != _ZERO)
                self._events.append(
                    ClientIpcpUp(_ip(self.ipcp.address), _ip(self.ipcp.peer_address), dns)
                )
