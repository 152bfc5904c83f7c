"""Events the L2TP endpoint reports (past tense), RFC 2661 sections 5-7."""

from __future__ import annotations

from dataclasses import dataclass

from broker.l2tp.config import CallParams

Peer = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TunnelEstablished:
    tunnel_id: int
    peer_tunnel_id: int
    peer: Peer
    peer_host_name: str


@dataclass(frozen=True, slots=True)
class TunnelClosed:
    """The tunnel and every session in it are gone (each session also gets SessionClosed).

    ``reason``: 'retransmit-exhausted', 'stopccn-received', 'local', 'auth-failed',
    'rejected' (we refused the peer's SCCRQ/SCCRP), 'protocol-error' (StopCCN result 7 sent),
    'unknown-mandatory-avp' (result 2 error 8 sent), 'tie-breaker-lost', 'setup-timeout'
    (the peer acknowledged our SCCRQ/SCCRP but never answered within ``setup_timeout``).
    ``result``/``error``/``message`` are the Result Code AVP sent or received.
    ``during_setup`` is true when the tunnel never reached established.
    """

    tunnel_id: int
    reason: str
    result: int | None
    error: int | None
    message: str
    during_setup: bool


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    tunnel_id: int
    session_id: int
    peer_tunnel_id: int
    peer_session_id: int
    sequencing_required: bool
    params: CallParams | None = None  # LNS role: what the LAC sent in ICRQ + ICCN


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """A session ended. ``by_peer`` is true when the peer sent the CDN/StopCCN.

    When the tunnel ends, every session gets one with the tunnel's result. Our own CDNs:
    the caller's result for ``close_session``; 10 (not established in time) on setup timeout;
    2/8 for an unknown mandatory AVP; 2/1 when opened on a tunnel that is already closing.
    ``during_setup`` is true when the session never reached established.
    """

    tunnel_id: int
    session_id: int
    result: int | None
    error: int | None
    message: str
    disconnect_cause: tuple[int, int, int, str] | None
    by_peer: bool
    during_setup: bool = False


@dataclass(frozen=True, slots=True)
class IncomingTunnel:
    """LNS role: an SCCRQ was accepted (SCCRP sent); TunnelEstablished follows the SCCCN."""

    tunnel_id: int
    peer: Peer
    peer_tunnel_id: int
    peer_host_name: str


@dataclass(frozen=True, slots=True)
class IncomingSession:
    """LNS role: an ICRQ was accepted (ICRP sent); SessionEstablished follows the ICCN."""

    tunnel_id: int
    session_id: int
    peer_session_id: int
    params: CallParams


@dataclass(frozen=True, slots=True)
class SetLinkInfoReceived:
    tunnel_id: int
    session_id: int
    send_accm: int
    receive_accm: int


@dataclass(frozen=True, slots=True)
class WanErrorNotifyReceived:
    tunnel_id: int
    session_id: int
    crc_errors: int
    framing_errors: int
    hardware_overruns: int
    buffer_overruns: int
    timeout_errors: int
    alignment_errors: int


L2tpEvent = (
    TunnelEstablished
    | TunnelClosed
    | SessionEstablished
    | SessionClosed
    | IncomingTunnel
    | IncomingSession
    | SetLinkInfoReceived
    | WanErrorNotifyReceived
)
