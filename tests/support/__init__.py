"""Helpers shared by tests: facility checks that fail (never skip) under CI."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _absent(reason: str) -> None:
    """Skip when a facility is truly absent on a developer machine; under CI it must exist."""
    if IN_CI:
        pytest.fail(f"required facility absent in CI: {reason}")
    print(f"SKIPPED (facility absent): {reason}")
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        _absent("needs root for network namespaces / raw sockets")


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        _absent(f"binary {name!r} not installed (ops/setup.sh installs it)")
        raise AssertionError("unreachable")
    return path
