"""EngineTimer: one re-armed delayed call following an engine's get_timer()/handle_timer()."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from broker.adapters.timer import EngineTimer


class FakeEngine:
    """Deadlines in a sorted list; handle_timer pops every due one."""

    def __init__(self, deadlines: list[float] | None = None) -> None:
        self.deadlines = sorted(deadlines or [])
        self.handled: list[float] = []
        self.raise_in: str | None = None

    def get_timer(self) -> float | None:
        if self.raise_in == "get_timer":
            raise ValueError("boom")
        return self.deadlines[0] if self.deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.raise_in == "handle_timer":
            raise RuntimeError("boom")
        while self.deadlines and self.deadlines[0] <= now:
            self.handled.append(self.deadlines.pop(0))


def test_idle_engine_schedules_nothing() -> None:
    clock = Clock()
    timer = EngineTimer(FakeEngine(), clock)
    timer.rearm()
    assert clock.getDelayedCalls() == []
    assert timer.deadline is None and not timer.active


def test_fires_at_deadline_and_calls_after() -> None:
    clock = Clock()
    engine = FakeEngine([5.0])
    after: list[float] = []
    timer = EngineTimer(engine, clock, lambda: after.append(clock.seconds()))
    timer.rearm()
    assert timer.deadline == 5.0
    clock.advance(4.999)
    assert engine.handled == []
    clock.advance(0.001)
    assert engine.handled == [5.0]
    assert after == [5.0]
    assert timer.deadline is None
    assert timer.counters["fired"] == 1


def test_exactly_one_delayed_call_follows_earlier_deadline() -> None:
    clock = Clock()
    engine = FakeEngine([10.0])
    timer = EngineTimer(engine, clock)
    timer.rearm()
    engine.deadlines.insert(0, 3.0)
    timer.rearm()
    assert len(clock.getDelayedCalls()) == 1
    assert timer.deadline == 3.0
    clock.advance(3.0)
    assert engine.handled == [3.0]
    assert len(clock.getDelayedCalls()) == 1
    assert timer.deadline == 10.0
    clock.advance(7.0)
    assert engine.handled == [3.0, 10.0]
    assert clock.getDelayedCalls() == []


def test_rearm_with_unchanged_deadline_keeps_the_call() -> None:
    clock = Clock()
    timer = EngineTimer(FakeEngine([2.0]), clock)
    timer.rearm()
    call = clock.getDelayedCalls()[0]
    timer.rearm()
    assert clock.getDelayedCalls() == [call]


def test_deadline_removed_cancels() -> None:
    clock = Clock()
    engine = FakeEngine([2.0])
    timer = EngineTimer(engine, clock)
    timer.rearm()
    engine.deadlines.clear()
    timer.rearm()
    assert clock.getDelayedCalls() == []


def test_past_deadline_fires_immediately() -> None:
    clock = Clock()
    clock.advance(100)
    engine = FakeEngine([50.0])
    timer = EngineTimer(engine, clock)
    timer.rearm()
    clock.advance(0)
    assert engine.handled == [50.0]


def test_stalled_engine_does_not_spin() -> None:
    """An engine whose deadline stays in the past is retried after stall_delay, not at 0."""

    class Stuck(FakeEngine):
        def handle_timer(self, now: float) -> None:
            self.handled.append(now)

    clock = Clock()
    engine = Stuck([1.0])
    timer = EngineTimer(engine, clock, stall_delay=0.5)
    timer.rearm()
    clock.advance(1.0)
    assert engine.handled == [1.0]
    assert timer.counters["timer_stalled"] == 1
    clock.advance(0.4)
    assert engine.handled == [1.0]
    clock.advance(0.1)
    assert engine.handled == [1.0, 1.5]


def test_exceptions_are_counted_not_raised() -> None:
    clock = Clock()
    engine = FakeEngine([1.0])
    calls: list[int] = []

    def after() -> None:
        calls.append(1)
        raise KeyError("after")

    timer = EngineTimer(engine, clock, after)
    timer.rearm()
    engine.raise_in = "handle_timer"
    clock.advance(1.0)  # must not raise
    assert timer.counters["errors"] >= 2
    assert calls == [1]
    engine.raise_in = "get_timer"
    timer.rearm()  # must not raise; treated as idle
    assert timer.deadline is None


def test_stop_cancels_and_ignores_rearm() -> None:
    clock = Clock()
    engine = FakeEngine([1.0, 2.0])
    timer = EngineTimer(engine, clock)
    timer.rearm()
    timer.stop()
    assert clock.getDelayedCalls() == []
    timer.rearm()
    assert clock.getDelayedCalls() == []
    assert timer.stopped


def test_after_may_stop_the_timer() -> None:
    clock = Clock()
    engine = FakeEngine([1.0, 2.0])
    timer: EngineTimer
    timer = EngineTimer(engine, clock, lambda: timer.stop())
    timer.rearm()
    clock.advance(1.0)
    assert clock.getDelayedCalls() == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=30),
    st.lists(st.floats(min_value=0.001, max_value=50, allow_nan=False), max_size=30),
)
def test_every_deadline_handled_on_time(deadlines: list[float], steps: list[float]) -> None:
    """Whatever the advance steps, each deadline is handled at the first time >= it."""
    clock = Clock()
    engine = FakeEngine(deadlines)
    fired_at: list[tuple[float, float]] = []

    def handle(now: float) -> None:
        for d in [d for d in engine.deadlines if d <= now]:
            fired_at.append((d, now))
        engine.deadlines = [d for d in engine.deadlines if d > now]

    engine.handle_timer = handle  # type: ignore[method-assign]
    timer = EngineTimer(engine, clock)
    timer.rearm()
    for step in [*steps, 1001.0]:
        clock.advance(step)
        assert len(clock.getDelayedCalls()) <= 1
    assert sorted(d for d, _ in fired_at) == sorted(deadlines)
    for deadline, at in fired_at:
        assert at >= deadline
