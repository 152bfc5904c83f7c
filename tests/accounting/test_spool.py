"""Durable sqlite spool: FIFO, idempotent append, ack, depth/age, SIGKILL survival."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.accounting.spool import Spool
from broker.radius.accounting import AcctRecord

ROOT = Path(__file__).resolve().parents[2]


def rec(i: int, created: float = 0.0) -> AcctRecord:
    return AcctRecord(f"r{i}", 1, (("Acct-Session-Id", f"s{i}"), ("Class", b"\x00\xff")), created)


@pytest.mark.parametrize("mode", ["full", "interval"])
def test_append_pending_ack(tmp_path: Path, mode: str) -> None:
    sp = Spool(tmp_path / "spool.db", sync=mode)  # type: ignore[arg-type]
    seqs = sp.append_many([rec(i, float(i)) for i in range(5)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert sp.depth() == 5
    assert [p.record for p in sp.pending()] == [rec(i, float(i)) for i in range(5)]
    assert [p.seq for p in sp.pending(2)] == seqs[:2]
    assert [p.seq for p in sp.pending(10, after=seqs[2])] == seqs[3:]
    sp.ack(seqs[0])
    assert sp.oldest_age(10.0) == 9.0
    sp.ack_many(seqs[1:])
    assert sp.depth() == 0 and sp.oldest_age(10.0) is None
    sp.close()


def test_append_idempotent_by_record_id(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    a = sp.append(rec(1))
    assert sp.append(rec(1)) == a
    assert sp.append_many([rec(2), rec(1)])[1] == a
    assert sp.depth() == 2


def test_reopen_keeps_records(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", sync="interval")
    sp.append_many([rec(i) for i in range(3)])
    sp.close()
    sp2 = Spool(tmp_path / "s.db")
    assert [p.record.record_id for p in sp2.pending()] == ["r0", "r1", "r2"]


def test_bad_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.db", sync="sometimes")  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.sampled_from(["append", "ack", "reopen"]), st.integers(0, 30))))
@settings(max_examples=40, deadline=None)
def test_spool_model(ops: list[tuple[str, int]]) -> None:
    """Against a dict model: pending = appended and not acked, in append order; reopen loses
    nothing; duplicate record ids keep their first seq."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.db"
        sp = Spool(path, sync="interval")
        model: dict[str, int] = {}
        for op, n in ops:
            if op == "append":
                seq = sp.append(rec(n))
                assert model.setdefault(f"r{n}", seq) == seq
            elif op == "ack" and model:
                rid = sorted(model)[n % len(model)]
                sp.ack(model.pop(rid))
            elif op == "reopen":
                sp.close()
                sp = Spool(path, sync="interval")
            got = [(p.record.record_id, p.seq) for p in sp.pending()]
            assert got == sorted(model.items(), key=lambda kv: kv[1])
            assert sp.depth() == len(model)
            # the alarm's cheap bound: never below the depth, exact when nothing has holes
            bound = sp.depth_upper_bound()
            assert bound >= len(model) and (bound == 0) is (not model)
            if model:
                seqs = sorted(model.values())
                assert bound == seqs[-1] - seqs[0] + 1
        sp.close()


def test_free_bytes_of_the_spool_filesystem(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db")
    st = os.statvfs(tmp_path)
    free = sp.free_bytes()
    assert free is not None and free > 0
    assert abs(free - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024  # other writers
    sp.path = tmp_path / "gone" / "s.db"  # the directory vanished: unknown, no exception
    assert sp.free_bytes() is None
    sp.close()


_WRITER = """
import sys
from broker.accounting.spool import Spool
from broker.radius.accounting import AcctRecord
sp = Spool(sys.argv[1], sync=sys.argv[2])
i = 0
while True:
    batch = [AcctRecord(f"r{i + k}", 1, (("Acct-Session-Id", f"s{i + k}"),), 1.0)
             for k in range(int(sys.argv[3]))]
    sp.append_many(batch)
    i += len(batch)
    print(i, flush=True)
"""


@pytest.mark.parametrize(("mode", "batch"), [("full", 1), ("interval", 1), ("interval", 7)])
def test_survives_sigkill(tmp_path: Path, mode: str, batch: int) -> None:
    """A subprocess appends; it is SIGKILLed mid-way; everything it reported is there."""
    path = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), mode, str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    last = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while last < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        assert last >= 300, "writer did not get going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sp = Spool(path)
    ids = [p.record.record_id for p in sp.pending()]
    assert len(ids) >= last
    assert ids[: len(ids)] == [f"r{i}" for i in range(len(ids))]
    assert len(ids) % batch == 0  # a batch is one transaction: all or nothing
