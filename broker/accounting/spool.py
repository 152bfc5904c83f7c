"""Durable accounting spool: sqlite in WAL mode in the state directory.

Records are written BEFORE they are sent and removed only when the server acknowledged them
(issue 4 item 4). Two durability modes (config ``spool_sync``):

- ``full``: ``synchronous=FULL``, every commit is fsynced before ``append`` returns; survives
  SIGKILL and power loss.
- ``interval``: ``synchronous=NORMAL``; a commit is in the WAL (survives SIGKILL of the
  process, which keeps the OS page cache) and :meth:`Spool.flush` -- called by the service on
  an interval -- checkpoints and fsyncs, bounding what a power loss can take.

``append`` is idempotent per ``record_id``: submitting the same record again (a restarted
producer that is not sure what it already handed over) returns the existing sequence number.

Open sessions (issue 9 item 4): in the same transaction as the record, the spool keeps a
durable table of what was started and not yet stopped -- a Start (RFC 2866) opens a row that
Interim-Updates refresh and the Stop deletes; Tunnel-Link-Start/Stop and Tunnel-Start/Stop
(RFC 2867) likewise. After a crash, :meth:`Spool.close_open_sessions` turns every row left over
into its Stop (Acct-Terminate-Cause NAS-Reboot, the last known session time and counters, see
:mod:`broker.accounting.recovery`) and spools those Stops, clearing the rows in the same
transaction: a session gets exactly one Stop, and only a session that had a Start.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from broker.accounting.recovery import open_key, reboot_stops
from broker.radius.accounting import AcctRecord, AcctStatusType, AcctTerminateCause

SyncMode = Literal["full", "interval"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS open_sessions (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    updated REAL NOT NULL,
    payload BLOB NOT NULL
)
"""

_OPENS = {
    int(AcctStatusType.START),
    int(AcctStatusType.TUNNEL_LINK_START),
    int(AcctStatusType.TUNNEL_START),
}
_CLOSES = {
    int(AcctStatusType.STOP),
    int(AcctStatusType.TUNNEL_LINK_STOP),
    int(AcctStatusType.TUNNEL_STOP),
}


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    seq: int
    record: AcctRecord


class Spool:
    """sqlite-backed FIFO of unacknowledged accounting records."""

    def __init__(self, path: str | Path, *, sync: SyncMode = "full") -> None:
        if sync not in ("full", "interval"):
            raise ValueError(f"spool_sync must be 'full' or 'interval', not {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        self._db = sqlite3.connect(str(self.path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self.flush()
        self._db.close()

    def append(self, record: AcctRecord) -> int:
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[AcctRecord]) -> list[int]:
        """Store records in one transaction; returns their sequence numbers in order."""
        seqs: list[int] = []
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for r in records:
                cur.execute(
                    "INSERT OR IGNORE INTO records (record_id, created, payload) VALUES (?, ?, ?)",
                    (r.record_id, r.created, r.to_bytes()),
                )
                inserted = cur.rowcount == 1
                row = cur.execute(
                    "SELECT seq FROM records WHERE record_id = ?", (r.record_id,)
                ).fetchone()
                seqs.append(int(row[0]))
                if inserted:  # a duplicate submission changes nothing
                    self._track(cur, r)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return seqs

    @staticmethod
    def _track(cur: sqlite3.Cursor, r: AcctRecord) -> None:
        """Keep the open-session table in step with the record (same transaction)."""
        key = open_key(r)
        if key is None:
            return
        if r.status in _OPENS:
            cur.execute(
                "INSERT OR IGNORE INTO open_sessions (key, status, updated, payload) "
                "VALUES (?, ?, ?, ?)",
                (key, r.status, r.created, r.to_bytes()),
            )
        elif r.status == AcctStatusType.INTERIM_UPDATE:
            cur.execute(
                "UPDATE open_sessions SET updated = ?, payload = ? WHERE key = ? AND updated <= ?",
                (r.created, r.to_bytes(), key, r.created),
            )
        elif r.status in _CLOSES:
            cur.execute("DELETE FROM open_sessions WHERE key = ?", (key,))

    def open_sessions(self) -> list[AcctRecord]:
        """The last record (Start or latest Interim) of everything started and not stopped."""
        rows = self._db.execute("SELECT payload FROM open_sessions ORDER BY key").fetchall()
        return [AcctRecord.from_bytes(bytes(p)) for (p,) in rows]

    def open_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM open_sessions").fetchone()[0])

    def close_open_sessions(
        self, now: float, cause: AcctTerminateCause = AcctTerminateCause.NAS_REBOOT
    ) -> list[AcctRecord]:
        """Spool a Stop for every open session (and Tunnel-Link-Stop / Tunnel-Stop for open
        links and tunnels); the rows are cleared in the same transaction. Call at start,
        before any new session is started. Returns the Stops spooled."""
        stops = reboot_stops(self.open_sessions(), now, cause)
        if stops:
            self.append_many(stops)
        return stops

    def pending(self, limit: int | None = None, *, after: int = 0) -> list[SpooledRecord]:
        """Unacknowledged records, oldest first."""
        rows = self._db.execute(
            "SELECT seq, payload FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, -1 if limit is None else limit),
        ).fetchall()
        return [SpooledRecord(int(s), AcctRecord.from_bytes(bytes(p))) for s, p in rows]

    def ack(self, seq: int) -> None:
        self.ack_many([seq])

    def ack_many(self, seqs: Sequence[int]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("DELETE FROM records WHERE seq = ?", [(s,) for s in seqs])
        self._db.execute("COMMIT")

    def depth(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def depth_upper_bound(self) -> int:
        """Last seq - first seq + 1 (0 when empty): never below :meth:`depth` and two index
        look-ups however long the spool is (records acknowledged out of order leave holes,
        which only make it larger)."""
        row = self._db.execute(
            "SELECT (SELECT MAX(seq) FROM records), (SELECT MIN(seq) FROM records)"
        ).fetchone()
        return 0 if row[0] is None else int(row[0]) - int(row[1]) + 1

    def free_bytes(self) -> int | None:
        """Octets available to this process on the spool's filesystem (statvfs), or None
        when it cannot be read."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return None
        return int(st.f_bavail) * int(st.f_frsize)

    def oldest_age(self, now: float) -> float | None:
        """Seconds since the oldest pending record was created, or None when empty."""
        row = self._db.execute("SELECT MIN(created) FROM records").fetchone()
        return None if row[0] is None else max(0.0, now - float(row[0]))

    def flush(self) -> None:
        """Checkpoint the WAL into the database (fsyncs both); the interval mode's sync point."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
