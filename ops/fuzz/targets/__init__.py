"""The fuzz targets: name -> module ``ops.fuzz.targets.<name>``.

Each module defines ``test_one_input(data: bytes) -> None``. It catches exactly the
documented error type of the code under test and returns; anything else (another
exception, an assertion about a round trip) escapes and is a crash.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

TARGETS: tuple[str, ...] = (
    "l2tp_control",
    "l2tp_data",
    "l2tp_avps",
    "l2tp_endpoint",
    "pppoe_discovery",
    "pppoe_session",
    "ppp_lcp",
    "ppp_auth",
    "radius_reply",
    "radius_tunnel",
    "radius_client",
    "radius_dynauth",
    "policy_loader",
    "config_loader",
)


def load(name: str) -> Callable[[bytes], None]:
    """The ``test_one_input`` of target ``name`` (imports its module)."""
    if name not in TARGETS:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}")
    module = importlib.import_module(f"ops.fuzz.targets.{name}")
    fn: Callable[[bytes], None] = module.test_one_input
    return fn
