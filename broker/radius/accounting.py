"""RADIUS accounting records: RFC 2866 (Start/Interim-Update/Stop, Accounting-On/Off) and
RFC 2867 (Tunnel-Start/Stop/Reject, Tunnel-Link-Start/Stop/Reject), and their wire form.

A record is an :class:`AcctRecord`: the status, the attributes as ``(name, value)`` pairs in
order and the wall-clock time it was created. It serializes losslessly to bytes (JSON) so the
durable spool can keep it. Acct-Delay-Time is *not* part of the record: the sender adds it at
each transmission (RFC 2866 section 5.2, ``now - created``), which is why a record retransmitted
after its delay changed is a new packet with a new Identifier and Request Authenticator
(RFC 2866 section 3, RFC 2865 section 5: "the identifier ... MUST change whenever the content
... changes").

The wire helpers here (attribute table for the attributes accounting and RFC 5176 use, the
RFC 2866 section 3 Request Authenticator, the Response Authenticator check and the RFC 3579
Message-Authenticator) are pure functions on bytes, written from the RFC texts; the attribute
walk uses :class:`broker.wire.Buffer`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from broker.wire import Buffer, RemoteProtocolError

AttrValue = str | int | bytes
Attribute = tuple[str, AttrValue]

GIGAWORD = 1 << 32


class Code(IntEnum):
    """RADIUS packet codes used by accounting and dynamic authorization."""

    ACCOUNTING_REQUEST = 4  #: RFC 2866 section 3
    ACCOUNTING_RESPONSE = 5  #: RFC 2866 section 4
    DISCONNECT_REQUEST = 40  #: RFC 5176 section 3
    DISCONNECT_ACK = 41  #: RFC 5176 section 3
    DISCONNECT_NAK = 42  #: RFC 5176 section 3
    COA_REQUEST = 43  #: RFC 5176 section 3
    COA_ACK = 44  #: RFC 5176 section 3
    COA_NAK = 45  #: RFC 5176 section 3


class AcctStatusType(IntEnum):
    START = 1  #: RFC 2866 section 5.1
    STOP = 2  #: RFC 2866 section 5.1
    INTERIM_UPDATE = 3  #: RFC 2866 section 5.1
    ACCOUNTING_ON = 7  #: RFC 2866 section 5.1
    ACCOUNTING_OFF = 8  #: RFC 2866 section 5.1
    TUNNEL_START = 9  #: RFC 2867 section 3.1
    TUNNEL_STOP = 10  #: RFC 2867 section 3.2
    TUNNEL_REJECT = 11  #: RFC 2867 section 3.3
    TUNNEL_LINK_START = 12  #: RFC 2867 section 3.4
    TUNNEL_LINK_STOP = 13  #: RFC 2867 section 3.5
    TUNNEL_LINK_REJECT = 14  #: RFC 2867 section 3.6


class AcctTerminateCause(IntEnum):
    USER_REQUEST = 1  #: RFC 2866 section 5.10
    LOST_CARRIER = 2  #: RFC 2866 section 5.10
    LOST_SERVICE = 3  #: RFC 2866 section 5.10
    IDLE_TIMEOUT = 4  #: RFC 2866 section 5.10
    SESSION_TIMEOUT = 5  #: RFC 2866 section 5.10
    ADMIN_RESET = 6  #: RFC 2866 section 5.10
    ADMIN_REBOOT = 7  #: RFC 2866 section 5.10
    PORT_ERROR = 8  #: RFC 2866 section 5.10
    NAS_ERROR = 9  #: RFC 2866 section 5.10
    NAS_REQUEST = 10  #: RFC 2866 section 5.10
    NAS_REBOOT = 11  #: RFC 2866 section 5.10
    PORT_UNNEEDED = 12  #: RFC 2866 section 5.10
    PORT_PREEMPTED = 13  #: RFC 2866 section 5.10
    PORT_SUSPENDED = 14  #: RFC 2866 section 5.10
    SERVICE_UNAVAILABLE = 15  #: RFC 2866 section 5.10
    CALLBACK = 16  #: RFC 2866 section 5.10
    USER_ERROR = 17  #: RFC 2866 section 5.10
    HOST_REQUEST = 18  #: RFC 2866 section 5.10


class AcctAuthentic(IntEnum):
    RADIUS = 1  #: RFC 2866 section 5.6
    LOCAL = 2  #: RFC 2866 section 5.6
    REMOTE = 3  #: RFC 2866 section 5.6


class NasPortType(IntEnum):
    VIRTUAL = 5  #: RFC 2865 section 5.41
    ETHERNET = 15  #: RFC 2865 section 5.41
    XDSL = 16  #: RFC 2865 section 5.41


class TunnelType(IntEnum):
    L2TP = 3  #: RFC 2868 section 3.1


class TunnelMediumType(IntEnum):
    IPV4 = 1  #: RFC 2868 section 3.2
    IPV6 = 2  #: RFC 2868 section 3.2


class AttrType(Enum):
    STRING = "string"  #: RFC 2865 section 5 "text"
    OCTETS = "octets"  #: RFC 2865 section 5 "string"
    INTEGER = "integer"  #: RFC 2865 section 5 32-bit unsigned
    IPADDR = "ipaddr"  #: RFC 2865 section 5 "address"
    DATE = "date"  #: RFC 2865 section 5 "time"
    TAGGED_INTEGER = "tagged-integer"  #: RFC 2868 section 3.1: tag octet + 24-bit value


@dataclass(frozen=True, slots=True)
class AttrDef:
    name: str
    code: int
    type: AttrType


#: The attributes accounting records and RFC 5176 requests use (RFC 2865/2866/2867/2868/2869,
#: RFC 5176 section 3.6). Values are tag 0 for tunnel attributes in accounting.
_DEFS: tuple[tuple[str, int, AttrType], ...] = (
    ("User-Name", 1, AttrType.STRING),
    ("NAS-IP-Address", 4, AttrType.IPADDR),
    ("NAS-Port", 5, AttrType.INTEGER),
    ("Service-Type", 6, AttrType.INTEGER),
    ("Framed-Protocol", 7, AttrType.INTEGER),
    ("Framed-IP-Address", 8, AttrType.IPADDR),
    ("Reply-Message", 18, AttrType.STRING),
    ("State", 24, AttrType.OCTETS),
    ("Class", 25, AttrType.OCTETS),
    ("Session-Timeout", 27, AttrType.INTEGER),
    ("Idle-Timeout", 28, AttrType.INTEGER),
    ("Called-Station-Id", 30, AttrType.STRING),
    ("Calling-Station-Id", 31, AttrType.STRING),
    ("NAS-Identifier", 32, AttrType.STRING),
    ("Proxy-State", 33, AttrType.OCTETS),
    ("Acct-Status-Type", 40, AttrType.INTEGER),
    ("Acct-Delay-Time", 41, AttrType.INTEGER),
    ("Acct-Input-Octets", 42, AttrType.INTEGER),
    ("Acct-Output-Octets", 43, AttrType.INTEGER),
    ("Acct-Session-Id", 44, AttrType.STRING),
    ("Acct-Authentic", 45, AttrType.INTEGER),
    ("Acct-Session-Time", 46, AttrType.INTEGER),
    ("Acct-Input-Packets", 47, AttrType.INTEGER),
    ("Acct-Output-Packets", 48, AttrType.INTEGER),
    ("Acct-Terminate-Cause", 49, AttrType.INTEGER),
    ("Acct-Multi-Session-Id", 50, AttrType.STRING),
    ("Acct-Link-Count", 51, AttrType.INTEGER),
    ("Acct-Input-Gigawords", 52, AttrType.INTEGER),
    ("Acct-Output-Gigawords", 53, AttrType.INTEGER),
    ("Event-Timestamp", 55, AttrType.DATE),
    ("NAS-Port-Type", 61, AttrType.INTEGER),
    ("Tunnel-Type", 64, AttrType.TAGGED_INTEGER),
    ("Tunnel-Medium-Type", 65, AttrType.TAGGED_INTEGER),
    ("Tunnel-Client-Endpoint", 66, AttrType.STRING),
    ("Tunnel-Server-Endpoint", 67, AttrType.STRING),
    ("Acct-Tunnel-Connection", 68, AttrType.STRING),
    ("Connect-Info", 77, AttrType.STRING),
    ("Message-Authenticator", 80, AttrType.OCTETS),
    ("Tunnel-Assignment-ID", 82, AttrType.STRING),
    ("Acct-Interim-Interval", 85, AttrType.INTEGER),
    ("Acct-Tunnel-Packets-Lost", 86, AttrType.INTEGER),
    ("NAS-Port-Id", 87, AttrType.STRING),
    ("Chargeable-User-Identity", 89, AttrType.OCTETS),
    ("Tunnel-Client-Auth-ID", 90, AttrType.STRING),
    ("Tunnel-Server-Auth-ID", 91, AttrType.STRING),
    ("NAS-IPv6-Address", 95, AttrType.OCTETS),
    ("Error-Cause", 101, AttrType.INTEGER),
)

ATTRIBUTES: dict[str, AttrDef] = {n: AttrDef(n, c, t) for n, c, t in _DEFS}
ATTRIBUTES_BY_CODE: dict[int, AttrDef] = {d.code: d for d in ATTRIBUTES.values()}

MESSAGE_AUTHENTICATOR = 80
HEADER_LENGTH = 20
MAX_PACKET = 4096  #: RFC 2865 section 3


# -- attribute values --------------------------------------------------------------------


def encode_value(defn: AttrDef, value: AttrValue) -> bytes:
    """The attribute's value octets (without type and length)."""
    t = defn.type
    if t is AttrType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"{defn.name} takes str, got {type(value).__name__}")
        data = value.encode()
    elif t is AttrType.OCTETS:
        if not isinstance(value, bytes):
            raise TypeError(f"{defn.name} takes bytes, got {type(value).__name__}")
        data = value
    elif t is AttrType.IPADDR:
        if not isinstance(value, str):
            raise TypeError(f"{defn.name} takes a dotted IPv4 str")
        data = ipaddress.IPv4Address(value).packed
    elif t in (AttrType.INTEGER, AttrType.DATE):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < GIGAWORD:
            raise ValueError(f"{defn.name} takes an unsigned 32-bit int, got {value!r}")
        data = value.to_bytes(4, "big")
    else:  # TAGGED_INTEGER: tag 0 in accounting (RFC 2868 section 3.1)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 24:
            raise ValueError(f"{defn.name} takes a 24-bit int, got {value!r}")
        data = value.to_bytes(4, "big")
    if len(data) > 253:
        raise ValueError(f"{defn.name} value longer than 253 octets")
    return data


def decode_value(defn: AttrDef, data: bytes) -> AttrValue:
    """Decode value octets; raises RemoteProtocolError on a length that does not fit the type."""
    t = defn.type
    if t is AttrType.STRING:
        return data.decode("utf-8", errors="replace")
    if t is AttrType.OCTETS:
        return data
    if len(data) != 4:
        raise RemoteProtocolError(f"{defn.name}: {len(data)} octets, expected 4")
    if t is AttrType.IPADDR:
        return str(ipaddress.IPv4Address(data))
    if t is AttrType.TAGGED_INTEGER:
        return int.from_bytes(data[1:], "big")
    return int.from_bytes(data, "big")


def encode_attributes(attrs: Iterable[tuple[int, bytes]]) -> bytes:
    out = Buffer()
    for code, value in attrs:
        if not 0 < code < 256 or len(value) > 253:
            raise ValueError(f"attribute {code}: bad code or value length {len(value)}")
        out.push_uint8(code)
        out.push_uint8(len(value) + 2)
        out.push_bytes(value)
    return out.data()


def decode_attributes(data: bytes) -> list[tuple[int, bytes]]:
    """Raw attributes in order; every length is checked (RFC 2865 section 5)."""
    buf = Buffer(data)
    out: list[tuple[int, bytes]] = []
    while not buf.eof():
        code = buf.pull_uint8()
        length = buf.pull_uint8()
        if length < 2:
            raise RemoteProtocolError(f"attribute {code} with length {length} < 2")
        out.append((code, buf.pull_bytes(length - 2)))
    return out


def named_attributes(attrs: Sequence[Attribute]) -> list[tuple[int, bytes]]:
    out = []
    for name, value in attrs:
        defn = ATTRIBUTES[name]
        out.append((defn.code, encode_value(defn, value)))
    return out


# -- packets and authenticators ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawPacket:
    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[int, bytes], ...]

    def get(self, code: int) -> list[bytes]:
        return [v for c, v in self.attributes if c == code]


def parse_packet(raw: bytes) -> RawPacket:
    """Header + attributes; trailing octets beyond Length are ignored (RFC 2865 section 3)."""
    buf = Buffer(raw)
    code = buf.pull_uint8()
    identifier = buf.pull_uint8()
    length = buf.pull_uint16()
    if length < HEADER_LENGTH or length > len(raw) or length > MAX_PACKET:
        raise RemoteProtocolError(f"RADIUS length {length} invalid for {len(raw)} octets")
    authenticator = buf.pull_bytes(16)
    attrs = decode_attributes(raw[HEADER_LENGTH:length])
    return RawPacket(code, identifier, authenticator, tuple(attrs))


def _header(code: int, identifier: int, length: int) -> bytes:
    return bytes((code, identifier)) + length.to_bytes(2, "big")


def request_authenticator(packet_with_zero_auth: bytes, secret: bytes) -> bytes:
    """RFC 2866 section 3 / RFC 5176 section 3.5: MD5(Code+Id+Length+16 zero+Attributes+Secret)."""
    return hashlib.md5(packet_with_zero_auth + secret).digest()


def message_authenticator(packet: bytes, secret: bytes) -> bytes:
    """HMAC-MD5 over the packet as given (caller zeroes what the RFC says to zero)."""
    return hmac.new(secret, packet, hashlib.md5).digest()


def _zero_message_authenticator(raw: bytes, length: int) -> tuple[bytes, bytes | None]:
    """The packet with the Message-Authenticator value zeroed and the original value."""
    pos = HEADER_LENGTH
    found: bytes | None = None
    out = bytearray(raw[:length])
    while pos + 2 <= length:
        code, alen = out[pos], out[pos + 1]
        if alen < 2:
            break
        if code == MESSAGE_AUTHENTICATOR and alen == 18:
            found = bytes(out[pos + 2 : pos + 18])
            out[pos + 2 : pos + 18] = bytes(16)
        pos += alen
    return bytes(out), found


def encode_request(
    code: int,
    identifier: int,
    attrs: Sequence[tuple[int, bytes]],
    secret: bytes,
    *,
    with_message_authenticator: bool = False,
) -> bytes:
    """An Accounting-Request / Disconnect-Request / CoA-Request (RFC 2866 section 3,
    RFC 5176 section 3.5): the Request Authenticator is computed over the packet with a
    zero authenticator; a Message-Authenticator, if wanted, is computed first."""
    body = list(attrs)
    if with_message_authenticator:
        body.append((MESSAGE_AUTHENTICATOR, bytes(16)))
    attr_bytes = encode_attributes(body)
    length = HEADER_LENGTH + len(attr_bytes)
    if length > MAX_PACKET:
        raise ValueError(f"packet of {length} octets exceeds {MAX_PACKET}")
    zeroed = _header(code, identifier, length) + bytes(16) + attr_bytes
    if with_message_authenticator:
        mac = message_authenticator(zeroed, secret)
        zeroed = zeroed[:-16] + mac
    auth = request_authenticator(zeroed, secret)
    return zeroed[:4] + auth + zeroed[20:]


def encode_response(
    code: int,
    identifier: int,
    request_auth: bytes,
    attrs: Sequence[tuple[int, bytes]],
    secret: bytes,
    *,
    with_message_authenticator: bool = False,
) -> bytes:
    """A reply: Response Authenticator = MD5(Code+Id+Length+RequestAuth+Attributes+Secret)
    (RFC 2866 section 4, RFC 5176 section 3.5); Message-Authenticator computed first."""
    body = list(attrs)
    if with_message_authenticator:
        body.append((MESSAGE_AUTHENTICATOR, bytes(16)))
    attr_bytes = encode_attributes(body)
    length = HEADER_LENGTH + len(attr_bytes)
    pkt = _header(code, identifier, length) + request_auth + attr_bytes
    if with_message_authenticator:
        pkt = pkt[:-16] + message_authenticator(pkt, secret)
    auth = hashlib.md5(pkt + secret).digest()
    return pkt[:4] + auth + pkt[20:]


def verify_response(raw: bytes, request_auth: bytes, secret: bytes) -> bool:
    """Response Authenticator (and Message-Authenticator if present) of a reply."""
    if len(raw) < HEADER_LENGTH:
        return False
    length = int.from_bytes(raw[2:4], "big")
    if length < HEADER_LENGTH or length > len(raw):
        return False
    pkt = raw[:length]
    expected = hashlib.md5(pkt[:4] + request_auth + pkt[20:] + secret).digest()
    if not hmac.compare_digest(expected, pkt[4:20]):
        return False
    zeroed, mac = _zero_message_authenticator(pkt[:4] + request_auth + pkt[20:], length)
    if mac is None:
        return True
    return hmac.compare_digest(message_authenticator(zeroed, secret), mac)


def verify_request(raw: bytes, secret: bytes) -> bool:
    """Request Authenticator of an Accounting-/Disconnect-/CoA-Request (RFC 2866 section 3,
    RFC 5176 section 3.5) and its Message-Authenticator if present (RFC 5176 section 3.4)."""
    if len(raw) < HEADER_LENGTH:
        return False
    length = int.from_bytes(raw[2:4], "big")
    if length < HEADER_LENGTH or length > len(raw):
        return False
    pkt = raw[:length]
    zero_auth = pkt[:4] + bytes(16) + pkt[20:]
    if not hmac.compare_digest(request_authenticator(zero_auth, secret), pkt[4:20]):
        return False
    zeroed, mac = _zero_message_authenticator(zero_auth, length)
    if mac is None:
        return True
    return hmac.compare_digest(message_authenticator(zeroed, secret), mac)


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

    def wire_attributes(self, delay: int) -> list[tuple[int, bytes]]:
        """Acct-Status-Type first, the record's attributes, then Acct-Delay-Time."""
        status = ATTRIBUTES["Acct-Status-Type"]
        delay_def = ATTRIBUTES["Acct-Delay-Time"]
        return [
            (status.code, encode_value(status, self.status)),
            *named_attributes(self.attributes),
            (delay_def.code, encode_value(delay_def, max(0, min(delay, GIGAWORD - 1)))),
        ]


def encode_accounting_request(
    record: AcctRecord, identifier: int, secret: bytes, *, delay: int
) -> bytes:
    return encode_request(
        Code.ACCOUNTING_REQUEST, identifier, record.wire_attributes(delay), secret
    )


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
    a.add("Tunnel-Assignment-ID", t.assignment_id)
    a.add("Tunnel-Client-Auth-ID", t.client_auth_id)
    a.add("Tunnel-Server-Auth-ID", t.server_auth_id)


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
