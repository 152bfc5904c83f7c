"""Commands the call flow asks its runtime to carry out, and the call snapshot they carry.

The orchestrator never performs I/O. Bytes to send and effects that need the outside world
(state store, accounting spool, data plane) come out as these frozen dataclasses; the runtime
executes them and answers with the orchestrator's ``*_result`` / ``detached`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.wire import MacAddress


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """What accounting and operations need to know about one call."""

    call_id: int
    acct_session_id: str
    interface: str
    mac: MacAddress
    pppoe_session_id: int
    username: str
    realm: str
    nas_port_id: str | None
    circuit_id: bytes | None
    remote_id: bytes | None
    lns_id: str | None
    lns_address: str | None
    tunnel_id: int | None
    session_id: int | None
    peer_tunnel_id: int | None
    peer_session_id: int | None
    assignment_id: str | None
    class_attrs: tuple[bytes, ...]
    started_at: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class SendEthernet:
    interface: str
    dst: MacAddress
    ethertype: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendRadius:
    datagram: Any  # broker.radius.client.Datagram


@dataclass(frozen=True, slots=True)
class SendL2tp:
    payload: bytes
    peer: tuple[str, int]


@dataclass(frozen=True, slots=True)
class QueryLoad:
    call_id: int
    lns_ids: tuple[str, ...]
    realm: str
    tunnel_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reserve:
    call_id: int
    lns_id: str
    tunnel_key: str
    realm: str
    lns_max: int | None
    tunnel_max: int | None  # per identity in the store; the call flow sends None (see Caps)
    realm_max: int | None


@dataclass(frozen=True, slots=True)
class Release:
    call_id: int
    reservation: Any


@dataclass(frozen=True, slots=True)
class LockOut:
    lns_id: str
    hold: float
    reason: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The single probe call to an LNS whose lockout expired ended: ok re-admits it."""

    lns_id: str
    ok: bool
    hold: float


@dataclass(frozen=True, slots=True)
class AttachSplice:
    call: CallSnapshot
    peer: tuple[str, int]
    sequencing: bool


@dataclass(frozen=True, slots=True)
class DetachSplice:
    call_id: int


@dataclass(frozen=True, slots=True)
class AccountStart:
    call: CallSnapshot


@dataclass(frozen=True, slots=True)
class AccountStop:
    call: CallSnapshot
    session_time: float
    terminate_cause: int
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountTunnel:
    """RFC 2867 tunnel record: status is the Acct-Status-Type (9 Start, 10 Stop, 11 Reject)."""

    status: int
    tunnel_id: int
    lns_id: str
    lns_address: str
    assignment_id: str | None


@dataclass(frozen=True, slots=True)
class CallEnded:
    """Informational: a call left the broker (for logs and metrics)."""

    call: CallSnapshot
    reason: str
    state: str
    setup_latency: float | None


@dataclass(frozen=True, slots=True)
class CallUp:
    call: CallSnapshot
    setup_latency: float


Command = (
    SendEthernet
    | SendRadius
    | SendL2tp
    | QueryLoad
    | Reserve
    | Release
    | LockOut
    | ProbeResult
    | AttachSplice
    | DetachSplice
    | AccountStart
    | AccountStop
    | AccountTunnel
    | CallEnded
    | CallUp
)
