"""Dynamic Authorization Server (RFC 5176): Disconnect-Request and CoA-Request.

:class:`DynAuthServer` is a sans-I/O engine for the NAS side. A request is accepted only
from a configured client (by source IP, per-client secret); its Request Authenticator is
verified (RFC 5176 section 3.5) and a Message-Authenticator, if present, must be valid
(section 3.4); anything else is silently dropped and counted. An Event-Timestamp outside the
replay window is dropped too (section 6.3).

Disconnect-Request (section 3): the NAS identification attributes (NAS-IP-Address,
NAS-Identifier), if present, must name us, else NAK 403. The session is identified by
User-Name, Acct-Session-Id, Framed-IP-Address (plus Calling-Station-Id, NAS-Port-Id,
Acct-Multi-Session-Id when given); with none of them: NAK 402. Any attribute outside the
section 3.6 table for Disconnect-Request that we do not implement: NAK 401. The broker's
callback ``find_and_disconnect(criteria) -> DisconnectOutcome`` ends the session(s); the
outcome maps to Disconnect-ACK or Disconnect-NAK with Error-Cause 503 (not found), 504 (not
removable), 508 (several sessions matched and that is not supported), 506 (resources
unavailable, also when the callback fails).

CoA-Request: this NAS changes nothing on a live session yet (no filters, rate limits or
re-authorization are implemented), so after the same authentication and NAS checks every
CoA-Request is answered CoA-NAK with Error-Cause 405 Unsupported Service.

Duplicates (same client address, port, Identifier and Request Authenticator within
``duplicate_window`` seconds, RFC 5080 section 2.2.2) get the cached answer again without
calling the broker a second time; the cache holds at most ``max_cached`` answers (oldest
forgotten first, counted in ``cache_evicted``: a duplicate of a forgotten request is then
processed again, which a Disconnect tolerates). Proxy-State attributes are copied into the
reply in order (RFC 5176 section 3); a State attribute is echoed (section 3.3); the reply
carries a Message-Authenticator when the request did.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from broker.radius.constants import HEADER_LENGTH, MAX_PACKET_LENGTH, Attr, Code, ErrorCause
from broker.radius.packet import RawAttribute, decode_packet, encode_response, verify_request
from broker.wire import RemoteProtocolError

Address = tuple[str, int]

#: RFC 5176 section 3.6 attributes we accept in a Disconnect-Request.
_ALLOWED_DISCONNECT = frozenset(
    {
        Attr.USER_NAME,
        Attr.NAS_IP_ADDRESS,
        Attr.FRAMED_IP_ADDRESS,
        Attr.REPLY_MESSAGE,
        Attr.STATE,
        Attr.CALLING_STATION_ID,
        Attr.NAS_IDENTIFIER,
        Attr.PROXY_STATE,
        Attr.ACCT_SESSION_ID,
        Attr.ACCT_MULTI_SESSION_ID,
        Attr.EVENT_TIMESTAMP,
        Attr.MESSAGE_AUTHENTICATOR,
        Attr.NAS_PORT_ID,
        Attr.ERROR_CAUSE,
    }
)
_SESSION_IDENTIFICATION = frozenset(
    {
        Attr.USER_NAME,
        Attr.FRAMED_IP_ADDRESS,
        Attr.CALLING_STATION_ID,
        Attr.ACCT_SESSION_ID,
        Attr.ACCT_MULTI_SESSION_ID,
        Attr.NAS_PORT_ID,
    }
)


@dataclass(frozen=True, slots=True)
class DynAuthClient:
    """A Dynamic Authorization Client allowed to talk to us (matched by source IP)."""

    name: str
    address: str
    secret: bytes


@dataclass(frozen=True, slots=True)
class SessionCriteria:
    """What the request named; ``None`` means absent. All given fields must match."""

    user_name: str | None = None
    acct_session_id: str | None = None
    framed_ip_address: str | None = None
    calling_station_id: str | None = None
    nas_port_id: str | None = None
    acct_multi_session_id: str | None = None


class DisconnectOutcome(Enum):
    """What ``find_and_disconnect`` did."""

    DISCONNECTED = "disconnected"  #: -> Disconnect-ACK
    NOT_FOUND = "not-found"  #: -> NAK 503 Session Context Not Found
    NOT_REMOVABLE = "not-removable"  #: -> NAK 504 Session Context Not Removable
    MULTIPLE = "multiple"  #: -> NAK 508 Multiple Session Selection Unsupported
    UNAVAILABLE = "unavailable"  #: -> NAK 506 Resources Unavailable


_OUTCOME_CAUSE = {
    DisconnectOutcome.NOT_FOUND: ErrorCause.SESSION_CONTEXT_NOT_FOUND,
    DisconnectOutcome.NOT_REMOVABLE: ErrorCause.SESSION_CONTEXT_NOT_REMOVABLE,
    DisconnectOutcome.MULTIPLE: ErrorCause.MULTIPLE_SESSION_SELECTION_UNSUPPORTED,
    DisconnectOutcome.UNAVAILABLE: ErrorCause.RESOURCES_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class DynAuthAnswered:
    """A request was answered (for logs and metrics)."""

    client: str
    request_code: int
    reply_code: int
    error_cause: int | None
    criteria: SessionCriteria | None


@dataclass(frozen=True, slots=True)
class Reply:
    address: Address
    payload: bytes


FindAndDisconnect = Callable[[SessionCriteria], DisconnectOutcome]


class DynAuthServer:
    """RFC 5176 Dynamic Authorization Server engine (see module docstring)."""

    def __init__(
        self,
        clients: list[DynAuthClient],
        *,
        nas_ip: str | None,
        nas_identifier: str | None,
        find_and_disconnect: FindAndDisconnect,
        duplicate_window: float = 30.0,
        event_window: float = 300.0,
        max_cached: int = 4096,
    ) -> None:
        if max_cached < 1:
            raise ValueError("max_cached must be >= 1")
        self._clients = {c.address: c for c in clients}
        self.nas_ip = nas_ip
        self.nas_identifier = nas_identifier
        self._find_and_disconnect = find_and_disconnect
        self.duplicate_window = duplicate_window
        self.event_window = event_window
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[Address, int, bytes], tuple[float, bytes]] = OrderedDict()
        self._out: list[Reply] = []
        self._events: deque[DynAuthAnswered] = deque()
        self.counters: dict[str, int] = {
            "unknown_client": 0,
            "bad_authenticator": 0,
            "malformed": 0,
            "unknown_code": 0,
            "stale_timestamp": 0,
            "duplicates": 0,
            "disconnect_ack": 0,
            "disconnect_nak": 0,
            "coa_nak": 0,
            "callback_error": 0,
            "cache_evicted": 0,
        }

    # -- sans-I/O contract ---------------------------------------------------------------
    def receive_datagram(self, payload: bytes, addr: Address, now: float) -> None:
        self._expire(now)
        client = self._clients.get(addr[0])
        if client is None:
            self.counters["unknown_client"] += 1
            return
        try:
            pkt = decode_packet(payload)
        except RemoteProtocolError:
            self.counters["malformed"] += 1
            return
        if pkt.code not in (Code.DISCONNECT_REQUEST, Code.COA_REQUEST):
            self.counters["unknown_code"] += 1
            return
        if not verify_request(payload, client.secret):
            self.counters["bad_authenticator"] += 1
            return
        key = (addr, pkt.identifier, pkt.authenticator)
        cached = self._cache.get(key)
        if cached is not None:
            self.counters["duplicates"] += 1
            self._out.append(Reply(addr, cached[1]))
            return
        ts = pkt.get(Attr.EVENT_TIMESTAMP)
        if ts is not None and (
            len(ts) != 4 or abs(int.from_bytes(ts, "big") - now) > self.event_window
        ):
            self.counters["stale_timestamp"] += 1
            return
        echoed = [(t, v) for t, v in pkt.attributes if t in (Attr.STATE, Attr.PROXY_STATE)]
        has_ma = pkt.get(Attr.MESSAGE_AUTHENTICATOR) is not None
        # Room for the reply: header, Message-Authenticator, Error-Cause and what we echo.
        room = HEADER_LENGTH + (18 if has_ma else 0) + 6 + sum(2 + len(v) for _, v in echoed)
        if room > MAX_PACKET_LENGTH:
            self.counters["malformed"] += 1  # cannot be answered: do not act on it either
            return
        reply_code, cause, criteria = self._decide(pkt.code, pkt.attributes)
        if reply_code == Code.DISCONNECT_ACK:
            self.counters["disconnect_ack"] += 1
        elif reply_code == Code.DISCONNECT_NAK:
            self.counters["disconnect_nak"] += 1
        else:
            self.counters["coa_nak"] += 1
        attrs: list[RawAttribute] = []
        if cause is not None:
            attrs.append((Attr.ERROR_CAUSE, int(cause).to_bytes(4, "big")))
        attrs += echoed
        raw = encode_response(
            reply_code,
            pkt.identifier,
            attrs,
            client.secret,
            pkt.authenticator,
            add_message_authenticator=has_ma,
        )
        while len(self._cache) >= self.max_cached:
            self._cache.popitem(last=False)
            self.counters["cache_evicted"] += 1
        self._cache[key] = (now, raw)
        self._out.append(Reply(addr, raw))
        self._events.append(
            DynAuthAnswered(
                client.name, pkt.code, reply_code, None if cause is None else int(cause), criteria
            )
        )

    def datagrams_to_send(self, now: float) -> list[Reply]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> DynAuthAnswered | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return None  # the duplicate cache is pruned on each receive

    def handle_timer(self, now: float) -> None:
        self._expire(now)

    # -- decisions -------------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        while self._cache:
            key, (t, _) = next(iter(self._cache.items()))
            if now - t < self.duplicate_window:
                break
            del self._cache[key]

    def _nas_mismatch(self, attrs: tuple[RawAttribute, ...]) -> bool:
        for t, v in attrs:
            if t == Attr.NAS_IP_ADDRESS and (
                self.nas_ip is None or v != ipaddress.IPv4Address(self.nas_ip).packed
            ):
                return True
            if t == Attr.NAS_IDENTIFIER and (
                self.nas_identifier is None or v != self.nas_identifier.encode()
            ):
                return True
        return False

    def _decide(
        self, code: int, attrs: tuple[RawAttribute, ...]
    ) -> tuple[Code, ErrorCause | None, SessionCriteria | None]:
        nak = Code.DISCONNECT_NAK if code == Code.DISCONNECT_REQUEST else Code.COA_NAK
        if self._nas_mismatch(attrs):
            return nak, ErrorCause.NAS_IDENTIFICATION_MISMATCH, None
        if code == Code.COA_REQUEST:
            # Nothing on a live session can be changed by CoA yet: say so honestly.
            return nak, ErrorCause.UNSUPPORTED_SERVICE, None
        if any(t not in _ALLOWED_DISCONNECT for t, _ in attrs):
            return nak, ErrorCause.UNSUPPORTED_ATTRIBUTE, None
        if not any(t in _SESSION_IDENTIFICATION for t, _ in attrs):
            return nak, ErrorCause.MISSING_ATTRIBUTE, None
        try:
            criteria = _criteria(attrs)
        except ValueError:
            return nak, ErrorCause.INVALID_ATTRIBUTE_VALUE, None
        try:
            outcome = self._find_and_disconnect(criteria)
        except Exception:  # the broker failed: answer instead of timing the client out
            self.counters["callback_error"] += 1
            return nak, ErrorCause.RESOURCES_UNAVAILABLE, criteria
        if outcome is DisconnectOutcome.DISCONNECTED:
            return Code.DISCONNECT_ACK, None, criteria
        return nak, _OUTCOME_CAUSE[outcome], criteria


def _criteria(attrs: tuple[RawAttribute, ...]) -> SessionCriteria:
    """Session identification attributes; more than one of a kind is a bad value."""
    seen: dict[int, bytes] = {}
    for t, v in attrs:
        if t in _SESSION_IDENTIFICATION:
            if t in seen:
                raise ValueError(f"attribute {t} repeated")
            seen[t] = v

    def text(t: int) -> str | None:
        v = seen.get(t)
        if v is None:
            return None
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"attribute {t} is not UTF-8") from exc

    framed = seen.get(Attr.FRAMED_IP_ADDRESS)
    if framed is not None and len(framed) != 4:
        raise ValueError("Framed-IP-Address must be 4 octets")
    return SessionCriteria(
        user_name=text(Attr.USER_NAME),
        acct_session_id=text(Attr.ACCT_SESSION_ID),
        framed_ip_address=None if framed is None else str(ipaddress.IPv4Address(framed)),
        calling_station_id=text(Attr.CALLING_STATION_ID),
        nas_port_id=text(Attr.NAS_PORT_ID),
        acct_multi_session_id=text(Attr.ACCT_MULTI_SESSION_ID),
    )
