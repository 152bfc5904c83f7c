"""Spool alarms (issue 9 item 4, "spool size alarms"): pure threshold logic with hysteresis.

The accounting spool grows while the accounting servers are down or slow. Records are never
dropped because of an alarm (the spool is the billing record); the alarm only tells the
operator, through one log line, ``/metrics`` and ``/status``, before the disk fills up.

Two alarms, each raised when its level is reached and cleared only once the level is well
on the safe side again (hysteresis, so a spool hovering around the threshold does not flap):

- ``records``: records waiting in the spool >= ``threshold``; cleared below
  ``clear_fraction * threshold`` (default 90 %).
- ``disk``: free space on the spool's filesystem (``statvfs``, read by the caller) below
  ``min_free_bytes``; cleared above ``disk_clear_factor * min_free_bytes`` (default 125 %).
  ``min_free_bytes`` 0 disables it.

:class:`SpoolAlarm` has no clock and does no I/O: the accounting service feeds it the depth
and the free space and logs the :class:`AlarmChange` values it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

#: Default free-space floor on the spool's filesystem (a record is a few hundred octets:
#: 64 MiB still holds hundreds of thousands of them).
DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024


class AlarmKind(StrEnum):
    RECORDS = "spool_records"
    DISK = "spool_disk"


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm was raised (``active``) or cleared; ``value`` is the depth (records) or the
    free space (octets) that crossed ``level`` (the raise threshold or the clear level)."""

    kind: AlarmKind
    active: bool
    value: int
    level: int


class SpoolAlarm:
    """Threshold + hysteresis state of the spool alarms (see module docstring)."""

    def __init__(
        self,
        threshold: int,
        *,
        clear_fraction: float = 0.9,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        disk_clear_factor: float = 1.25,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"spool alarm threshold must be >= 1, not {threshold}")
        if not 0.0 < clear_fraction <= 1.0:
            raise ValueError(f"clear_fraction must be in (0, 1], not {clear_fraction}")
        if min_free_bytes < 0 or disk_clear_factor < 1.0:
            raise ValueError("min_free_bytes must be >= 0 and disk_clear_factor >= 1")
        self.threshold = threshold
        #: the alarm clears when the depth falls below this many records
        self.clear_below = max(1, math.ceil(threshold * clear_fraction))
        self.min_free_bytes = min_free_bytes
        self.disk_clear_above = int(min_free_bytes * disk_clear_factor)
        self.records_active = False
        self.disk_active = False
        self.depth = 0
        self.free_bytes: int | None = None
        self.raised = {AlarmKind.RECORDS: 0, AlarmKind.DISK: 0}

    @property
    def active(self) -> list[AlarmKind]:
        """The alarms currently raised."""
        out = []
        if self.records_active:
            out.append(AlarmKind.RECORDS)
        if self.disk_active:
            out.append(AlarmKind.DISK)
        return out

    def needs_exact_depth(self, upper_bound: int) -> bool:
        """Whether a cheap upper bound of the depth (e.g. last seq - first seq + 1) is not
        enough to decide: only a bound at or above the clear level needs an exact count."""
        return upper_bound >= self.clear_below

    def update_depth(self, depth: int) -> AlarmChange | None:
        self.depth = depth
        if not self.records_active and depth >= self.threshold:
            self.records_active = True
            self.raised[AlarmKind.RECORDS] += 1
            return AlarmChange(AlarmKind.RECORDS, True, depth, self.threshold)
        if self.records_active and depth < self.clear_below:
            self.records_active = False
            return AlarmChange(AlarmKind.RECORDS, False, depth, self.clear_below)
        return None

    def update_free(self, free_bytes: int | None) -> AlarmChange | None:
        """Free octets on the spool's filesystem (None: unknown, the state is kept)."""
        if free_bytes is None:
            return None
        self.free_bytes = free_bytes
        if self.min_free_bytes == 0:
            return None
        if not self.disk_active and free_bytes < self.min_free_bytes:
            self.disk_active = True
            self.raised[AlarmKind.DISK] += 1
            return AlarmChange(AlarmKind.DISK, True, free_bytes, self.min_free_bytes)
        if self.disk_active and free_bytes > self.disk_clear_above:
            self.disk_active = False
            return AlarmChange(AlarmKind.DISK, False, free_bytes, self.disk_clear_above)
        return None
