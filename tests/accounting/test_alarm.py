"""SpoolAlarm: thresholds with hysteresis for the spool depth and the free disk space."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.accounting.alarm import AlarmChange, AlarmKind, SpoolAlarm


def test_records_alarm_raised_at_threshold_and_cleared_below_ninety_percent() -> None:
    a = SpoolAlarm(100)
    assert a.clear_below == 90
    assert a.update_depth(99) is None and not a.records_active
    assert a.update_depth(100) == AlarmChange(AlarmKind.RECORDS, True, 100, 100)
    assert a.active == [AlarmKind.RECORDS]
    assert a.update_depth(5000) is None  # raised once, not per check
    assert a.update_depth(90) is None and a.records_active  # hysteresis band
    assert a.update_depth(89) == AlarmChange(AlarmKind.RECORDS, False, 89, 90)
    assert a.active == [] and a.raised[AlarmKind.RECORDS] == 1
    assert a.update_depth(99) is None and not a.records_active


def test_threshold_of_one_clears_only_when_empty() -> None:
    a = SpoolAlarm(1)
    assert a.clear_below == 1
    assert a.update_depth(1) is not None and a.update_depth(1) is None
    assert a.update_depth(0) == AlarmChange(AlarmKind.RECORDS, False, 0, 1)


def test_disk_alarm_with_hysteresis_and_unknown_free_space() -> None:
    a = SpoolAlarm(10, min_free_bytes=1000)
    assert a.disk_clear_above == 1250
    assert a.update_free(None) is None and a.free_bytes is None
    assert a.update_free(1000) is None
    assert a.update_free(999) == AlarmChange(AlarmKind.DISK, True, 999, 1000)
    assert a.update_free(None) is None and a.disk_active  # unknown keeps the state
    assert a.update_free(1250) is None and a.disk_active
    assert a.update_free(1251) == AlarmChange(AlarmKind.DISK, False, 1251, 1250)


def test_disk_alarm_disabled_with_zero_floor() -> None:
    a = SpoolAlarm(10, min_free_bytes=0)
    assert a.update_free(0) is None and not a.disk_active and a.free_bytes == 0


@pytest.mark.parametrize(
    "kw",
    [{"threshold": 0}, {"threshold": 5, "clear_fraction": 0.0}, {"threshold": 5,
     "min_free_bytes": -1}, {"threshold": 5, "disk_clear_factor": 0.5}],
)  # fmt: skip
def test_bad_parameters_refused(kw: dict[str, float]) -> None:
    threshold = int(kw.pop("threshold"))
    with pytest.raises(ValueError):
        SpoolAlarm(threshold, **kw)  # type: ignore[arg-type]


def test_exact_depth_needed_only_at_or_above_the_clear_level() -> None:
    a = SpoolAlarm(100)
    assert not a.needs_exact_depth(89) and a.needs_exact_depth(90)


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.integers(1, 200),
    fraction=st.floats(0.05, 1.0),
    depths=st.lists(st.integers(0, 400), max_size=60),
)
def test_records_alarm_matches_the_hysteresis_model(
    threshold: int, fraction: float, depths: list[int]
) -> None:
    a = SpoolAlarm(threshold, clear_fraction=fraction)
    assert 1 <= a.clear_below <= threshold
    active = False
    for d in depths:
        change = a.update_depth(d)
        want = (d >= threshold) if not active else (d >= a.clear_below)
        assert a.records_active is want
        # a change is reported exactly when the state flips, with the depth that flipped it
        assert (change is not None) is (want != active)
        if change is not None:
            assert change.active is want and change.value == d and change.kind is AlarmKind.RECORDS
        active = want
