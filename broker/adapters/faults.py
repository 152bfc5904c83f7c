"""Counting adapter faults: a bad frame, a failed send or a callback bug costs a counter and one
log line per kind (counter + exception type), never the reactor and never a flood of logs."""

from __future__ import annotations

from twisted.logger import Logger

_log = Logger(namespace="broker.adapters")


class Faults:
    """``faults(counter, exc, what="")``: add one to ``counters[counter]`` and log the first
    fault of each kind under ``label``."""

    def __init__(self, label: str, counters: dict[str, int]) -> None:
        self.label = label
        self.counters = counters
        self._logged: set[str] = set()

    def __call__(self, counter: str, exc: BaseException, what: str = "") -> None:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        kind = f"{counter}:{type(exc).__name__}"
        if kind in self._logged:
            return
        self._logged.add(kind)
        _log.error(
            "{label}: {counter}{what}: {error!r} (logged once per kind)",
            label=self.label,
            counter=counter,
            what=f" ({what})" if what else "",
            error=exc,
        )
