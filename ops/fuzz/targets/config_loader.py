"""Fuzz target: the broker configuration loader (broker/config/loader.py).

The input becomes the configuration file. Contract: ``load_config`` returns a
BrokerConfig or raises ConfigError (a located message naming the file), never any other
exception.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from broker.config.loader import ConfigError, load_config

_ROOT = Path(
    tempfile.mkdtemp(prefix="fuzz-config-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
)
atexit.register(shutil.rmtree, _ROOT, True)
_FILE = _ROOT / "broker.yaml"


def test_one_input(data: bytes) -> None:
    _FILE.write_bytes(data)
    try:
        load_config(_FILE)
    except ConfigError as exc:
        assert str(exc).startswith(str(_FILE)), str(exc)
