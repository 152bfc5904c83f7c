"""PppLink: the LAC side of one subscriber's PPP until the call is handed to the LNS.

Runs LCP (RFC 1661) and then the PAP (RFC 1334) or CHAP (RFC 1994) authenticator; records
proxy LCP and proxy authentication material (RFC 2661 section 4.4.5). Network-layer and NCP
packets that arrive before hand-over are silently discarded (RFC 1661 section 3.2 and 3.5:
they belong to the LNS); other unknown protocols are Protocol-Rejected (section 5.7).
Frames carry the 2-octet protocol field first (PPPoE framing, RFC 2516 section 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from broker.ppp.auth import ChapAuthenticator, PapAuthenticator
from broker.ppp.codec import split_frame
from broker.ppp.constants import ChapAlgorithm, LcpCode, PppProtocol, ProxyAuthenType
from broker.ppp.events import (
    ChapCredentials,
    Credentials,
    CredentialsReceived,
    LcpOpened,
    LinkEvent,
    LinkTerminated,
    MschapV2Credentials,
    PapCredentials,
)
from broker.ppp.lcp import AUTH_METHODS, LcpAutomaton, RandBytes, RestartConfig, Signal
from broker.ppp.lcp_table import State
from broker.ppp.proxy import ProxyMaterial
from broker.wire import RemoteProtocolError


@dataclass(frozen=True, slots=True)
class LinkConfig:
    mru: int = 1492
    auth: tuple[str, ...] = ("chap", "pap")  # in preference order: "chap", "mschapv2", "pap"
    restart_timer: float = 3.0
    max_configure: int = 10
    max_terminate: int = 2
    max_failure: int = 5
    echo_interval: float = 10.0
    echo_failures: int = 3
    auth_timeout: float = 30.0
    chap_name: bytes = field(default=b"l2tp-broker")

    def __post_init__(self) -> None:
        unknown = [a for a in self.auth if a not in AUTH_METHODS]
        if unknown:
            raise ValueError(f"unknown auth methods {unknown}; known: {sorted(AUTH_METHODS)}")


def _is_network_or_ncp(protocol: int) -> bool:
    # RFC 1661 section 2: 0x0xxx-0x3xxx network layer, 0x8xxx-0xbxxx their NCPs.
    return protocol < 0x4000 or 0x8000 <= protocol < 0xC000


class PppLink:
    """One subscriber's PPP on the LAC, from LCP to the verdict on authentication."""

    def __init__(
        self,
        config: LinkConfig,
        *,
        max_payload: int | None = None,
        rand_bytes: RandBytes = os.urandom,
    ) -> None:
        self.config = config
        self.rand_bytes = rand_bytes
        limit = config.mru
        if max_payload is not None and max_payload > limit:
            limit = max_payload  # RFC 4638 section 2: PPP-Max-Payload allows a larger MRU
        self.counters: dict[str, int] = {}
        self.lcp = LcpAutomaton(
            RestartConfig(
                config.restart_timer, config.max_configure, config.max_terminate, config.max_failure
            ),
            mru=limit,
            auth_request=config.auth,
            echo_interval=config.echo_interval,
            echo_failures=config.echo_failures,
            rand_bytes=rand_bytes,
        )
        self.lcp.counters = self.counters
        # a list, not a deque: one per call for the whole call, and a deque costs ~600 B
        self._events: list[LinkEvent] = []
        self._authenticator: PapAuthenticator | ChapAuthenticator | None = None
        self._auth_deadline: float | None = None
        self._auth_proxy = ProxyMaterial()
        self.phase = "dead"  # dead, establish, authenticate, waiting, authenticated,
        #                     terminating, finished, handed-over
        self._reason: str | None = None
        self._terminated = False

    # -- commands --------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Lower layer Up and administrative Open: sends our Configure-Request."""
        self.phase = "establish"
        self.lcp.up(now)
        self.lcp.open(now)
        self._process(now)

    def accept(self, message: str, now: float) -> None:
        """Send Success / Authenticate-Ack; the link is then authenticated."""
        auth = self._authenticator
        if self.phase != "waiting" or auth is None:
            self._count("late-verdict")
            return
        auth.accept(message.encode())
        self.phase = "authenticated"

    def reject(self, message: str, now: float) -> None:
        """Send Failure / Authenticate-Nak, then terminate LCP."""
        auth = self._authenticator
        if self.phase != "waiting" or auth is None:
            self._count("late-verdict")
            return
        auth.reject(message.encode())
        self.terminate("auth-rejected", now)

    def terminate(self, reason: str, now: float) -> None:
        """Close LCP (Terminate-Request); LinkTerminated follows when LCP has finished."""
        if self.phase in ("finished", "handed-over", "terminating"):
            return
        self.phase = "terminating"
        self._reason = reason
        self._auth_deadline = None
        self._authenticator = None
        self.lcp.stop_keepalive()
        self.lcp.close(now)
        if self.lcp.state in (State.INITIAL, State.CLOSED) and Signal.FINISHED not in (
            self.lcp.signals
        ):
            self._finish(reason, by_peer=False)
        self._process(now)

    def hand_over(self) -> ProxyMaterial:
        """Stop processing (the splice takes the frames from now on); return the material."""
        self.phase = "handed-over"
        self._auth_deadline = None
        self._authenticator = None
        self.lcp.stop_keepalive()
        return self.proxy

    # -- input / output --------------------------------------------------------------------
    def receive_frame(self, ppp: bytes, now: float) -> None:
        """Feed one PPP frame (protocol field first). Never raises; counts bad input."""
        if self.phase in ("finished", "handed-over", "dead"):
            self._count("dropped-inactive")
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
                    # Terminate-Request from the peer in Opened (tld, zrc, sta / Stopping).
                    self._finish("peer-terminate", by_peer=True)
            elif protocol in (PppProtocol.PAP, PppProtocol.CHAP):
                self._receive_auth(protocol, info, now)
            elif not self.lcp.opened:
                self._count("dropped-before-lcp")
            elif _is_network_or_ncp(protocol):
                self._count("dropped-ncp-before-handover")
            else:
                self.lcp.send_protocol_reject(protocol, info)
                self._count("protocol-rejected")
        except RemoteProtocolError:
            self._count("malformed")
        self._process(now)

    def frames_to_send(self) -> list[bytes]:
        return self.lcp.frames_to_send()

    def next_event(self) -> LinkEvent | None:
        return self._events.pop(0) if self._events else None

    def get_timer(self) -> float | None:
        if self.phase in ("finished", "handed-over", "dead"):
            return None
        timers = [self.lcp.get_timer(), self._auth_deadline]
        if self._authenticator is not None:
            timers.append(self._authenticator.get_timer())
        present = [t for t in timers if t is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        if self.phase in ("finished", "handed-over", "dead"):
            return
        self.lcp.handle_timer(now)
        auth = self._authenticator
        if auth is not None:
            auth.handle_timer(now)
            if auth.gave_up and self.phase == "authenticate":
                self.terminate("auth-timeout", now)
        if self._auth_deadline is not None and now >= self._auth_deadline:
            self._auth_deadline = None
            if self.phase == "authenticate":
                self.terminate("auth-timeout", now)
        self._process(now)

    @property
    def proxy(self) -> ProxyMaterial:
        a = self._auth_proxy
        return ProxyMaterial(
            initial_received_confreq=self.lcp.initial_received_request or b"",
            last_sent_confreq=self.lcp.last_sent_request or b"",
            last_received_confreq=self.lcp.last_received_request or b"",
            authen_type=a.authen_type,
            authen_name=a.authen_name,
            authen_challenge=a.authen_challenge,
            authen_id=a.authen_id,
            authen_response=a.authen_response,
        )

    # -- internals -------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _send(self, frame: bytes) -> None:
        self.lcp.out.append(frame)

    def _finish(self, reason: str, *, by_peer: bool) -> None:
        if self._terminated:
            return
        self._terminated = True
        self._events.append(LinkTerminated(reason, by_peer))

    def _receive_auth(self, protocol: int, info: bytes, now: float) -> None:
        auth = self._authenticator
        if auth is None or not self.lcp.opened:
            self._count("dropped-auth-out-of-phase")
            return
        if protocol == PppProtocol.PAP and isinstance(auth, PapAuthenticator):
            request = auth.receive(info, now)
            if request is not None:
                self._credentials(
                    request.peer_id,
                    PapCredentials(request.password),
                    ProxyMaterial(
                        authen_type=ProxyAuthenType.PAP,
                        authen_name=request.peer_id,
                        authen_id=auth.ident,
                        authen_response=request.password,
                    ),
                )
        elif protocol == PppProtocol.CHAP and isinstance(auth, ChapAuthenticator):
            value = auth.receive(info, now)
            if value is None:
                return
            creds: Credentials
            if auth.algorithm == ChapAlgorithm.MSCHAP_V2:
                creds = MschapV2Credentials(auth.ident, auth.challenge, value.value)
                material = ProxyMaterial(authen_name=value.name)
            else:
                creds = ChapCredentials(auth.ident, auth.challenge, value.value, auth.algorithm)
                material = ProxyMaterial(
                    authen_type=ProxyAuthenType.CHAP,
                    authen_name=value.name,
                    authen_challenge=auth.challenge,
                    authen_id=auth.ident,
                    authen_response=value.value,
                )
            self._credentials(value.name, creds, material)
        else:
            self._count("dropped-auth-wrong-protocol")

    def _credentials(self, name: bytes, creds: Credentials, material: ProxyMaterial) -> None:
        self._auth_proxy = material
        self._auth_deadline = None
        self.phase = "waiting"
        username = name.decode("utf-8", "surrogateescape")
        self._events.append(CredentialsReceived(username, creds, self.proxy))

    def _start_auth(self, now: float) -> None:
        method = self.lcp.local_auth
        if method is None:
            if self.config.auth:  # cannot happen with a sane peer: we always ask for one
                self.terminate("lcp-failed", now)
            else:
                self.phase = "authenticated"
            return
        self.phase = "authenticate"
        self._auth_deadline = now + self.config.auth_timeout
        if method == "pap":
            self._authenticator = PapAuthenticator(self._send, self.counters)
        else:
            algorithm = AUTH_METHODS[method][1][0]
            chap = ChapAuthenticator(
                self._send,
                self.counters,
                algorithm=algorithm,
                name=self.config.chap_name,
                restart_timer=self.config.restart_timer,
                max_challenges=self.config.max_configure,
                rand_bytes=self.rand_bytes,
            )
            self._authenticator = chap
            chap.start(now)

    def _process(self, now: float) -> None:
        if self.lcp.auth_failed and self.phase == "establish":
            self.lcp.auth_failed = False
            self.terminate("lcp-failed", now)
        signals = self.lcp.signals
        while signals:
            signal = signals.pop(0)
            if signal is Signal.UP:
                if self.phase == "establish":
                    self._events.append(LcpOpened(self.lcp.peer_mru))
                    self._start_auth(now)
            elif signal is Signal.DOWN:
                if self.phase in ("authenticate", "waiting", "authenticated"):
                    # The peer renegotiates LCP: authentication starts again when it is up.
                    self.phase = "establish"
                    self._authenticator = None
                    self._auth_deadline = None
            elif signal is Signal.FINISHED:
                self.phase = "finished"
                self._finish(self._reason or "lcp-failed", by_peer=False)
            elif signal is Signal.ECHO_TIMEOUT:
                self._finish("echo-timeout", by_peer=False)
                self.terminate("echo-timeout", now)
