"""Shared state: the StateStore protocol, the in-process backend and the Redis backend."""

from __future__ import annotations

from broker.state.base import (
    Caps,
    DeferredStateStore,
    Reservation,
    SessionRecord,
    StateCore,
    StateStore,
    run_inline,
)
from broker.state.keys import Keys
from broker.state.memory import MemoryStateCore

__all__ = [
    "Caps",
    "DeferredStateStore",
    "Keys",
    "MemoryStateCore",
    "Reservation",
    "SessionRecord",
    "StateCore",
    "StateStore",
    "run_inline",
]
