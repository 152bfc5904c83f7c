"""RADIUS accounting records: RFC 2866 (Start/Interim-Update/Stop, Accounting-On/Off) and
RFC 2867 (Tunnel-Start/Stop/Reject, Tunnel-Link-Start/Stop/Reject).

A record is an :class:`AcctRecord`: the status, the attributes as ``(name, value)`` pairs in
order (dictionary names, pyrad value types: ``str``, ``int``, ``bytes``, dotted IPv4 ``str``)
and the wall-clock time it was created. It serializes losslessly to bytes (JSON) so the
durable spool can keep it. Acct-Delay-Time is *not* part of the record: the sender adds it at
each transmission (RFC 2866 section 5.2, ``now - created``), which is why a record retransmitted
after its delay changed is a new packet with a new Identifier and Request Authenticator
(RFC 2866 section 3, RFC 5080 section 2.2.1).

Attributes are encoded through the project dictionary (:func:`broker.radius.packet.attribute`)
and the packet with the RFC 2866 section 3 Request Authenticator by
:func:`broker.radius.packet.encode_request`. Tunnel attributes in accounting carry tag 0
(integers) or no tag octet (strings), RFC 2868 section 3.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from broker.radius.constants import (
    AcctStatusType,
    AcctTerminateCause,
    Attr,
    Code,
    NasPortType,
    TunnelMediumType,
    TunnelType,
)
from broker.radius.packet import RawAttribute, attribute, encode_request
from broker.wire import LocalProtocolError

__all__ = [
    "AcctAuthentic",
    "AcctRecord",
    "AcctStatusType",
    "AcctTerminateCause",
    "Counters",
    "InvalidRecord",
    "NasInfo",
    "SessionIdAllocator",
    "SessionInfo",
    "TunnelInfo",
    "accounting_off_record",
    "accounting_on_record",
    "check_record",
    "encode_accounting_request",
    "interim_record",
    "split_gigawords",
    "start_record",
    "stop_record",
    "tunnel_link_record",
    "tunnel_record",
]

AttrValue = str | int | bytes
Attribute = tuple[str, AttrValue]

GIGAWORD = 1 << 32


class AcctAuthentic(IntEnum):
    RADIUS = 1  #: RFC 2866 section 5.6
    LOCAL = 2  #: RFC 2866 section 5.6
    REMOTE = 3  #: RFC 2866 section 5.6


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcctRecord:
    """One accounting record as spooled: everything but Acct-Delay-Time."""

    record_id: str
    status: int
    attributes: tuple[Attribute, ...]
    created: float

    def get(self, name: str) -> AttrValue | None:
        for n, v in self.attributes:
            if n == name:
                return v
        return None

    def to_bytes(self) -> bytes:
        attrs = [[n, {"b": v.hex()} if isinstance(v, bytes) else v] for n, v in self.attributes]
        doc = {"id": self.record_id, "s": self.status, "a": attrs, "c": self.created}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AcctRecord:
        doc = json.loads(data)
        attrs: list[Attribute] = []
        for name, value in doc["a"]:
            if isinstance(value, dict):
                attrs.append((str(name), bytes.fromhex(value["b"])))
            elif isinstance(value, str | int):
                attrs.append((str(name), value))
            else:
                raise ValueError(f"bad spooled attribute value for {name}")
        return cls(str(doc["id"]), int(doc["s"]), tuple(attrs), float(doc["c"]))

    def wire_attributes(self, delay: int) -> list[RawAttribute]:
        """Acct-Status-Type first, the record's attributes, then Acct-Delay-Time."""
        return [
            (Attr.ACCT_STATUS_TYPE, self.status.to_bytes(4, "big")),
            *(attribute(name, value) for name, value in self.attributes),
            (Attr.ACCT_DELAY_TIME, max(0, min(delay, GIGAWORD - 1)).to_bytes(4, "big")),
        ]


class InvalidRecord(LocalProtocolError):
    """A record that cannot be encoded (unknown attribute name, value of the wrong type or
    range, packet too long): a bug on our side, refused before it reaches the spool."""


def encode_accounting_request(
    record: AcctRecord, identifier: int, secret: bytes, *, delay: int
) -> bytes:
    """The Accounting-Request for one transmission (raises :class:`InvalidRecord`)."""
    try:
        return encode_request(
            Code.ACCOUNTING_REQUEST, identifier, record.wire_attributes(delay), secret
        )
    except (KeyError, ValueError, TypeError, OverflowError, struct.error, LocalProtocolError) as e:
        raise InvalidRecord(f"record {record.record_id}: {e!r}") from e


def check_record(record: AcctRecord) -> None:
    """Raise :class:`InvalidRecord` unless the record encodes (call before spooling it)."""
    encode_accounting_request(record, 0, b"check", delay=GIGAWORD - 1)


# -- builders -----------------------------------------------------------------------------


class SessionIdAllocator:
    """Acct-Session-Id values unique per node (RFC 2866 section 5.5): node id, the boot epoch
    given by the caller (so a restarted node never repeats an id) and a counter, in hex."""

    def __init__(self, node_id: str, epoch: int, start: int = 0) -> None:
        self._prefix = f"{node_id}-{epoch:08x}-"
        self._next = start

    def allocate(self) -> str:
        value = f"{self._prefix}{self._next:08x}"
        self._next += 1
        return value


@dataclass(frozen=True, slots=True)
class NasInfo:
    nas_ip: str
    nas_identifier: str


@dataclass(frozen=True, slots=True)
class TunnelInfo:
    """What RFC 2867 tunnel records carry about the tunnel (tag 0 in accounting)."""

    client_endpoint: str  #: our address (LAC)
    server_endpoint: str  #: the LNS
    connection: str  #: Acct-Tunnel-Connection, RFC 2867 section 4.1 (e.g. call serial number)
    medium: TunnelMediumType = TunnelMediumType.IPV4
    assignment_id: str | None = None
    client_auth_id: str | None = None
    server_auth_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    acct_session_id: str
    user_name: str
    nas: NasInfo
    nas_port_type: int = NasPortType.VIRTUAL
    nas_port_id: str | None = None
    nas_port: int | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    class_attrs: tuple[bytes, ...] = ()
    authentic: AcctAuthentic = AcctAuthentic.RADIUS
    multi_session_id: str | None = None
    tunnel: TunnelInfo | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    packets_lost: int = 0


@dataclass(slots=True)
class _Attrs:
    items: list[Attribute] = field(default_factory=list)

    def add(self, name: str, value: AttrValue | None) -> None:
        if value is not None:
            self.items.append((name, value))


def split_gigawords(value: int) -> tuple[int, int]:
    """(low 32 bits, Gigawords) for a 64-bit counter (RFC 2869 sections 5.1/5.2)."""
    if value < 0:
        raise ValueError("counter must be non-negative")
    return value % GIGAWORD, (value // GIGAWORD) % GIGAWORD


def _counter_attrs(a: _Attrs, c: Counters) -> None:
    lo, hi = split_gigawords(c.input_octets)
    a.add("Acct-Input-Octets", lo)
    a.add("Acct-Input-Gigawords", hi)
    lo, hi = split_gigawords(c.output_octets)
    a.add("Acct-Output-Octets", lo)
    a.add("Acct-Output-Gigawords", hi)
    a.add("Acct-Input-Packets", c.input_packets % GIGAWORD)
    a.add("Acct-Output-Packets", c.output_packets % GIGAWORD)


def _tunnel_attrs(a: _Attrs, t: TunnelInfo) -> None:
    a.add("Tunnel-Type", int(TunnelType.L2TP))
    a.add("Tunnel-Medium-Type", int(t.medium))
    a.add("Tunnel-Client-Endpoint", t.client_endpoint)
    a.add("Tunnel-Server-Endpoint", t.server_endpoint)
    a.add("Acct-Tunnel-Connection", t.connection)
    a.add("Tunnel-Assignment-Id", t.assignment_id)
    a.add("Tunnel-Client-Auth-Id", t.client_auth_id)
    a.add("Tunnel-Server-Auth-Id", t.server_auth_id)


def _session_attrs(s: SessionInfo) -> _Attrs:
    a = _Attrs()
    a.add("Acct-Session-Id", s.acct_session_id)
    a.add("User-Name", s.user_name)
    a.add("NAS-IP-Address", s.nas.nas_ip)
    a.add("NAS-Identifier", s.nas.nas_identifier)
    a.add("NAS-Port", s.nas_port)
    a.add("NAS-Port-Type", int(s.nas_port_type))
    a.add("NAS-Port-Id", s.nas_port_id)
    a.add("Calling-Station-Id", s.calling_station_id)
    a.add("Called-Station-Id", s.called_station_id)
    a.add("Acct-Authentic", int(s.authentic))
    a.add("Acct-Multi-Session-Id", s.multi_session_id)
    for c in s.class_attrs:  # RFC 2865 section 5.25: echoed unmodified
        a.add("Class", c)
    return a


def _finish(record_id: str, status: AcctStatusType, a: _Attrs, now: float) -> AcctRecord:
    a.add("Event-Timestamp", int(now) % GIGAWORD)
    return AcctRecord(record_id, int(status), tuple(a.items), now)


def start_record(s: SessionInfo, now: float) -> AcctRecord:
    """RFC 2866 Start (no Acct-Session-Time, no counters)."""
    a = _session_attrs(s)
    if s.tunnel is not None:
        _tunnel_attrs(a, s.tunnel)
    return _finish(f"{s.acct_session_id}/start", AcctStatusType.START, a, now)


def interim_record(s: SessionInfo, counters: Counters, session_time: int, now: float) -> AcctRecord:
    a = _session_attrs(s)
    if s.tunnel is not None:
        _tunnel_attrs(a, s.tunnel)
    a.add("Acct-Session-Time", session_time)
    _counter_attrs(a, counters)
    rid = f"{s.acct_session_id}/interim/{session_time}"
    return _finish(rid, AcctStatusType.INTERIM_UPDATE, a, now)


def stop_record(
    s: SessionInfo,
    counters: Counters,
    session_time: int,
    cause: AcctTerminateCause,
    now: float,
) -> AcctRecord:
    a = _session_attrs(s)
    if s.tunnel is not None:
        _tunnel_attrs(a, s.tunnel)
    a.add("Acct-Session-Time", session_time)
    _counter_attrs(a, counters)
    a.add("Acct-Terminate-Cause", int(cause))
    return _finish(f"{s.acct_session_id}/stop", AcctStatusType.STOP, a, now)


def tunnel_record(
    status: AcctStatusType,
    acct_session_id: str,
    nas: NasInfo,
    tunnel: TunnelInfo,
    now: float,
    *,
    user_name: str | None = None,
    counters: Counters | None = None,
    session_time: int | None = None,
    cause: AcctTerminateCause | None = None,
) -> AcctRecord:
    """RFC 2867 Tunnel-Start/Stop/Reject (9-11) for the tunnel itself."""
    if status not in (
        AcctStatusType.TUNNEL_START,
        AcctStatusType.TUNNEL_STOP,
        AcctStatusType.TUNNEL_REJECT,
    ):
        raise ValueError(f"{status!r} is not a tunnel status")
    a = _Attrs()
    a.add("Acct-Session-Id", acct_session_id)
    a.add("User-Name", user_name)
    a.add("NAS-IP-Address", nas.nas_ip)
    a.add("NAS-Identifier", nas.nas_identifier)
    _tunnel_attrs(a, tunnel)
    if status is AcctStatusType.TUNNEL_STOP:
        a.add("Acct-Session-Time", session_time or 0)
        c = counters or Counters()
        _counter_attrs(a, c)
        a.add("Acct-Tunnel-Packets-Lost", c.packets_lost % GIGAWORD)
    if status is not AcctStatusType.TUNNEL_START:
        a.add("Acct-Terminate-Cause", int(cause or AcctTerminateCause.NAS_REQUEST))
    rid = f"{acct_session_id}/{status.name.lower()}"
    return _finish(rid, status, a, now)


def tunnel_link_record(
    status: AcctStatusType,
    s: SessionInfo,
    now: float,
    *,
    counters: Counters | None = None,
    session_time: int | None = None,
    cause: AcctTerminateCause | None = None,
) -> AcctRecord:
    """RFC 2867 Tunnel-Link-Start/Stop/Reject (12-14) for one session inside a tunnel."""
    if status not in (
        AcctStatusType.TUNNEL_LINK_START,
        AcctStatusType.TUNNEL_LINK_STOP,
        AcctStatusType.TUNNEL_LINK_REJECT,
    ):
        raise ValueError(f"{status!r} is not a tunnel-link status")
    if s.tunnel is None:
        raise ValueError("tunnel-link records need SessionInfo.tunnel")
    a = _session_attrs(s)
    _tunnel_attrs(a, s.tunnel)
    if status is AcctStatusType.TUNNEL_LINK_STOP:
        c = counters or Counters()
        a.add("Acct-Session-Time", session_time or 0)
        _counter_attrs(a, c)
        a.add("Acct-Tunnel-Packets-Lost", c.packets_lost % GIGAWORD)
    if status is not AcctStatusType.TUNNEL_LINK_START:
        a.add("Acct-Terminate-Cause", int(cause or AcctTerminateCause.NAS_REQUEST))
    rid = f"{s.acct_session_id}/{status.name.lower()}"
    return _finish(rid, status, a, now)


def accounting_on_record(nas: NasInfo, acct_session_id: str, now: float) -> AcctRecord:
    """RFC 2866 Accounting-On (7): the NAS started; sessions from before are gone."""
    a = _Attrs()
    a.add("Acct-Session-Id", acct_session_id)
    a.add("NAS-IP-Address", nas.nas_ip)
    a.add("NAS-Identifier", nas.nas_identifier)
    return _finish(f"{acct_session_id}/on", AcctStatusType.ACCOUNTING_ON, a, now)


def accounting_off_record(
    nas: NasInfo,
    acct_session_id: str,
    now: float,
    cause: AcctTerminateCause = AcctTerminateCause.ADMIN_REBOOT,
) -> AcctRecord:
    """RFC 2866 Accounting-Off (8): clean stop of the NAS."""
    a = _Attrs()
    a.add("Acct-Session-Id", acct_session_id)
    a.add("NAS-IP-Address", nas.nas_ip)
    a.add("NAS-Identifier", nas.nas_identifier)
    a.add("Acct-Terminate-Cause", int(cause))
    return _finish(f"{acct_session_id}/off", AcctStatusType.ACCOUNTING_OFF, a, now)
