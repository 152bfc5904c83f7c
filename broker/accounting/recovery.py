"""Stops for sessions a crashed node left open (issue 9 item 4; RFC 2866 sections 5.1, 5.7,
5.10 and RFC 2867 section 4.1).

A broker killed with SIGKILL (or a power loss) never sends the Stop of its established
sessions. The spool (:mod:`broker.accounting.spool`) keeps the last record of each started and
not stopped session; at the next start the node turns each into its Stop with
Acct-Terminate-Cause NAS-Reboot (11) and the last known Acct-Session-Time and counters (those
of the latest Interim-Update, or zero when only the Start was written). Tunnel-Link-Start and
Tunnel-Start (RFC 2867) get their Tunnel-Link-Stop / Tunnel-Stop the same way. The Stop keeps
the record id the live path would have used (``<Acct-Session-Id>/stop``), so the spool's
idempotent append can never hold two Stops of one session.

Pure functions over :class:`broker.radius.accounting.AcctRecord`; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.radius.accounting import GIGAWORD, AcctRecord, Attribute, AttrValue
from broker.radius.constants import AcctStatusType, AcctTerminateCause

__all__ = ["COUNTER_ATTRIBUTES", "open_key", "reboot_stop", "reboot_stops"]

#: RFC 2866 sections 5.3, 5.4, 5.8, 5.9 and RFC 2869 sections 5.1, 5.2, in builder order
COUNTER_ATTRIBUTES = (
    "Acct-Input-Octets",
    "Acct-Input-Gigawords",
    "Acct-Output-Octets",
    "Acct-Output-Gigawords",
    "Acct-Input-Packets",
    "Acct-Output-Packets",
)
_DROPPED = frozenset(
    {
        "Event-Timestamp",
        "Acct-Session-Time",
        "Acct-Terminate-Cause",
        "Acct-Tunnel-Packets-Lost",
        "Acct-Delay-Time",
        *COUNTER_ATTRIBUTES,
    }
)
_SESSION = (AcctStatusType.START, AcctStatusType.INTERIM_UPDATE, AcctStatusType.STOP)
_LINK = (AcctStatusType.TUNNEL_LINK_START, AcctStatusType.TUNNEL_LINK_STOP)
_TUNNEL = (AcctStatusType.TUNNEL_START, AcctStatusType.TUNNEL_STOP)
_STOP_OF = {
    AcctStatusType.START: AcctStatusType.STOP,
    AcctStatusType.INTERIM_UPDATE: AcctStatusType.STOP,
    AcctStatusType.TUNNEL_LINK_START: AcctStatusType.TUNNEL_LINK_STOP,
    AcctStatusType.TUNNEL_START: AcctStatusType.TUNNEL_STOP,
}


def open_key(record: AcctRecord) -> str | None:
    """The open-session table key of a record, or None for records that open/close nothing.

    Start, Interim-Update and Stop share ``session/<Acct-Session-Id>``; Tunnel-Link records
    ``link/<Acct-Session-Id>``; Tunnel-Start/Stop ``tunnel/<server>/<Acct-Tunnel-Connection>``
    (their Acct-Session-Id is not shared between the Start and the Stop)."""
    sid = _text(record.get("Acct-Session-Id"))
    if record.status in _SESSION:
        return None if sid is None else f"session/{sid}"
    if record.status in _LINK:
        return None if sid is None else f"link/{sid}"
    if record.status in _TUNNEL:
        server = _text(record.get("Tunnel-Server-Endpoint"))
        conn = _text(record.get("Acct-Tunnel-Connection"))
        if server is None or conn is None:
            return None
        return f"tunnel/{server}/{conn}"
    return None


def _text(value: AttrValue | None) -> str | None:
    if value is None:
        return None
    return value.hex() if isinstance(value, bytes) else str(value)


def _int(value: AttrValue | None) -> int:
    return value if isinstance(value, int) else 0


def _usage(record: AcctRecord) -> tuple[int, list[Attribute]]:
    """(Acct-Session-Time, counter attributes) as last reported by ``record``."""
    if record.status != AcctStatusType.INTERIM_UPDATE:
        return 0, [(name, 0) for name in COUNTER_ATTRIBUTES]
    return _int(record.get("Acct-Session-Time")), [
        (name, _int(record.get(name)) % GIGAWORD) for name in COUNTER_ATTRIBUTES
    ]


def reboot_stop(
    last: AcctRecord,
    now: float,
    cause: AcctTerminateCause = AcctTerminateCause.NAS_REBOOT,
    usage: tuple[int, list[Attribute]] | None = None,
) -> AcctRecord:
    """The Stop (or Tunnel-Link-Stop / Tunnel-Stop) closing ``last``, the latest record of an
    open session. ``usage`` overrides the session time and counters (a Tunnel-Link-Stop takes
    those of its session's last Interim)."""
    status = _STOP_OF.get(AcctStatusType(last.status))
    if status is None:
        raise ValueError(f"status {last.status} opens nothing")
    seconds, counters = usage if usage is not None else _usage(last)
    attrs: list[Attribute] = [(n, v) for n, v in last.attributes if n not in _DROPPED]
    attrs.append(("Acct-Session-Time", seconds))
    attrs.extend(counters)
    if status is not AcctStatusType.STOP:
        attrs.append(("Acct-Tunnel-Packets-Lost", 0))
    attrs.append(("Acct-Terminate-Cause", int(cause)))
    attrs.append(("Event-Timestamp", int(now) % GIGAWORD))
    rid = f"{_text(last.get('Acct-Session-Id'))}/{status.name.lower()}"
    return AcctRecord(rid, int(status), tuple(attrs), now)


def reboot_stops(
    opened: Iterable[AcctRecord],
    now: float,
    cause: AcctTerminateCause = AcctTerminateCause.NAS_REBOOT,
) -> list[AcctRecord]:
    """Stops for every open record: sessions first, then their tunnel links (with the
    session's last usage), then tunnels."""
    records = list(opened)
    sessions = [
        r for r in records if r.status in (AcctStatusType.START, AcctStatusType.INTERIM_UPDATE)
    ]
    usage = {r.get("Acct-Session-Id"): _usage(r) for r in sessions}
    out = [reboot_stop(r, now, cause) for r in sessions]
    for r in records:
        if r.status == AcctStatusType.TUNNEL_LINK_START:
            out.append(reboot_stop(r, now, cause, usage.get(r.get("Acct-Session-Id"))))
    out.extend(
        reboot_stop(r, now, cause) for r in records if r.status == AcctStatusType.TUNNEL_START
    )
    return out
