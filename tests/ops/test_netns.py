from __future__ import annotations

import subprocess

import pytest

from ops.lab.netns import Netns, namespaces, poll, unique_name, veth
from tests.support import require_root


def test_unique_name_fits_ifnamsiz() -> None:
    names = {unique_name("a-very-long-prefix") for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 15 for n in names)


@pytest.mark.integration
def test_two_namespaces_ping_over_veth() -> None:
    require_root()
    with namespaces("t-a", "t-b") as (a, b):
        veth(a, b, "192.0.2.1/24", "192.0.2.2/24")
        out = a.run(["ping", "-c1", "-W2", "192.0.2.2"])
        assert "1 received" in out.stdout
        proc = b.popen(["sleep", "30"])
        assert poll(lambda: proc.pid in b.pids() or b.pids(), 5)
        name = a.name
    assert name not in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    assert proc.poll() is not None


@pytest.mark.integration
def test_run_reports_failure_with_command() -> None:
    require_root()
    with Netns("t-f") as ns, pytest.raises(RuntimeError, match="exited"):
        ns.run(["false"])
