"""Load generator scheduling (pure): which subscriber starts when, churn, and the report.

N subscribers are started at ``rate`` per second (a token bucket with a burst of one tick)
with at most ``outstanding`` setups in progress; user names come from templates (realm mix:
subscriber ``i`` uses template ``i % len(templates)``, ``{i}`` is replaced by its index), the
authentication method from ``auth`` ("chap", "pap" or "mixed": alternating). Once up, a
subscriber can be churned after a random lifetime (exponential, mean ``churn_mean``) with one
of ``churn_actions`` ("padt", "power-off", "lcp-terminate") and optionally redialled.

The adapter/CLI owns the subscribers; this module only decides and records:
``due_starts(now)``, ``due_churn(now)``, ``subscriber_up/failed/down/pinged(...)``,
``get_timer()``, ``settled`` and :meth:`LoadGenerator.report`.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LoadGenerator", "LoadPlan", "LoadReport", "percentile"]

CHURN_ACTIONS = ("padt", "power-off", "lcp-terminate")
#: Token-bucket slack for float rounding (a start due "now" must not wait for the next tick).
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class LoadPlan:
    count: int
    rate: float = 100.0
    outstanding: int = 100
    user_templates: tuple[str, ...] = ("user{i}@example.net",)
    password: str = "secret"
    auth: str = "chap"  # chap | pap | mixed
    #: Mean session lifetime before churn (seconds); 0 disables churn.
    churn_mean: float = 0.0
    churn_actions: tuple[str, ...] = ("padt",)
    redial: bool = False
    #: Start index of the first subscriber (several generators on one setup).
    first_index: int = 0
    #: Subscribers whose session was lost (not churned, not hung up by us) dial again
    #: (mass redial after an LNS failure).
    redial_lost: bool = False
    #: Subscribers whose set-up failed dial again (as a real CPE does; soak under faults).
    redial_failed: bool = False

    def __post_init__(self) -> None:
        if self.count < 0 or self.rate <= 0 or self.outstanding < 1:
            raise ValueError("count >= 0, rate > 0 and outstanding >= 1 are required")
        if not self.user_templates:
            raise ValueError("at least one user template is required")
        if self.auth not in ("chap", "pap", "mixed"):
            raise ValueError("auth must be chap, pap or mixed")
        bad = [a for a in self.churn_actions if a not in CHURN_ACTIONS]
        if bad or not self.churn_actions:
            raise ValueError(f"churn actions must be among {CHURN_ACTIONS}")

    def username(self, i: int) -> str:
        template = self.user_templates[i % len(self.user_templates)]
        return template.replace("{i}", str(i + self.first_index))

    def auth_methods(self, i: int) -> tuple[str, ...]:
        if self.auth == "mixed":
            return ("chap",) if i % 2 == 0 else ("pap",)
        return (self.auth,)

    def realm(self, i: int) -> str:
        name = self.username(i)
        return name.split("@", 1)[1] if "@" in name else ""


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class LoadReport:
    requested: int
    started: int
    up: int
    failed: int
    currently_up: int
    #: Successful setups including redials (``up`` counts distinct subscribers).
    setups: int
    failures: dict[str, int]
    downs: dict[str, int]
    churned: dict[str, int]
    duration: float
    setup_rate: float
    latency_ms: dict[str, float | None]
    pings_sent: int
    pings_received: int
    ping_ok: int
    ping_failed: int
    realms: dict[str, int] = field(default_factory=dict)
    success: bool = False
    #: CPE LCP echo round trips (ms) while up: count, p50, p99, max (``--echo-interval``).
    echo_rtt_ms: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_text(self) -> str:
        lat = self.latency_ms

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        lines = [
            f"subscribers: {self.up}/{self.requested} came up, {self.failed} failed, "
            f"{self.currently_up} up now ({'OK' if self.success else 'NOT OK'})",
            f"setup rate: {self.setup_rate:.1f}/s ({self.setups} setups) over "
            f"{self.duration:.2f} s",
            "latency ms: "
            + " ".join(f"{k}={ms(lat.get(k))}" for k in ("min", "p50", "p90", "p99", "max")),
        ]
        if self.echo_rtt_ms.get("count"):
            e = self.echo_rtt_ms
            lines.append(
                f"LCP echo rtt ms: n={e['count']} p50={e['p50']} p99={e['p99']} max={e['max']}"
            )
        if self.pings_sent:
            lines.append(
                f"pings: {self.pings_received}/{self.pings_sent} answered; "
                f"{self.ping_ok} subscribers ok, {self.ping_failed} without an answer"
            )
        for title, table in (
            ("failures", self.failures),
            ("downs", self.downs),
            ("churned", self.churned),
            ("realms up", self.realms),
        ):
            if table:
                body = ", ".join(f"{k}={v}" for k, v in sorted(table.items()))
                lines.append(f"{title}: {body}")
        return "\n".join(lines) + "\n"


class LoadGenerator:
    """Schedules ``plan.count`` subscriber starts; indexes are 0..count-1."""

    def __init__(self, plan: LoadPlan, *, rng: random.Random | None = None, ping: bool = False):
        self.plan = plan
        self.rng = rng or random.Random()
        self.ping = ping
        self._next = 0  # next never-started index
        self._redial: list[int] = []
        self._tokens = 1.0
        self._last_refill: float | None = None
        self.first_start: float | None = None
        self.last_up: float | None = None
        self.in_setup: set[int] = set()
        self.up: dict[int, float] = {}  # index -> time it came up
        self.ever_up: set[int] = set()
        self.latencies: list[float] = []
        self.failures: Counter[str] = Counter()
        self.failed: set[int] = set()
        self.downs: Counter[str] = Counter()
        self.churned: Counter[str] = Counter()
        self.realms: Counter[str] = Counter()
        self._churn_at: dict[int, float] = {}
        self._ping_pending: set[int] = set()
        self._ping_settled: set[int] = set()  # indexes whose pings finished at least once
        self.pings_sent = 0
        self.pings_received = 0
        self.ping_ok = 0
        self.ping_failed = 0
        self.started = 0

    # -- scheduling ------------------------------------------------------------------------
    def _pending(self) -> bool:
        return bool(self._redial) or self._next < self.plan.count

    def _refill(self, now: float) -> None:
        if self._last_refill is None:
            self._last_refill = now
            return
        elapsed = max(0.0, now - self._last_refill)
        self._last_refill = now
        cap = max(1.0, self.plan.rate * 0.05)  # burst at most one 50 ms slice
        self._tokens = min(cap, self._tokens + elapsed * self.plan.rate)

    def due_starts(self, now: float) -> list[int]:
        """Indexes to start now (each is counted as in setup)."""
        self._refill(now)
        out: list[int] = []
        while (
            self._pending()
            and self._tokens >= 1.0 - _EPS
            and len(self.in_setup) < self.plan.outstanding
        ):
            if self._redial:
                i = self._redial.pop(0)
            else:
                i = self._next
                self._next += 1
            self._tokens -= 1.0
            self.in_setup.add(i)
            self.started += 1
            if self.first_start is None:
                self.first_start = now
            out.append(i)
        return out

    def due_churn(self, now: float) -> list[tuple[int, str]]:
        """(index, action) of up subscribers whose lifetime is over."""
        due = [i for i, t in self._churn_at.items() if t <= now]
        out = []
        for i in due:
            del self._churn_at[i]
            action = self.rng.choice(self.plan.churn_actions)
            self.churned[action] += 1
            out.append((i, action))
        return out

    def get_timer(self) -> float | None:
        """Next time something is due (None: only waiting for subscribers)."""
        best: float | None = None
        if self._pending() and len(self.in_setup) < self.plan.outstanding:
            if self._tokens >= 1.0 - _EPS or self._last_refill is None:
                best = self._last_refill or 0.0
            else:
                best = self._last_refill + (1.0 - self._tokens) / self.plan.rate
        if self._churn_at:
            c = min(self._churn_at.values())
            best = c if best is None else min(best, c)
        return best

    # -- results from the subscribers ------------------------------------------------------
    def subscriber_up(self, i: int, now: float, latency: float) -> None:
        self.in_setup.discard(i)
        self.up[i] = now
        self.ever_up.add(i)
        self.latencies.append(latency)
        self.last_up = now
        self.realms[self.plan.realm(i) or "-"] += 1
        if self.ping:
            self._ping_pending.add(i)
        if self.plan.churn_mean > 0:
            self._churn_at[i] = now + self.rng.expovariate(1.0 / self.plan.churn_mean)

    def subscriber_failed(self, i: int, now: float, reason: str) -> None:
        self.in_setup.discard(i)
        self.failed.add(i)
        self.failures[reason] += 1
        if self.plan.redial_failed:
            self._redial.append(i)

    def subscriber_down(self, i: int, now: float, reason: str, *, churn: bool = False) -> None:
        self.up.pop(i, None)
        self._churn_at.pop(i, None)
        if i in self._ping_pending:
            self._ping_pending.discard(i)
            self._ping_settled.add(i)
            if not churn:  # a churned session may hang up before its pings finished
                self.ping_failed += 1
        if not churn:
            self.downs[reason] += 1
            if self.plan.redial_lost:
                self._redial.append(i)
        elif self.plan.redial:
            self._redial.append(i)

    def subscriber_pinged(self, i: int, sent: int, received: int) -> None:
        if i not in self._ping_pending:
            return
        self._ping_pending.discard(i)
        self._ping_settled.add(i)
        self.pings_sent += sent
        self.pings_received += received
        if received > 0:
            self.ping_ok += 1
        else:
            self.ping_failed += 1

    @property
    def first_round_settled(self) -> bool:
        """Every subscriber was started and came up or failed at least once (churn runs)."""
        return (
            self._next >= self.plan.count
            and len(self.ever_up | self.failed) >= self.plan.count
            and (not self.ping or self.ever_up <= self._ping_settled)
        )

    @property
    def settled(self) -> bool:
        """Every subscriber started and its setup (and pings) finished."""
        return not self._pending() and not self.in_setup and not self._ping_pending

    # -- report ----------------------------------------------------------------------------
    def report(self, now: float) -> LoadReport:
        start = self.first_start if self.first_start is not None else now
        end = self.last_up if self.last_up is not None else now
        span = max(end - start, 1e-9)
        lat = [x * 1000.0 for x in self.latencies]
        up = len(self.ever_up)
        setups = len(self.latencies)
        success = (
            up == self.plan.count
            and not self.failures
            and (not self.ping or (self.ping_failed == 0 and self.ever_up <= self._ping_settled))
        )
        return LoadReport(
            requested=self.plan.count,
            started=self.started,
            up=up,
            failed=sum(self.failures.values()),
            currently_up=len(self.up),
            failures=dict(self.failures),
            downs=dict(self.downs),
            churned=dict(self.churned),
            duration=max(now - start, 0.0),
            setups=setups,
            setup_rate=(setups / span) if setups > 1 else float(setups),
            latency_ms={
                "min": min(lat) if lat else None,
                "p50": percentile(lat, 50),
                "p90": percentile(lat, 90),
                "p99": percentile(lat, 99),
                "max": max(lat) if lat else None,
            },
            pings_sent=self.pings_sent,
            pings_received=self.pings_received,
            ping_ok=self.ping_ok,
            ping_failed=self.ping_failed,
            realms=dict(self.realms),
            success=success,
        )
