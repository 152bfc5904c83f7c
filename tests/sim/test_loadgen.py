"""Load generator scheduling and report (pure)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.sim.loadgen import LoadGenerator, LoadPlan, percentile


def drive(gen: LoadGenerator, until: float, latency: float = 0.05) -> list[tuple[float, int]]:
    """Start everything due; every started subscriber comes up ``latency`` later."""
    starts: list[tuple[float, int]] = []
    pending: list[tuple[float, int]] = []
    now = 0.0
    while now <= until:
        for i in gen.due_starts(now):
            starts.append((now, i))
            pending.append((now + latency, i))
        for t, i in [p for p in pending if p[0] <= now]:
            pending.remove((t, i))
            gen.subscriber_up(i, now, latency)
        now = round(now + 0.001, 6)
    return starts


def test_rate_and_outstanding_cap() -> None:
    gen = LoadGenerator(LoadPlan(count=100, rate=200.0, outstanding=1000))
    starts = drive(gen, 2.0)
    assert len(starts) == 100
    assert sorted(i for _, i in starts) == list(range(100))
    # 100 at 200/s: about half a second (one 50 ms burst of slack)
    assert 0.4 <= starts[-1][0] <= 0.55
    report = gen.report(2.0)
    assert report.success and report.up == 100 and report.failed == 0
    assert report.latency_ms["p50"] == pytest.approx(50.0)

    capped = LoadGenerator(LoadPlan(count=50, rate=10_000.0, outstanding=5))
    capped_starts = drive(capped, 2.0, latency=0.1)
    # never more than 5 in setup: each 100 ms window starts at most 5
    times = [t for t, _ in capped_starts]
    for t in times:
        assert sum(1 for x in times if t <= x < t + 0.0999) <= 5
    assert len(capped_starts) == 50


def test_templates_auth_mix_and_realms() -> None:
    plan = LoadPlan(
        count=4,
        user_templates=("u{i}@isp-a.example", "v{i}@isp-b.example"),
        auth="mixed",
        first_index=10,
    )
    assert [plan.username(i) for i in range(4)] == [
        "u10@isp-a.example",
        "v11@isp-b.example",
        "u12@isp-a.example",
        "v13@isp-b.example",
    ]
    assert [plan.auth_methods(i) for i in range(2)] == [("chap",), ("pap",)]
    gen = LoadGenerator(plan)
    drive(gen, 1.0)
    assert gen.report(1.0).realms == {"isp-a.example": 2, "isp-b.example": 2}


def test_failures_pings_and_report_text_json() -> None:
    gen = LoadGenerator(LoadPlan(count=3, rate=1000.0), ping=True)
    assert gen.due_starts(0.0) == [0]
    assert gen.due_starts(0.01) == [1, 2]
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_up(1, 0.2, 0.19)
    gen.subscriber_failed(2, 0.3, "auth-failed")
    assert not gen.settled  # pings outstanding
    gen.subscriber_pinged(0, 2, 2)
    gen.subscriber_pinged(1, 2, 0)
    assert gen.settled
    r = gen.report(1.0)
    assert not r.success
    assert r.failures == {"auth-failed": 1}
    assert (r.ping_ok, r.ping_failed, r.pings_sent, r.pings_received) == (1, 1, 4, 2)
    text = r.to_text()
    assert "2/3 came up" in text and "auth-failed=1" in text and "NOT OK" in text
    data = json.loads(r.to_json())
    assert data["failures"] == {"auth-failed": 1} and data["up"] == 2


def test_churn_and_redial() -> None:
    plan = LoadPlan(count=2, rate=1000.0, churn_mean=1.0, churn_actions=("padt",), redial=True)
    gen = LoadGenerator(plan, rng=random.Random(4))
    assert gen.due_starts(0.0) == [0]
    assert gen.due_starts(0.01) == [1]
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_up(1, 0.1, 0.1)
    t = gen.get_timer()
    assert t is not None and t > 0.1
    churn = gen.due_churn(100.0)
    assert sorted(churn) == [(0, "padt"), (1, "padt")]
    for i, _ in churn:
        gen.subscriber_down(i, 100.0, "local-padt", churn=True)
    assert sorted(gen.due_starts(100.0) + gen.due_starts(100.1)) == [0, 1]
    assert gen.report(101.0).churned == {"padt": 2}
    assert gen.report(101.0).downs == {}


def test_unexpected_down_is_reported() -> None:
    gen = LoadGenerator(LoadPlan(count=1))
    gen.due_starts(0.0)
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_down(0, 5.0, "padt")
    r = gen.report(6.0)
    assert r.downs == {"padt": 1} and r.currently_up == 0


def test_plan_validation() -> None:
    for kw in ({"rate": 0}, {"outstanding": 0}, {"auth": "eap"}, {"churn_actions": ("x",)}):
        with pytest.raises(ValueError):
            LoadPlan(count=1, **kw)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_is_an_element_and_monotone(values: list[float], p: float) -> None:
    v = percentile(values, p)
    assert v in values
    assert percentile(values, 100) == max(values)
    hi = percentile(values, min(100.0, p + 10))
    assert v is not None and hi is not None and v <= hi
    assert percentile([], 50) is None


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(0, 60),
    rate=st.floats(1, 5000),
    outstanding=st.integers(1, 20),
    outcomes=st.lists(st.sampled_from(["up", "fail"]), min_size=60, max_size=60),
)
def test_every_subscriber_started_exactly_once(
    count: int, rate: float, outstanding: int, outcomes: list[str]
) -> None:
    gen = LoadGenerator(LoadPlan(count=count, rate=rate, outstanding=outstanding))
    started: list[int] = []
    now = 0.0
    for _ in range(100_000):
        new = gen.due_starts(now)
        assert len(gen.in_setup) <= outstanding
        started += new
        for i in new:
            if outcomes[i] == "up":
                gen.subscriber_up(i, now, 0.0)
            else:
                gen.subscriber_failed(i, now, "x")
        if gen.settled:
            break
        t = gen.get_timer()
        assert t is not None
        now = max(now, t)
    assert sorted(started) == list(range(count))
    r = gen.report(now)
    assert r.up + r.failed == count


def test_churn_run_settles_after_the_first_round_and_churned_pings_do_not_fail() -> None:
    plan = LoadPlan(count=2, rate=1000.0, churn_mean=1.0, redial=True)
    gen = LoadGenerator(plan, rng=random.Random(1), ping=True)
    gen.due_starts(0.0)
    gen.due_starts(0.01)
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_up(1, 0.1, 0.1)
    gen.subscriber_pinged(0, 1, 1)
    assert not gen.first_round_settled  # 1 still pinging
    gen.subscriber_down(1, 0.2, "local-padt", churn=True)  # churned mid-ping
    assert gen.first_round_settled
    r = gen.report(1.0)
    assert r.ping_failed == 0 and r.success and r.setups == 2


def test_lost_sessions_redial_with_redial_lost() -> None:
    """--redial-lost: a session lost to the network (PADT from the AC) dials again; the down
    is still reported, and the second set-up counts as a setup, not a new subscriber."""
    gen = LoadGenerator(LoadPlan(count=2, rate=100.0, redial_lost=True))
    assert gen.due_starts(0.0) == [0]
    assert gen.due_starts(0.01) == [1]
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_up(1, 0.1, 0.1)
    gen.subscriber_down(0, 5.0, "padt")
    assert gen.due_starts(5.0) == [0]
    gen.subscriber_up(0, 5.2, 0.2)
    r = gen.report(6.0)
    assert r.downs == {"padt": 1}
    assert r.up == 2 and r.setups == 3 and r.currently_up == 2


def test_lost_sessions_stay_down_without_redial_lost() -> None:
    gen = LoadGenerator(LoadPlan(count=1, redial=True))
    gen.due_starts(0.0)
    gen.subscriber_up(0, 0.1, 0.1)
    gen.subscriber_down(0, 5.0, "padt")
    assert gen.due_starts(6.0) == []
    assert gen.report(6.0).currently_up == 0


def test_failed_setups_dial_again_with_redial_failed() -> None:
    """--redial-failed: a set-up that failed (RADIUS down during a soak fault) is started
    again, like a real CPE; the failure is still reported."""
    gen = LoadGenerator(LoadPlan(count=1, rate=100.0, redial_failed=True))
    assert gen.due_starts(0.0) == [0]
    gen.subscriber_failed(0, 1.0, "auth-failed")
    assert gen.due_starts(1.0) == [0]
    gen.subscriber_up(0, 1.2, 0.2)
    r = gen.report(2.0)
    assert r.failures == {"auth-failed": 1} and r.currently_up == 1 and r.setups == 1


def test_failed_setups_stay_down_without_redial_failed() -> None:
    gen = LoadGenerator(LoadPlan(count=1, rate=100.0, redial=True, redial_lost=True))
    gen.due_starts(0.0)
    gen.subscriber_failed(0, 1.0, "auth-failed")
    assert gen.due_starts(2.0) == []
