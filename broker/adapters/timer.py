"""One re-armed reactor timer driven by a sans-I/O engine's ``get_timer()``/``handle_timer()``.

Every engine (L2TP endpoint, PPPoE discovery, LCP, RADIUS client, ...) exposes the same two
timer methods (DESIGN.md section 2): ``get_timer()`` returns the absolute deadline of the
earliest pending timer (or ``None``) and ``handle_timer(now)`` processes everything due. An
adapter owns exactly one :class:`EngineTimer` per engine and calls :meth:`EngineTimer.rearm`
after every input it feeds the engine. When the delayed call fires, the timer calls
``handle_timer(reactor.seconds())``, then the adapter's ``after`` callback (to write the
engine's output and drain its events), then re-arms itself.

An exception raised by the engine or by ``after`` never escapes into the reactor: it is
counted in :attr:`EngineTimer.counters` and logged once per exception type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

__all__ = ["DelayedCall", "EngineTimer", "Scheduler", "TimedEngine"]

_log = Logger(namespace="broker.adapters.timer")


class TimedEngine(Protocol):
    """Anything with the sans-I/O timer pair."""

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class DelayedCall(Protocol):
    """The part of ``twisted.internet.interfaces.IDelayedCall`` used here."""

    def active(self) -> bool: ...

    def reset(self, seconds_from_now: float, /) -> None: ...

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The part of ``IReactorTime`` used here (the reactor, or ``task.Clock`` in tests).

    Typed structurally because mypy cannot see zope interfaces without a plugin.
    """

    def seconds(self) -> float: ...

    def callLater(  # Twisted's name
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> Any: ...


class EngineTimer:
    """Keeps one ``IDelayedCall`` pointed at ``engine.get_timer()``.

    ``stall_delay`` guards against an engine whose deadline stays in the past after
    ``handle_timer`` (a bug): instead of spinning the reactor with zero-delay calls, the timer
    waits that long before trying again and counts ``timer_stalled``.
    """

    def __init__(
        self,
        engine: TimedEngine,
        reactor: Scheduler,
        after: Callable[[], None] | None = None,
        *,
        stall_delay: float = 0.01,
        name: str = "engine",
    ) -> None:
        self._engine = engine
        self._reactor = reactor
        self._after = after
        self._stall_delay = stall_delay
        self._name = name
        self._call: DelayedCall | None = None
        self._deadline: float | None = None
        self._logged: set[str] = set()
        self._stopped = False
        self.counters: dict[str, int] = {"fired": 0, "errors": 0, "timer_stalled": 0}

    @property
    def deadline(self) -> float | None:
        """The absolute time the delayed call is set for (``None`` when idle)."""
        return self._deadline if self._call is not None else None

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def active(self) -> bool:
        return self._call is not None and self._call.active()

    def rearm(self) -> None:
        """Point the delayed call at the engine's current deadline (cancel when ``None``)."""
        if self._stopped:
            return
        try:
            deadline = self._engine.get_timer()
        except Exception as exc:
            self._note_error("get_timer", exc)
            deadline = None
        self._schedule(deadline, floor=0.0)

    def stop(self) -> None:
        """Cancel the delayed call for good (the adapter is shutting down)."""
        self._stopped = True
        self._cancel()

    def _schedule(self, deadline: float | None, *, floor: float) -> None:
        if deadline is None:
            self._cancel()
            return
        now = self._reactor.seconds()
        delay = max(deadline - now, floor)
        if self._call is not None and self._call.active():
            if self._deadline == deadline and floor == 0.0:
                return
            self._call.reset(delay)
        else:
            self._call = self._reactor.callLater(delay, self._fire)
        self._deadline = deadline

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._deadline = None

    def _fire(self) -> None:
        self._call = None
        self._deadline = None
        if self._stopped:
            return
        now = self._reactor.seconds()
        self.counters["fired"] += 1
        try:
            self._engine.handle_timer(now)
        except Exception as exc:
            self._note_error("handle_timer", exc)
        if self._after is not None:
            try:
                self._after()
            except Exception as exc:
                self._note_error("after", exc)
        if self.stopped:  # ``after`` may have stopped us
            return
        try:
            deadline = self._engine.get_timer()
        except Exception as exc:
            self._note_error("get_timer", exc)
            deadline = None
        if deadline is not None and deadline <= now:
            self.counters["timer_stalled"] += 1
            self._schedule(deadline, floor=self._stall_delay)
        else:
            # ``after`` may already have re-armed us; _schedule is idempotent for a deadline.
            self._schedule(deadline, floor=0.0)

    def _note_error(self, where: str, exc: Exception) -> None:
        self.counters["errors"] += 1
        kind = f"{where}:{type(exc).__name__}"
        if kind not in self._logged:
            self._logged.add(kind)
            _log.failure(
                "{name} timer: {where} raised {kind} (logged once per kind)",
                name=self._name,
                where=where,
                kind=type(exc).__name__,
            )
