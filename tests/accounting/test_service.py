"""AccountingService with a fake reactor (task.Clock + in-memory UDP port)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import capturedLogs

from broker.accounting.alarm import AlarmKind
from broker.accounting.service import AccountingService
from broker.accounting.spool import Spool
from broker.radius.accounting import AcctRecord, InvalidRecord, NasInfo
from broker.radius.acct_client import AccountingClient, AcctServer
from broker.radius.packet import decode_packet, verify_request

SERVER = AcctServer("acct", ("127.0.0.1", 1813), b"sekrit")


class FakeHost:
    port = 40000


class FakePort:
    def __init__(self, proto: DatagramProtocol) -> None:
        self.proto = proto
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.listening = True

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def stopListening(self) -> None:
        self.listening = False

    def getHost(self) -> FakeHost:
        return FakeHost()


class FakeReactor(task.Clock):
    def __init__(self) -> None:
        super().__init__()
        self.advance(1_700_000_000)
        self.ports: list[FakePort] = []

    def listenUDP(self, port: int, proto: DatagramProtocol, interface: str = "") -> FakePort:
        p = FakePort(proto)
        self.ports.append(p)
        return p


def rec(i: int, created: float) -> AcctRecord:
    return AcctRecord(f"r{i}", 1, (("Acct-Session-Id", f"s{i}"),), created)


def answer(port: FakePort, data: bytes) -> None:
    assert verify_request(data, SERVER.secret)
    head = struct.pack("!BBH", 5, data[1], 20)
    resp = head + hashlib.md5(head + data[4:20] + SERVER.secret).digest()
    port.proto.datagramReceived(resp, SERVER.address)


def make(tmp_path: Path, reactor: FakeReactor, **kw: Any) -> AccountingService:
    spool = Spool(tmp_path / "spool.db", sync=kw.pop("sync", "full"))
    engine = AccountingClient([SERVER], backoff=(1, 2), window=kw.pop("window", 32))
    return AccountingService(spool, engine, reactor=reactor, **kw)


def test_submit_spools_then_sends_and_acks(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r)
    svc.startService()
    port = r.ports[0]
    seq = svc.submit(rec(1, r.seconds()))
    assert svc.spool.depth() == 1 and seq >= 1
    ((data, addr),) = port.sent
    assert addr == SERVER.address and decode_packet(data).get(44) == b"s1"
    answer(port, data)
    r.advance(0)
    assert svc.spool.depth() == 0 and svc.acked == 1
    assert svc.metrics()["depth"] == 0.0
    svc.stopService()
    assert not port.listening


def test_retransmits_until_acked_and_replays_after_restart(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r)
    svc.startService()
    svc.submit_many([rec(i, r.seconds()) for i in range(5)])
    r.advance(1)
    r.advance(2)
    r.advance(2)
    assert len(r.ports[0].sent) == 5 * 4
    assert svc.metrics()["retransmits"] == 15
    svc.stopService()
    svc.spool.close()
    # a new process: the spool still holds everything and it is sent on start
    r2 = FakeReactor()
    svc2 = make(tmp_path, r2)
    svc2.startService()
    sent = r2.ports[0].sent
    assert sorted(decode_packet(d).get(44) for d, _ in sent) == [f"s{i}".encode() for i in range(5)]
    for d, _ in sent:
        answer(r2.ports[0], d)
    r2.advance(0)
    assert svc2.spool.depth() == 0


def test_backlog_larger_than_window_and_page_drains(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r, window=8, page=16, sync="interval")
    svc.startService()
    svc.submit_many([rec(i, r.seconds()) for i in range(100)])
    port = r.ports[0]
    answered = 0
    while answered < len(port.sent):
        data, _ = port.sent[answered]
        answered += 1
        answer(port, data)
        r.advance(0)
    assert answered == 100
    assert svc.spool.depth() == 0 and svc.acked == 100
    r.advance(1.0)  # interval mode flushes (checkpoint) on its loop
    svc.stopService()


def test_accounting_on_and_off(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r, nas=NasInfo("192.0.2.1", "lac-1"), boot_id="n1-boot")
    svc.startService()
    port = r.ports[0]
    ((on, _),) = port.sent
    assert decode_packet(on).get(40) == struct.pack("!I", 7)
    answer(port, on)
    r.advance(0)
    done: list[object] = []
    d = svc.stopService()
    assert d is not None
    d.addCallback(done.append)
    off = port.sent[-1][0]
    assert decode_packet(off).get(40) == struct.pack("!I", 8)
    assert done == [] and port.listening
    answer(port, off)
    r.advance(0)
    assert done == [None] and not port.listening
    assert svc.spool.depth() == 0


def test_accounting_off_gives_up_after_timeout(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r, nas=NasInfo("192.0.2.1", "lac-1"), boot_id="b", off_timeout=2.0)
    svc.startService()
    d = svc.stopService()
    assert d is not None
    done: list[object] = []
    d.addCallback(done.append)
    r.advance(2.0)
    assert done == [None] and not r.ports[0].listening
    assert svc.spool.depth() == 2  # On and Off stay spooled for the next start


def test_invalid_record_refused_before_spooling(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r)
    svc.startService()
    bad = AcctRecord("bad", 1, (("No-Such-Attribute", "x"),), r.seconds())
    with pytest.raises(InvalidRecord):
        svc.submit_many([rec(1, r.seconds()), bad])
    assert svc.spool.depth() == 0 and r.ports[0].sent == []


def test_unsendable_spooled_record_is_dropped_not_stuck(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r)
    svc.spool.append(AcctRecord("bad", 1, (("User-Name", 5),), r.seconds()))
    svc.spool.append(rec(2, r.seconds()))
    svc.startService()
    ((data, _),) = r.ports[0].sent
    answer(r.ports[0], data)
    r.advance(0)
    assert svc.spool.depth() == 0 and svc.rejected == 1 and svc.acked == 1


def test_spool_alarm_raised_when_servers_do_not_answer_and_cleared_by_the_replay(
    tmp_path: Path,
) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r, alarm_records=4, alarm_min_free_bytes=0)
    with capturedLogs() as events:
        svc.startService()
        svc.submit_many([rec(i, r.seconds()) for i in range(3)])
        r.advance(1.0)
        assert not svc.alarm.records_active and svc.metrics()["alarm_records"] == 0.0
        svc.submit_many([rec(i, r.seconds()) for i in range(3, 6)])
        r.advance(1.0)  # the next check: 6 records >= 4
        assert svc.alarm.records_active and svc.metrics()["alarm_records"] == 1.0
        assert svc.metrics()["alarm_records_threshold"] == 4.0
        r.advance(5.0)
        assert svc.alarm.raised[AlarmKind.RECORDS] == 1  # one WARNING, not one per check
        assert svc.spool.depth() == 6  # nothing dropped because of the alarm
        port = r.ports[0]
        seen: set[bytes] = set()
        for data, _ in reversed(port.sent):  # the latest transmission of each record
            sid = decode_packet(data).get(44)
            if sid not in seen and len(seen) < 3:  # the server answers three records
                seen.add(sid)
                answer(port, data)
        r.advance(0)
        assert svc.spool.depth() == 3
        r.advance(1.0)
        assert not svc.alarm.records_active  # 3 < ceil(0.9 * 4) = 4
        svc.stopService()
    lines = [(e["log_level"].name, e["log_format"]) for e in events]
    raised = [lv for lv, fmt in lines if fmt.startswith("accounting: spool alarm:")]
    cleared = [lv for lv, fmt in lines if fmt.startswith("accounting: spool alarm cleared")]
    assert raised == ["warn"] and cleared == ["info"]


def test_spool_alarm_checked_at_start_on_a_spool_left_full(tmp_path: Path) -> None:
    r = FakeReactor()
    spool = Spool(tmp_path / "spool.db")
    spool.append_many([rec(i, r.seconds()) for i in range(10)])
    engine = AccountingClient([SERVER], backoff=(1, 2))
    svc = AccountingService(spool, engine, reactor=r, alarm_records=10)
    svc.startService()  # no advance: the first check runs at start
    assert svc.alarm.records_active
    svc.stopService()


def test_disk_alarm_from_the_spool_filesystem(tmp_path: Path) -> None:
    r = FakeReactor()
    svc = make(tmp_path, r, alarm_min_free_bytes=1 << 62)  # more than any disk has
    svc.startService()
    assert svc.alarm.disk_active and svc.metrics()["alarm_disk"] == 1.0
    assert svc.metrics()["disk_free_bytes"] > 0
    svc.alarm.min_free_bytes = svc.alarm.disk_clear_above = 1
    r.advance(1.0)
    assert not svc.alarm.disk_active
    svc.stopService()
