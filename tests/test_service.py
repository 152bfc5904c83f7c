"""BrokerNode in-process (no reactor running, no sockets): status, alarms, bounded tables."""

from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path

from twisted.internet import task

from broker.callflow.commands import LockOut
from broker.config.loader import load_config
from broker.service import MAX_LNS_SERIES, BrokerNode, ControlListenError, write_memory_snapshot

ROOT = Path(__file__).resolve().parents[1]


def make_node(tmp_path: Path) -> tuple[BrokerNode, task.Clock]:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    cfg = tmp_path / "broker.yaml"
    cfg.write_text(
        "node_id: lac-unit\n"
        "radius:\n  nas_ip: 127.0.0.1\n  bind: 127.0.0.1\n"
        "  servers: [{name: r1, address: 127.0.0.1, port: 1812, secret: unit-secret}]\n"
        f"policies: {tmp_path / 'policies'}\nstate_dir: {tmp_path / 'state'}\n"
    )
    clock = task.Clock()
    clock.advance(1_700_000_000)
    return BrokerNode(load_config(cfg), clock), clock


def test_status_without_accounting_has_no_alarms(tmp_path: Path) -> None:
    node, _ = make_node(tmp_path)
    st = node.status()
    assert st["alarms"] == [] and st["spool_depth"] == 0
    assert st["spool_alarm_records"] == 50_000
    text = node.metrics_text()
    assert "l2tp_broker_spool_alarm 0" in text and "l2tp_broker_spool_disk_free_bytes -1" in text
    assert "l2tp_broker_spool_alarm_threshold 50000" in text


def test_remembered_lockouts_are_bounded(tmp_path: Path) -> None:
    node, clock = make_node(tmp_path)
    for i in range(3 * MAX_LNS_SERIES):
        node._lockout(LockOut(f"198.51.100.{i % 250}:{1000 + i}", 5.0, "timeout"))
        clock.advance(1.0)  # each lockout has ended 5 s later
    assert len(node.locked) <= MAX_LNS_SERIES
    assert len(node.metrics.lockouts.values) <= MAX_LNS_SERIES + 1  # + "_other"
    assert sum(node.metrics.lockouts.values.values()) == 3 * MAX_LNS_SERIES
    # a lockout still running is never forgotten
    node._lockout(LockOut("203.0.113.9:1701", 1e6, "timeout"))
    for i in range(2 * MAX_LNS_SERIES):
        node._lockout(LockOut(f"192.0.2.{i % 250}:{2000 + i}", 1.0, "timeout"))
        clock.advance(2.0)
    assert "203.0.113.9:1701" in node.locked


def test_control_listen_error_names_address_reason_and_kind() -> None:
    in_use = ControlListenError("127.0.0.1:8081", OSError(98, "Address already in use"))
    assert str(in_use).startswith("control API cannot listen on 127.0.0.1:8081: Address already")
    assert "fix:" in str(in_use) and not in_use.permission
    denied = ControlListenError("unix:/run/x.sock", PermissionError(13, "Permission denied"))
    assert denied.permission and "Permission denied" in str(denied)


def test_memory_snapshot_starts_tracing_then_writes_numbered_snapshots(tmp_path: Path) -> None:
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:  # pytest run under PYTHONTRACEMALLOC: the first call already writes
        tracemalloc.stop()
    try:
        assert write_memory_snapshot(tmp_path) is None and tracemalloc.is_tracing()
        first = write_memory_snapshot(tmp_path)
        second = write_memory_snapshot(tmp_path)
        assert first is not None and second is not None
        assert first.name == f"memory-{os.getpid()}-0.tracemalloc"
        assert second.name == f"memory-{os.getpid()}-1.tracemalloc"
        tracemalloc.Snapshot.load(str(second))  # a valid snapshot
        assert write_memory_snapshot(tmp_path / "missing") is None  # logged, not raised
    finally:
        tracemalloc.stop()
        if was_tracing:
            tracemalloc.start()
