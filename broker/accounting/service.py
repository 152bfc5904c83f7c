"""Twisted accounting service: durable spool -> AccountingClient engine -> UDP.

``submit(record)`` writes the record to the spool (committed before it returns) and only then
hands it to the engine; a record leaves the spool when the server acknowledged it. On start the
service replays everything still in the spool, oldest first, so records survive restarts and
SIGKILL (issue 4 item 4). Records flow from the spool to the engine in pages (``page``), so a
large backlog is not loaded into memory at once.

Acknowledgements are deleted from the spool in one transaction per reactor turn. A crash between
the server's answer and that commit only means the record is sent again (same Acct-Session-Id
and status: a duplicate the server treats as a retransmission).

In ``interval`` spool mode the service checkpoints the spool every ``flush_interval`` seconds.
Optionally (``nas`` + ``boot_id``) it sends Accounting-On at start and Accounting-Off at a
clean stop (RFC 2866 section 5.1), waiting up to ``off_timeout`` for the Off to be acknowledged.

Crash recovery (issue 9 item 4): at start, before Accounting-On and before any new call, the
sessions the previous run left open in the spool (a Start and no Stop: the node was killed)
get their Stop with Acct-Terminate-Cause NAS-Reboot and the last known usage
(:meth:`Spool.close_open_sessions`). On by default when ``nas`` is given (the daemon);
``recover_open_sessions`` overrides it.

Spool alarms (issue 9 item 4): every ``alarm_interval`` seconds (and at start) the service
checks the spool depth against ``alarm_records`` and the free space of the spool's filesystem
against ``alarm_min_free_bytes`` (:class:`broker.accounting.alarm.SpoolAlarm`, with
hysteresis); a raised alarm is one WARNING line, a cleared one an INFO line, and both show in
:meth:`AccountingService.metrics`. Records are never dropped because of an alarm.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from broker.accounting.alarm import (
    DEFAULT_MIN_FREE_BYTES,
    AlarmChange,
    AlarmKind,
    SpoolAlarm,
)
from broker.accounting.spool import Spool
from broker.adapters.timer import EngineTimer
from broker.radius.accounting import (
    AcctRecord,
    AcctStatusType,
    NasInfo,
    accounting_off_record,
    accounting_on_record,
    check_record,
)
from broker.radius.acct_client import (
    AccountingClient,
    Event,
    RecordAcknowledged,
    RecordRejected,
    ServerAlive,
    ServerDead,
)

_log = Logger(namespace="broker.accounting")


class _Protocol(DatagramProtocol):
    def __init__(self, service: AccountingService) -> None:
        self._service = service

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._service.datagram_received(datagram, (str(addr[0]), int(addr[1])))


class AccountingService(Service):
    """Spool + engine + one UDP socket (see module docstring)."""

    def __init__(
        self,
        spool: Spool,
        engine: AccountingClient,
        *,
        reactor: Any,
        bind_address: str = "127.0.0.1",
        bind_port: int = 0,
        page: int = 256,
        flush_interval: float = 1.0,
        nas: NasInfo | None = None,
        boot_id: str | None = None,
        off_timeout: float = 3.0,
        on_event: Callable[[Event], None] | None = None,
        recover_open_sessions: bool | None = None,
        alarm_records: int = 50_000,
        alarm_min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        alarm_interval: float = 1.0,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self._reactor = reactor
        self._bind = (bind_address, bind_port)
        self._page = page
        self._flush_interval = flush_interval
        self._nas = nas
        self._boot_id = boot_id
        self._off_timeout = off_timeout
        self._on_event = on_event
        self._recover = nas is not None if recover_open_sessions is None else recover_open_sessions
        self.recovered_stops = 0
        self._port: Any = None  # IListeningPort + IUDPTransport.write
        self._timer = EngineTimer(engine, reactor, self._pump, name="accounting")
        self._fed_upto = 0
        self._pending_acks: list[int] = []
        self._pending_drops: list[int] = []
        self._ack_call: Any = None
        self._flusher: task.LoopingCall | None = None
        self._waiters: dict[int, defer.Deferred[None]] = {}
        self.acked = 0
        self.rejected = 0
        self.write_errors = 0
        self.alarm = SpoolAlarm(alarm_records, min_free_bytes=alarm_min_free_bytes)
        self._alarm_interval = alarm_interval
        self._alarm_loop: task.LoopingCall | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._port = self._reactor.listenUDP(
            self._bind[1], _Protocol(self), interface=self._bind[0]
        )
        if self.spool.sync == "interval":
            self._flusher = task.LoopingCall(self.spool.flush)
            self._flusher.clock = self._reactor
            self._flusher.start(self._flush_interval, now=False)
        depth = self.spool.depth()
        if depth:
            _log.info("accounting: replaying {depth} spooled records", depth=depth)
        if self._recover:
            stops = self.spool.close_open_sessions(self._reactor.seconds())
            self.recovered_stops = sum(1 for r in stops if r.status == AcctStatusType.STOP)
            if stops:
                _log.warn(
                    "accounting: {n} sessions left open by the previous run: "
                    "Stop with cause NAS-Reboot",
                    n=self.recovered_stops,
                )
        if self._nas is not None and self._boot_id is not None:
            self.submit(accounting_on_record(self._nas, self._boot_id, self._reactor.seconds()))
        self._pump()
        self._alarm_loop = task.LoopingCall(self._alarm_tick)
        self._alarm_loop.clock = self._reactor
        self._alarm_loop.start(self._alarm_interval, now=True)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._nas is not None and self._boot_id is not None and self._port is not None:
            seq = self.submit(
                accounting_off_record(self._nas, self._boot_id, self._reactor.seconds())
            )
            d: defer.Deferred[None] = defer.Deferred()
            self._waiters[seq] = d
            timeout = self._reactor.callLater(self._off_timeout, self._give_up, seq)
            d.addBoth(lambda r: (timeout.cancel() if timeout.active() else None, r)[1])
            d.addBoth(lambda _: self._shutdown())
            return d
        self._shutdown()
        return None

    def _give_up(self, seq: int) -> None:
        d = self._waiters.pop(seq, None)
        if d is not None:
            d.callback(None)

    def _shutdown(self) -> None:
        self._timer.stop()
        self._commit_acks()
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        if self._alarm_loop is not None and self._alarm_loop.running:
            self._alarm_loop.stop()
        if self._port is not None:
            self._port.stopListening()
            self._port = None
        self.spool.flush()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("service not started")
        return int(self._port.getHost().port)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, record: AcctRecord) -> int:
        """Spool the record (durable when this returns), then send it."""
        return self.submit_many([record])[0]

    def submit_many(self, records: Sequence[AcctRecord]) -> list[int]:
        """Spool several records in one transaction, then send them.

        Raises :class:`broker.radius.accounting.InvalidRecord` (nothing spooled) when one of
        them cannot be encoded: a record in the spool must always be sendable."""
        for r in records:
            check_record(r)
        seqs = self.spool.append_many(records)
        if self._port is not None:
            self._pump()
        return seqs

    # -- alarms ------------------------------------------------------------------------------
    def _alarm_tick(self) -> None:
        try:
            self.check_alarms()
        except (sqlite3.Error, OSError) as exc:  # keep the loop: the next tick retries
            _log.error("accounting: spool alarm check failed: {err}", err=exc)

    def check_alarms(self) -> list[AlarmChange]:
        """Re-evaluate the spool alarms now; logs and returns the changes."""
        alarm = self.alarm
        bound = self.spool.depth_upper_bound()
        depth = self.spool.depth() if alarm.needs_exact_depth(bound) else bound
        changes = [
            c
            for c in (alarm.update_depth(depth), alarm.update_free(self.spool.free_bytes()))
            if c is not None
        ]
        for change in changes:
            _log_alarm(change)
        return changes

    def metrics(self) -> dict[str, float]:
        age = self.spool.oldest_age(self._reactor.seconds())
        free = self.alarm.free_bytes
        return {
            "alarm_records": float(self.alarm.records_active),
            "alarm_records_threshold": float(self.alarm.threshold),
            "alarm_disk": float(self.alarm.disk_active),
            "disk_free_bytes": -1.0 if free is None else float(free),
            "depth": float(self.spool.depth()),
            "open_sessions": float(self.spool.open_count()),
            "recovered_stops": float(self.recovered_stops),
            "oldest_age": 0.0 if age is None else age,
            "acked": float(self.acked),
            "in_flight": float(self.engine.in_flight),
            "retransmits": float(self.engine.counters["retransmits"]),
            "forged": float(self.engine.counters["forged"]),
            "timeouts": float(self.engine.counters["timeouts"]),
        }

    # -- engine plumbing -------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.engine.receive_datagram(data, addr, self._reactor.seconds())
        self._pump()

    def _refill(self) -> None:
        if self.engine.queued >= self._page // 2:
            return
        for item in self.spool.pending(self._page, after=self._fed_upto):
            self.engine.submit(item.seq, item.record)
            self._fed_upto = item.seq

    def _pump(self) -> None:
        port = self._port
        if port is None:
            return
        now = self._reactor.seconds()
        while True:
            self._refill()
            out = self.engine.datagrams_to_send(now)
            for d in out:
                try:
                    port.write(d.payload, d.address)
                except OSError as exc:
                    self.write_errors += 1
                    _log.warn(
                        "accounting: send to {server} failed: {err}", server=d.server, err=exc
                    )
            if not out:
                break
        while (ev := self.engine.next_event()) is not None:
            if isinstance(ev, RecordAcknowledged):
                self._pending_acks.append(ev.seq)
            elif isinstance(ev, RecordRejected):  # only a spool written by other code
                _log.error(
                    "accounting: dropping unsendable record {rid}: {why}",
                    rid=ev.record_id,
                    why=ev.reason,
                )
                self._pending_drops.append(ev.seq)
            elif isinstance(ev, ServerDead):
                _log.warn("accounting server {server} dead", server=ev.server)
            elif isinstance(ev, ServerAlive):
                _log.info("accounting server {server} alive", server=ev.server)
            if self._on_event is not None:
                self._on_event(ev)
        if (self._pending_acks or self._pending_drops) and self._ack_call is None:
            self._ack_call = self._reactor.callLater(0, self._commit_acks)
        self._timer.rearm()

    def _commit_acks(self) -> None:
        self._ack_call = None
        if not self._pending_acks and not self._pending_drops:
            return
        acks, self._pending_acks = self._pending_acks, []
        drops, self._pending_drops = self._pending_drops, []
        self.spool.ack_many(acks + drops)
        self.acked += len(acks)
        self.rejected += len(drops)
        for seq in acks:
            d = self._waiters.pop(seq, None)
            if d is not None:
                d.callback(None)


def _log_alarm(change: AlarmChange) -> None:
    if change.kind is AlarmKind.RECORDS:
        if change.active:
            _log.warn(
                "accounting: spool alarm: {depth} records waiting (alarm at {limit}); the "
                "accounting servers are not acknowledging; records are kept, none dropped",
                depth=change.value,
                limit=change.level,
            )
        else:
            _log.info(
                "accounting: spool alarm cleared: {depth} records waiting (below {limit})",
                depth=change.value,
                limit=change.level,
            )
    elif change.active:
        _log.warn(
            "accounting: spool disk alarm: {free} octets free on the spool's filesystem "
            "(alarm below {limit}); records are kept, none dropped",
            free=change.value,
            limit=change.level,
        )
    else:
        _log.info(
            "accounting: spool disk alarm cleared: {free} octets free (above {limit})",
            free=change.value,
            limit=change.level,
        )
