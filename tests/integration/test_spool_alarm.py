"""Spool alarm with the real daemon (issue 9 item 4, "spool size alarms").

The accounting server's address does not answer (nothing listens there) and the spool holds
more records than ``accounting.spool_alarm_records`` (records a previous run could not
deliver): the daemon raises the alarm (one WARNING line, ``l2tp_broker_spool_alarm 1`` in
/metrics, ``alarms`` in /status) and keeps every record. Then the server appears: the replay
drains the spool and the alarm clears (one INFO line, gauge back to 0).

No namespaces or raw sockets: the daemon runs without PPPoE interfaces on loopback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.accounting.spool import Spool
from broker.control.client import ControlClient, ControlError
from broker.radius.accounting import AcctRecord
from broker.radius.packet import verify_request
from ops.lab.netns import poll, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"spool-alarm-acct-secret"
THRESHOLD = 5
BACKLOG = 8


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AcctResponder:
    """A minimal RFC 2866 accounting server: acknowledges every authentic request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.acked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 20 or data[0] != 4 or not verify_request(data, SECRET):
                continue
            head = struct.pack("!BBH", 5, data[1], 20)
            self.sock.sendto(head + hashlib.md5(head + data[4:20] + SECRET).digest(), addr)
            self.acked += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, int, Path]]:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    acct_port = _free_port(socket.SOCK_DGRAM)
    control = f"127.0.0.1:{_free_port(socket.SOCK_STREAM)}"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    spool = Spool(state / "accounting.sqlite")
    created = 1_700_000_000.0
    spool.append_many(
        [
            AcctRecord(f"left-{i}", 3, (("Acct-Session-Id", f"old{i}"),), created + i)
            for i in range(BACKLOG)
        ]
    )  # Interim-Updates a previous run could not deliver
    spool.close()
    config = tmp_path / "broker.yaml"
    config.write_text(
        f"""\
node_id: lac-spool
l2tp: {{listen: 127.0.0.1, port: {_free_port(socket.SOCK_DGRAM)}}}
radius:
  nas_ip: 127.0.0.1
  bind: 127.0.0.1
  servers: [{{name: r1, address: 127.0.0.1, port: {_free_port(socket.SOCK_DGRAM)},
              secret: unused-auth-secret}}]
  accounting_servers: [{{name: a1, address: 127.0.0.1, port: {acct_port},
                         secret: {SECRET.decode()}}}]
accounting: {{spool_sync: full, spool_alarm_records: {THRESHOLD}}}
policies: {tmp_path / "policies"}
state_dir: {state}
control: {control}
dataplane: userspace
log: {{format: text, level: info}}
"""
    )
    os.chmod(config, 0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "run", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        cwd=str(ROOT),
    )  # fmt: skip
    try:
        yield proc, control, acct_port, state
    finally:
        stop_process(proc)


def _metrics(client: ControlClient) -> dict[str, float]:
    try:
        text = client.get("/metrics")
    except ControlError:
        return {}
    out = {}
    for line in str(text).splitlines():
        if line.startswith("l2tp_broker_spool") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name.removeprefix("l2tp_broker_")] = float(value)
    return out


def test_spool_alarm_raised_while_server_silent_and_cleared_by_the_replay(
    daemon: tuple[subprocess.Popen[str], str, int, Path],
) -> None:
    proc, control, acct_port, _state = daemon
    client = ControlClient(control, timeout=5)
    m = poll(lambda: (mm := _metrics(client)).get("spool_alarm") == 1 and mm, 30, 0.2)
    assert m, f"no alarm: {_metrics(client)}"
    assert m["spool_alarm_threshold"] == THRESHOLD
    assert m["spool_depth"] >= BACKLOG  # the backlog + Accounting-On: nothing dropped
    assert m["spool_disk_free_bytes"] > 0
    status = client.get("/status")
    assert status["alarms"] == ["spool_records"] and status["spool_depth"] >= BACKLOG
    responder = AcctResponder(acct_port)  # the accounting server appears
    try:
        m = poll(
            lambda: (
                (mm := _metrics(client)).get("spool_alarm") == 0
                and mm.get("spool_depth") == 0
                and mm
            ),
            45,
            0.3,
        )
        assert m, f"alarm never cleared: {_metrics(client)}"
        assert responder.acked >= BACKLOG + 1
        assert client.get("/status")["alarms"] == []
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        responder.close()
    assert proc.returncode == 0, out[-3000:]
    warn = [line for line in out.splitlines() if "accounting: spool alarm:" in line]
    cleared = [line for line in out.splitlines() if "accounting: spool alarm cleared" in line]
    assert len(warn) == 1 and "#warn]" in warn[0], out[-3000:]
    assert len(cleared) == 1 and "#info]" in cleared[0], out[-3000:]
    assert SECRET.decode() not in out
