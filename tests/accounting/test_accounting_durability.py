"""Issue 4 "Accounting durability": with the accounting server down, 1000 sessions start and
stop through the real AccountingService in a subprocess; it is SIGKILLed mid-way and
restarted; once FreeRADIUS is up, its detail file holds every Start and Stop, and duplicates
only as retransmissions of the same (Acct-Session-Id, status)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

from ops.lab.acct_driver import session_id
from ops.lab.freeradius import FreeRadius, LabClient, free_udp_port
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 1000


def _driver(spool: Path, port: int, secret: str, start: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ops.lab.acct_driver",
            "run",
            "--spool",
            str(spool),
            "--server",
            f"127.0.0.1:{port}",
            "--secret",
            secret,
            "--sessions",
            str(SESSIONS),
            "--from",
            str(start),
            "--backoff",
            "0.2,0.5",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _read_until(out: IO[str], pred: str, deadline: float, seen: list[str]) -> str:
    while time.monotonic() < deadline:
        line = out.readline()
        if not line:
            raise AssertionError(f"driver exited; last lines {seen[-5:]}")
        seen.append(line.strip())
        if line.startswith(pred):
            return line.strip()
    raise AssertionError(f"timed out waiting for {pred!r}; last lines {seen[-5:]}")


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.parametrize("sync", ["full", "interval"])
def test_sigkill_and_server_outage_lose_nothing(tmp_path: Path, sync: str) -> None:
    binary = require_binary("freeradius")
    port = random.randint(20000, 60000)
    secret = "acct-" + os.urandom(4).hex()
    spool = tmp_path / "state" / "acct-spool.db"
    radius = FreeRadius(
        tmp_path / "radius", auth_port=free_udp_port(), acct_port=port,
        clients=[LabClient("lo", "127.0.0.1", secret)], binary=binary,
    )  # fmt: skip
    first = second = None
    try:
        t0 = time.monotonic()
        deadline = t0 + 50
        seen: list[str] = []
        # 1. server down; the broker submits about half the sessions and is SIGKILLed
        first = _driver(spool, port, secret, 0, "--sync", sync)
        assert first.stdout is not None
        last = 0
        while last < SESSIONS // 2:
            last = int(_read_until(first.stdout, "SUBMITTED", deadline, seen).split()[1])
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # 2. restarted: replays the spool, resubmits from the last confirmed point, finishes
        second = _driver(spool, port, secret, last, "--sync", sync, "--exit-when-drained")
        assert second.stdout is not None
        _read_until(second.stdout, "ALL-SUBMITTED", deadline, seen)
        depth = int(_read_until(second.stdout, "DEPTH", deadline, seen).split()[1])
        assert depth == 2 * SESSIONS  # all spooled once (idempotent resubmission), none acked
        # 3. the server returns; everything drains
        radius.start()
        t_up = time.monotonic()
        _read_until(second.stdout, "DRAINED", deadline, seen)
        drain = time.monotonic() - t_up
        assert second.wait(timeout=10) == 0
        records = radius.records()
        counts = Counter((r["Acct-Session-Id"], r["Acct-Status-Type"]) for r in records)
        expected = {
            (session_id("n1", i), status) for i in range(SESSIONS) for status in ("Start", "Stop")
        }
        assert set(counts) == expected, "every Start and Stop, nothing else"
        duplicates = sum(c - 1 for c in counts.values())
        # the spool kept everything: Acct-Delay-Time shows the outage
        assert max(int(r.get("Acct-Delay-Time", "0")) for r in records) >= 1
        stop = next(r for r in records if r["Acct-Status-Type"] == "Stop")
        assert (
            stop["Acct-Input-Gigawords"] == "5" and stop["Acct-Terminate-Cause"] == "User-Request"
        )
        print(
            f"sync={sync} records={len(records)} duplicates={duplicates} killed_at={last} "
            f"drain={drain:.2f}s "
            f"elapsed={time.monotonic() - t0:.1f}s"
        )
    finally:
        _stop(first)
        _stop(second)
        radius.stop()
