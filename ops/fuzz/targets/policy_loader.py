"""Fuzz target: the YAML realm policy loader (broker/policy/loader.py).

Octet 0 picks the file the rest becomes: even -> ``realms/fuzz.yaml`` beside the
repository's ``defaults.yaml``, odd -> ``defaults.yaml`` beside the repository's example
realm. Contract: ``load_policies`` returns a PolicySet or raises PolicyError (a located
message naming the file), never any other exception.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from broker.policy.loader import PolicyError, load_policies

_REPO = Path(__file__).resolve().parents[3]
_DEFAULTS = (_REPO / "policies" / "defaults.yaml").read_bytes()
_REALM = (_REPO / "policies" / "realms" / "isp-a.example.yaml").read_bytes()

_ROOT = Path(
    tempfile.mkdtemp(prefix="fuzz-policy-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
)
atexit.register(shutil.rmtree, _ROOT, True)
(_ROOT / "realms").mkdir()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1 == 0:
        defaults, realm = _DEFAULTS, data[1:]
    else:
        defaults, realm = data[1:], _REALM
    (_ROOT / "defaults.yaml").write_bytes(defaults)
    (_ROOT / "realms" / "fuzz.yaml").write_bytes(realm)
    try:
        load_policies(_ROOT)
    except PolicyError as exc:
        assert str(exc).startswith(str(_ROOT)), str(exc)
