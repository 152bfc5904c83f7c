"""Configuration values for the L2TP engines: per-tunnel settings and per-call parameters.

RFC 2661 section 5.8 (retransmit schedule, receive window), 5.5 (HELLO interval),
5.7 (StopCCN hold), 4.4.3 (host name, capabilities), 4.4.4/4.4.5 (call and proxy AVPs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """Settings for one tunnel (control connection).

    ``retransmit`` holds the wait before each retransmission: the message is sent at t0 and
    retransmitted when each step but the last expires; when the last step expires without an
    acknowledgement the tunnel and its sessions are cleared. With the default
    ``(1, 2, 4, 8, 8)`` a peer that never answers is given up at t0 + 23 s.

    ``setup_timeout``: a peer that acknowledges our SCCRQ/SCCRP (or ICRQ/ICRP) but never sends
    the reply is given up after this long with nothing outstanding and nothing received.
    """

    host_name: str = "l2tp-broker"
    secret: bytes | None = None
    hide_avps: bool = False
    receive_window: int = 8
    retransmit: tuple[float, ...] = (1, 2, 4, 8, 8)
    hello_interval: float = 60.0
    zlb_delay: float = 0.1
    stopccn_hold: float = 31.0
    vendor_name: str = "l2tp-broker"
    firmware_revision: int = 0x0100
    framing_caps: int = 3
    bearer_caps: int = 3
    setup_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.retransmit or any(t <= 0 for t in self.retransmit):
            raise ValueError("retransmit schedule must be non-empty and positive")
        if not 1 <= self.receive_window <= 0xFFFF:
            raise ValueError("receive_window must be 1..65535 (RFC 2661 4.4.3: 0 is invalid)")
        if self.hide_avps and not self.secret:
            raise ValueError("hide_avps needs a shared secret (RFC 2661 4.3)")
        if self.setup_timeout <= 0:
            raise ValueError("setup_timeout must be positive")
        if not self.host_name:
            raise ValueError("host_name must be at least one octet (RFC 2661 4.4.3)")


@dataclass(frozen=True, slots=True)
class CallParams:
    """What the LAC knows about a call, sent in ICRQ and ICCN (RFC 2661 6.6, 6.8, 4.4.5).

    The LNS side builds one from the received ICRQ + ICCN so policies and emulators can see
    what the LAC sent (proxy LCP and proxy authentication).
    """

    called_number: str = ""
    calling_number: str = ""
    serial: int = 0
    bearer_type: int | None = None
    tx_connect_speed: int = 10_000_000
    rx_connect_speed: int | None = None
    framing_type: int = 1  #: RFC 2661 4.4.4: bit S (1) = synchronous, bit A (2) = async
    physical_channel_id: int | None = None
    private_group_id: bytes | None = None
    initial_received_confreq: bytes | None = None
    last_sent_confreq: bytes | None = None
    last_received_confreq: bytes | None = None
    authen_type: int | None = None
    authen_name: str | None = None
    authen_challenge: bytes | None = None
    authen_id: int | None = None
    authen_response: bytes | None = None
    sequencing_required: bool = False
