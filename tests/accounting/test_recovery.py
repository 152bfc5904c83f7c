"""Crash recovery of accounting (issue 9 item 4): the spool's open-session table and the
NAS-Reboot Stops built from it; exactly one Stop per Start, never a Stop without a Start."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.accounting.recovery import COUNTER_ATTRIBUTES, open_key, reboot_stop, reboot_stops
from broker.accounting.service import AccountingService
from broker.accounting.spool import Spool
from broker.radius.accounting import (
    AcctRecord,
    Counters,
    NasInfo,
    SessionInfo,
    TunnelInfo,
    check_record,
    interim_record,
    start_record,
    stop_record,
    tunnel_link_record,
    tunnel_record,
)
from broker.radius.acct_client import AccountingClient
from broker.radius.constants import AcctStatusType, AcctTerminateCause
from broker.radius.packet import decode_packet
from tests.accounting.test_service import SERVER, FakeReactor, answer

NAS = NasInfo("198.51.100.1", "lac-1")
TUNNEL = TunnelInfo("198.51.100.1", "198.51.100.2", "4660/22136", assignment_id="lns-a")


def info(i: int) -> SessionInfo:
    return SessionInfo(
        acct_session_id=f"lac-1-0000abcd-{i:08x}",
        user_name=f"user{i}@isp-a.example",
        nas=NAS,
        nas_port_id="eth1",
        calling_station_id="02:00:00:00:00:01",
        class_attrs=(b"lab-billing",),
        tunnel=TUNNEL,
    )


def test_open_keys() -> None:
    s = info(1)
    start = start_record(s, 100.0)
    assert open_key(start) == f"session/{s.acct_session_id}"
    assert open_key(interim_record(s, Counters(), 5, 105.0)) == open_key(start)
    stop = stop_record(s, Counters(), 9, AcctTerminateCause.USER_REQUEST, 109.0)
    assert open_key(stop) == open_key(start)
    link = tunnel_link_record(AcctStatusType.TUNNEL_LINK_START, s, 100.0)
    assert open_key(link) == f"link/{s.acct_session_id}"
    t1 = tunnel_record(AcctStatusType.TUNNEL_START, "T-a", NAS, TUNNEL, 100.0)
    t2 = tunnel_record(AcctStatusType.TUNNEL_STOP, "T-b", NAS, TUNNEL, 200.0)
    assert open_key(t1) == open_key(t2) == "tunnel/198.51.100.2/4660/22136"
    assert open_key(AcctRecord("x", int(AcctStatusType.ACCOUNTING_ON), (), 1.0)) is None
    assert open_key(AcctRecord("x", int(AcctStatusType.START), (), 1.0)) is None


def test_stop_from_interim_has_last_usage_and_nas_reboot() -> None:
    s = info(2)
    counters = Counters(5 * (1 << 32) + 7, 1234, 99, 88)
    last = interim_record(s, counters, 360, 1_000.0)
    stop = reboot_stop(last, 2_000.0)
    live = stop_record(s, counters, 360, AcctTerminateCause.NAS_REBOOT, 2_000.0)
    assert stop.record_id == live.record_id == f"{s.acct_session_id}/stop"
    assert stop.status == AcctStatusType.STOP
    assert dict(stop.attributes) == dict(live.attributes)
    assert stop.get("Acct-Terminate-Cause") == AcctTerminateCause.NAS_REBOOT
    assert stop.get("Acct-Input-Gigawords") == 5 and stop.get("Acct-Input-Octets") == 7
    check_record(stop)


def test_stop_from_start_has_zero_usage() -> None:
    s = info(3)
    stop = reboot_stop(start_record(s, 1_000.0), 1_500.0)
    assert stop.get("Acct-Session-Time") == 0
    assert all(stop.get(n) == 0 for n in COUNTER_ATTRIBUTES)
    assert stop.get("Class") == b"lab-billing"
    assert stop.get("Event-Timestamp") == 1_500
    check_record(stop)


def test_link_stop_takes_the_sessions_usage_and_tunnel_stop() -> None:
    s = info(4)
    opened = [
        tunnel_link_record(AcctStatusType.TUNNEL_LINK_START, s, 10.0),
        interim_record(s, Counters(100, 200, 3, 4), 30, 40.0),
        tunnel_record(AcctStatusType.TUNNEL_START, "lac-1-T1234-0", NAS, TUNNEL, 5.0),
    ]
    stops = reboot_stops(opened, 50.0)
    assert [r.status for r in stops] == [
        AcctStatusType.STOP,
        AcctStatusType.TUNNEL_LINK_STOP,
        AcctStatusType.TUNNEL_STOP,
    ]
    link = stops[1]
    assert link.get("Acct-Session-Time") == 30 and link.get("Acct-Output-Octets") == 200
    assert link.get("Acct-Tunnel-Packets-Lost") == 0
    assert stops[2].get("Acct-Session-Id") == "lac-1-T1234-0"
    for r in stops:
        check_record(r)
    with pytest.raises(ValueError, match="opens nothing"):
        reboot_stop(stops[0], 60.0)


def test_spool_tracks_open_sessions_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sp = Spool(path)
    s1, s2 = info(1), info(2)
    sp.append_many([start_record(s1, 1.0), start_record(s2, 1.0)])
    sp.append(interim_record(s1, Counters(10, 20, 1, 2), 60, 61.0))
    sp.append(interim_record(s1, Counters(5, 5, 1, 1), 30, 31.0))  # older: ignored
    sp.append(stop_record(s2, Counters(), 9, AcctTerminateCause.USER_REQUEST, 10.0))
    assert sp.open_count() == 1
    sp.close()
    sp = Spool(path)
    (only,) = sp.open_sessions()
    assert only.get("Acct-Session-Time") == 60
    stops = sp.close_open_sessions(100.0)
    assert [r.get("Acct-Session-Id") for r in stops] == [s1.acct_session_id]
    assert sp.open_count() == 0 and sp.close_open_sessions(200.0) == []
    pending = [p.record for p in sp.pending()]
    assert pending[-1] == stops[0]
    sp.close()


# A model: random call lifecycles with crashes (reopen + recovery) in between. Whatever the
# interleaving, every Start gets exactly one Stop and no Stop lacks its Start.
_OPS = st.lists(
    st.tuples(st.sampled_from(["start", "interim", "stop", "crash"]), st.integers(0, 7)),
    max_size=40,
)


@given(_OPS)
@settings(max_examples=60, deadline=None)
def test_one_stop_per_start_whatever_crashes(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.db"
        sp = Spool(path, sync="interval")
        sent: list[AcctRecord] = []
        live: dict[int, int] = {}  # slot -> unique session number (Acct-Session-Ids never repeat)
        serial = 0
        now = 1_000.0
        for op, i in ops:
            now += 1.0
            if op == "start" and i not in live:
                serial += 1
                live[i] = serial
                s = info(serial)
                sp.append(start_record(s, now))
                sp.append(tunnel_link_record(AcctStatusType.TUNNEL_LINK_START, s, now))
            elif op == "interim" and i in live:
                s = info(live[i])
                sp.append(interim_record(s, Counters(int(now), 1, 1, 1), int(now), now))
                sp.append(interim_record(s, Counters(int(now), 1, 1, 1), int(now), now))  # dup
            elif op == "stop" and i in live:
                s = info(live.pop(i))
                stop = stop_record(s, Counters(), 1, AcctTerminateCause.USER_REQUEST, now)
                sp.append(stop)
                sp.append(start_record(s, now - 5))  # a late duplicate Start reopens nothing
            elif op == "crash":
                sent.extend(p.record for p in sp.pending())
                sp.ack_many([p.seq for p in sp.pending()])
                sp.close()
                sp = Spool(path, sync="interval")
                sp.close_open_sessions(now)
                live.clear()
        sp.close_open_sessions(now + 1)
        sent.extend(p.record for p in sp.pending())
        sp.close()
        kinds = Counter((r.get("Acct-Session-Id"), r.status) for r in sent)
        for (sid, status), n in kinds.items():
            if status == AcctStatusType.INTERIM_UPDATE:
                continue
            assert n == 1, (sid, status)
            if status == AcctStatusType.STOP:
                assert kinds[(sid, int(AcctStatusType.START))] == 1
            if status == AcctStatusType.START:
                assert kinds[(sid, int(AcctStatusType.STOP))] == 1
                assert kinds[(sid, int(AcctStatusType.TUNNEL_LINK_STOP))] == 1


def _service(path: Path, reactor: FakeReactor, **kw: object) -> AccountingService:
    engine = AccountingClient([SERVER], backoff=(1, 2), window=32)
    return AccountingService(Spool(path), engine, reactor=reactor, **kw)  # type: ignore[arg-type]


def test_service_start_sends_reboot_stops_before_accounting_on(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    sp = Spool(path)
    s = info(7)
    sp.append(start_record(s, 1.0))
    sp.ack_many([p.seq for p in sp.pending()])  # the Start reached the server before the kill
    sp.close()
    r = FakeReactor()
    svc = _service(path, r, nas=NAS, boot_id="lac-1-2")
    svc.startService()
    port = r.ports[0]
    statuses = [decode_packet(d).get(40) for d, _ in port.sent]
    assert statuses[:2] == [
        int(AcctStatusType.STOP).to_bytes(4, "big"),
        int(AcctStatusType.ACCOUNTING_ON).to_bytes(4, "big"),
    ]
    stop = decode_packet(port.sent[0][0])
    assert stop.get(49) == int(AcctTerminateCause.NAS_REBOOT).to_bytes(4, "big")
    assert svc.recovered_stops == 1 and svc.metrics()["open_sessions"] == 0.0
    for data, _ in list(port.sent):
        answer(port, data)
    r.advance(0)
    assert svc.spool.depth() == 0
    svc._shutdown()
    # a second start finds nothing open: no duplicate Stop
    r2 = FakeReactor()
    svc2 = _service(path, r2, nas=NAS, boot_id="lac-1-3")
    svc2.startService()
    assert svc2.recovered_stops == 0
    assert [decode_packet(d).get(40) for d, _ in r2.ports[0].sent] == [
        int(AcctStatusType.ACCOUNTING_ON).to_bytes(4, "big")
    ]
    svc2._shutdown()


def test_service_without_nas_does_not_recover_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    sp = Spool(path)
    sp.append(start_record(info(8), 1.0))
    sp.close()
    r = FakeReactor()
    svc = _service(path, r)
    svc.startService()
    assert svc.recovered_stops == 0 and svc.spool.open_count() == 1
    svc._shutdown()
    svc.spool.close()
    r2 = FakeReactor()
    svc2 = _service(path, r2, recover_open_sessions=True)
    svc2.startService()
    assert svc2.recovered_stops == 1 and svc2.spool.open_count() == 0
    svc2._shutdown()
