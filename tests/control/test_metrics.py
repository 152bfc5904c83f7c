from __future__ import annotations

import pytest

from broker.control.metrics import Registry


def test_render_counter_gauge_histogram() -> None:
    reg = Registry()
    c = reg.counter("setup_failures_total", "Failed set-ups by reason", ("reason",))
    g = reg.gauge("sessions", "Sessions by state", ("state",))
    h = reg.histogram("setup_seconds", "Set-up latency", buckets=(0.1, 1.0))
    reg.gauge("spool_depth", "Records waiting", collect=lambda: {(): 3.0})
    c.inc("radius-reject")
    c.inc("radius-reject")
    c.inc('odd"reason')
    g.set(5, "spliced")
    h.observe(0.05)
    h.observe(0.5)
    h.observe(7)
    text = reg.render()
    assert "# TYPE l2tp_broker_setup_failures_total counter" in text
    assert 'l2tp_broker_setup_failures_total{reason="radius-reject"} 2' in text
    assert 'l2tp_broker_setup_failures_total{reason="odd\\"reason"} 1' in text
    assert 'l2tp_broker_sessions{state="spliced"} 5' in text
    assert 'l2tp_broker_setup_seconds_bucket{le="0.1"} 1' in text
    assert 'l2tp_broker_setup_seconds_bucket{le="1"} 2' in text
    assert 'l2tp_broker_setup_seconds_bucket{le="+Inf"} 3' in text
    assert "l2tp_broker_setup_seconds_count 3" in text
    assert "l2tp_broker_setup_seconds_sum 7.55" in text
    assert "l2tp_broker_spool_depth 3" in text
    assert c.get("radius-reject") == 2


def test_unlabelled_empty_metrics_render_zero_and_names_are_unique() -> None:
    reg = Registry()
    reg.counter("malformed_total", "Malformed packets")
    reg.histogram("radius_seconds", "RADIUS latency", buckets=(1.0,))
    text = reg.render()
    assert "l2tp_broker_malformed_total 0" in text
    assert 'l2tp_broker_radius_seconds_bucket{le="+Inf"} 0' in text
    with pytest.raises(ValueError, match="twice"):
        reg.counter("malformed_total", "again")


def test_counter_series_beyond_max_series_are_added_up_under_other() -> None:
    r = Registry()
    c = r.counter("lns_lockouts_total", "LNS lockouts", ("lns",), max_series=2)
    for lns in ("a", "b", "c", "d", "a"):
        c.inc(lns)
    assert c.values == {("a",): 2.0, ("b",): 1.0, ("_other",): 2.0}
    c.inc("c", by=3)
    assert c.get("_other") == 5.0 and len(c.values) == 3
    assert 'l2tp_broker_lns_lockouts_total{lns="_other"} 5' in r.render()
