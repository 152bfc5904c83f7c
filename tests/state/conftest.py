"""Fixtures for the state store tests: one redis-server per module, a fresh key prefix per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from ops.lab.redis_server import RedisServer
from tests.support import require_binary


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    binary = require_binary("redis-server")
    server = RedisServer(binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"
