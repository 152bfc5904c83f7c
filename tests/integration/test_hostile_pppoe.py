"""Hostile PPPoE against a running broker (real FreeRADIUS and l2tpns, simulated CPEs):
PADI and PADR floods from random MACs are rate-limited and counted, the broker's memory
stays flat (bounded by the PADI rate table), a subscriber that dials during a flood still
gets its session and the established ones keep passing traffic; truncated, inconsistent
and oversized frames are dropped and counted."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from ops.lab.broker_lab import LNS_A
from ops.lab.hostile import HostileLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

#: Growth of the broker's RSS allowed across floods once the first one filled the
#: bounded structures (PADI rate table: 8192 MACs): allocator noise, not state.
FLAT_KIB = 4096
#: What the first flood may add at most (rate table full, buffers, interpreter caches).
FIRST_FLOOD_KIB = 32768
PADO_PER_S = 1000.0  # broker default (pppoe.pado_per_s); also the bucket's burst

PADI_OUTCOMES = (
    "pppoe/tx_pado",
    "pppoe/padi_rate_limited",
    "pppoe/pado_rate_limited",
    "pppoe/padi_full",
    "pppoe/service_unavailable",
    "pppoe/bad_service_name_tag",
    "pppoe/wrong_dst",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[HostileLab]:
    require_root()
    for binary in ("freeradius", "l2tpns"):
        require_binary(binary)
    lab = HostileLab(retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def spliced(lab: HostileLab) -> dict[int, dict]:
    return {r["id"]: r for r in lab.control("/sessions") if r["state"] == "spliced"}


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def settled(lab: HostileLab) -> dict[str, float]:
    """/metrics once the broker has read everything queued (two equal readings)."""
    last: list[dict[str, float]] = []

    def same() -> bool:
        m = lab.metrics()
        stable = bool(last) and m.get("rawether/rx_frames") == last[-1].get("rawether/rx_frames")
        last.append(m)
        return stable

    assert poll(same, 30, interval=0.5)
    return last[-1]


def flood(
    lab: HostileLab, kind: str, seed: int, *, count: int = 20000, duration: float = 0
) -> dict:
    args = ["flood", "--interface", lab.access_ifaces[0][0], "--kind", kind, "--seed", str(seed)]
    args += ["--count", str(count), "--duration", str(duration)]
    if kind == "padr":
        args += ["--dst", lab.lac_mac()]
    return dict(lab.run_in("sub", *args))


def test_floods_rate_limited_memory_flat_subscribers_served(lab: HostileLab) -> None:
    proc, _ = lab.subscribers(
        2, user_template="user{i}@isp-a.example", rate=10, hold=-1, ping=LNS_A,
        extra=["--ping-count", "10000", "--ping-interval", "0.3"], background=True,
    )  # fmt: skip
    late: subprocess.Popen[bytes] | None = None
    try:
        assert poll(lambda: len(spliced(lab)) == 2, 40, interval=0.3), lab.broker_log()[-3000:]
        established = spliced(lab)
        rss = [lab.broker_rss_kib()]
        before = settled(lab)
        t_before = time.monotonic()
        first = flood(lab, "padi", seed=1, count=65536)
        m1 = settled(lab)
        window = time.monotonic() - t_before  # every PADO of this flood was sent inside it
        rss.append(lab.broker_rss_kib())
        d = delta(before, m1)
        # every PADI that reached the broker has exactly one outcome, and PADOs are capped
        assert d["pppoe/rx_padi"] == sum(d.get(k, 0.0) for k in PADI_OUTCOMES), d
        assert d.get("pppoe/pado_rate_limited", 0) > 0, d
        assert d.get("pppoe/tx_pado", 0) <= PADO_PER_S * window + PADO_PER_S, (d, window)
        # A subscriber dials while PADIs and PADRs (forged cookies) flood the port.
        late, late_out = lab.subscribers(
            1, user_template="user{i}@isp-a.example", rate=10, hold=-1,
            extra=["--first-index", "7", "--setup-timeout", "60"], background=True,
        )  # fmt: skip
        t0 = time.monotonic()
        before = m1
        padi = flood(lab, "padi", seed=2, count=0, duration=3.0)
        padr = flood(lab, "padr", seed=3, count=20000)
        flood_end = time.monotonic()
        assert poll(lambda: len(spliced(lab)) == 3, 60, interval=0.3), lab.broker_log()[-3000:]
        up_after = time.monotonic() - t0
        m2 = settled(lab)
        d = delta(before, m2)
        assert d["pppoe/rx_padi"] == sum(d.get(k, 0.0) for k in PADI_OUTCOMES), d
        # every PADR but the genuine subscriber's (and its retransmissions) had a forged cookie
        assert 0 < d.get("pppoe/bad_cookie", 0) >= d.get("pppoe/rx_padr", 0) - 3, d
        assert d.get("pppoe/sessions_opened", 0) == 1, d  # only the genuine subscriber
        assert set(established) <= set(spliced(lab))  # nobody lost a session
        rss.append(lab.broker_rss_kib())
        flood(lab, "padi", seed=4, count=65536)
        flood(lab, "padr", seed=5, count=20000)
        settled(lab)
        rss.append(lab.broker_rss_kib())
        assert rss[1] - rss[0] <= FIRST_FLOOD_KIB, rss
        assert max(rss[1:]) - rss[1] <= FLAT_KIB, rss
        # traffic still passes on the established sessions after all that
        start = {i: spliced(lab)[i]["output_packets"] for i in established}
        assert poll(
            lambda: all(spliced(lab)[i]["output_packets"] >= start[i] + 3 for i in start),
            20,
            interval=0.3,
        ), (start, spliced(lab))
        figures = {
            "rss_kib": rss,
            "first_flood": first,
            "padi_flood": padi,
            "padr_flood": padr,
            "late_subscriber_up_after_s": round(up_after, 2),
            "flood_seconds": round(flood_end - t0, 2),
            "counters": d,
        }
        (lab.dir / "pppoe-figures.json").write_text(json.dumps(figures))
        print(json.dumps(figures))
        late.terminate()
        late.communicate(timeout=30)
        assert json.loads(late_out.read_text())["up"] == 1
    finally:
        if late is not None:
            stop_process(late)
        stop_process(proc)


def test_truncated_oversized_and_broken_frames_are_counted(lab: HostileLab) -> None:
    before = settled(lab)
    out = lab.run_in(
        "sub", "pppoe-broken", "--interface", lab.access_ifaces[0][0], "--dst", lab.lac_mac()
    )
    assert out["sent"] == out["frames"]
    m = settled(lab)
    d = delta(before, m)
    dropped = (
        d.get("pppoe/malformed", 0)
        + d.get("pppoe/bad_service_name_tag", 0)
        + d.get("rawether/malformed_session", 0)
        + d.get("rawether/runts", 0)
        + d.get("rawether/other_host", 0)
        + d.get("callflow/session_frame_unknown", 0)
    )
    # the VLAN-tagged frame never reaches the PPPoE sockets; every other one is counted
    assert d.get("rawether/rx_frames", 0) == out["frames"] - 1, d
    assert dropped >= out["frames"] - 1, d
    assert d.get("pppoe/malformed", 0) >= 5 and d.get("rawether/malformed_session", 0) >= 2, d
    assert d.get("pppoe/tx_pado", 0) == 0 and d.get("pppoe/sessions_opened", 0) == 0, d
    assert lab.brokers[0].poll() is None
    # and the port still serves a subscriber
    report = lab.subscribers(1, user_template="user{i}@isp-b.example", rate=10, timeout=60)
    assert report["up"] == 1, report["_output"][-2000:]
