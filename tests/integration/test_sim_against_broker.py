"""End to end in namespaces: ``sim subscribers`` -> the broker daemon (+ FreeRADIUS) -> ``sim lns``.

    sub ns ──(PPPoE veth)── lac ns [l2tp-broker run, FreeRADIUS] ──veth 198.51.100.0/24── lns ns
                                                                                  [sim lns]

20 subscribers come up through the broker, get their addresses from the LNS emulator with
IPCP through the splice, ping the LNS's PPP address, and hang up; the broker's
``show sessions`` is checked while they are held, and again (empty) afterwards. A second test
is the load regression guard: 500 subscribers (CHAP/PAP mix) at 250 setups/s must all come up
and be cleared again on both sides; it checks success and correctness, not time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_binary, require_root

ROOT = Path(__file__).resolve().parents[2]
LAC = "198.51.100.1"
LNS = "198.51.100.2"
RADIUS_SECRET = "sim-radius-secret"
TUNNEL_SECRET = "sim-tunnel-secret"
PASSWORD = "sim-password"
LNS_PPP = "203.0.113.1"
COUNT = 20

USERS = f"""\
DEFAULT Cleartext-Password := "{PASSWORD}"
\tService-Type = Framed-User,
\tFramed-Protocol = PPP,
\tTunnel-Type:1 = L2TP,
\tTunnel-Medium-Type:1 = IPv4,
\tTunnel-Server-Endpoint:1 = "{LNS}",
\tTunnel-Password:1 = "{TUNNEL_SECRET}",
\tTunnel-Preference:1 = 0,
\tTunnel-Assignment-Id:1 = "sim-lns"
"""


def _config(tmp: Path, iface: str) -> Path:
    pol = tmp / "policies"
    (pol / "realms").mkdir(parents=True)
    (pol / "defaults.yaml").write_text("policy:\n  tunnel_source: radius\n")
    (pol / "realms" / "isp-a.example.yaml").write_text(
        "realm: isp-a.example\nmatch: {kind: suffix, value: isp-a.example}\ntunnel_source: radius\n"
    )
    path = tmp / "broker.yaml"
    path.write_text(
        f"""\
node_id: sim-lac
interfaces: [{iface}]
pppoe: {{ac_name: sim-lac}}
ppp: {{auth: [chap, pap], echo_interval: 10}}
l2tp: {{listen: {LAC}, port: 1701, host_name: sim-lac, hide_avps: true}}
radius:
  nas_ip: {LAC}
  nas_identifier: sim-lac
  bind: {LAC}
  servers:
    - {{name: lab, address: {LAC}, port: 1812, secret: "env:SIM_RADIUS_SECRET",
        timeout: [1, 1, 2]}}
state: memory
policies: {pol}
state_dir: {tmp / "state"}
control: unix:{tmp / "control.sock"}
log: {{format: text, level: info}}
"""
    )
    return path


@contextlib.contextmanager
def sim_lab(tmp_path: Path, lns_args: list[str]) -> Iterator[Any]:
    """Namespaces, FreeRADIUS, ``sim lns`` and the broker; yields a namespace of helpers."""
    require_root()
    require_binary("freeradius")
    from types import SimpleNamespace

    from broker.control.client import ControlClient, ControlError
    from ops.lab.freeradius import FreeRadius, LabClient
    from ops.lab.netns import Netns, poll, stop_process, venv_python, veth

    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        SIM_RADIUS_SECRET=RADIUS_SECRET,
        SIM_LNS_SECRET=TUNNEL_SECRET,
        SIM_PASSWORD=PASSWORD,
    )
    py = venv_python()
    made: list[Netns] = []
    procs: list[subprocess.Popen[Any]] = []
    radius: FreeRadius | None = None
    logs: dict[str, Path] = {}

    def start(ns: Netns, name: str, args: list[str]) -> subprocess.Popen[Any]:
        log = tmp_path / f"{name}.log"
        logs[name] = log
        with log.open("wb") as fh:
            proc = ns.popen(
                [py, "-m", "broker", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                cwd=str(ROOT),
            )  # fmt: skip
        procs.append(proc)
        return proc

    def dump() -> str:
        return "\n".join(
            f"--- {n}\n{p.read_text(errors='replace')[-4000:]}" for n, p in logs.items()
        )

    try:
        sub, lac, lns = Netns("simsub"), Netns("simlac"), Netns("simlns")
        made += [sub, lac, lns]
        sub_if, lac_if = veth(sub, lac, None, None, prefix="s")
        veth(lac, lns, f"{LAC}/24", f"{LNS}/24", prefix="n")
        radius = FreeRadius(
            tmp_path / "radius", auth_port=1812, acct_port=1813,
            clients=[LabClient("lab", "198.51.100.0/24", RADIUS_SECRET)],
            address=LAC, netns=lac.name, users=USERS,
        )  # fmt: skip
        radius.start()
        lns_status = tmp_path / "lns.json"
        start(lns, "lns", [
            "sim", "lns", "--listen", LNS, "--port", "1701", "--pool", "203.0.113.0/24",
            "--status-file", str(lns_status), *lns_args,
        ])  # fmt: skip
        broker = start(lac, "broker", ["run", "-c", str(_config(tmp_path, lac_if))])
        control = ControlClient(f"unix:{tmp_path / 'control.sock'}", timeout=10)

        def ready() -> bool:
            if broker.poll() is not None:
                raise AssertionError(f"broker exited {broker.returncode}\n{dump()}")
            try:
                return bool(control.get("/status"))
            except ControlError:
                return False

        assert poll(ready, 30), dump()
        assert poll(lns_status.exists, 15), dump()

        def sessions() -> list[dict[str, Any]]:
            result = control.get("/sessions")
            return list(result if isinstance(result, list) else result.get("sessions", []))

        def lns_state() -> dict[str, Any]:
            data: dict[str, Any] = json.loads(lns_status.read_text())
            return data

        def subscribers(args: list[str]) -> subprocess.Popen[Any]:
            return start(sub, "subscribers", [
                "sim", "subscribers", "--interface", sub_if,
                "--user-template", "user{i}@isp-a.example", *args,
            ])  # fmt: skip

        yield SimpleNamespace(
            dump=dump, sessions=sessions, lns_state=lns_state, subscribers=subscribers, poll=poll
        )
    finally:
        for proc in reversed(procs):
            stop_process(proc, timeout=10)
        if radius is not None:
            radius.stop()
        for ns in reversed(made):
            ns.close()


def _run_and_hold(lab: Any, tmp_path: Path, count: int, args: list[str]) -> dict[str, Any]:
    """Start ``count`` subscribers held until SIGTERM; check both sides; hang up; report."""
    ready_file = tmp_path / "ready.json"
    report_file = tmp_path / "report.json"
    sim = lab.subscribers([
        "--count", str(count), "--hold", "-1", "--ready-file", str(ready_file),
        "--json-out", str(report_file), "--timeout", "50", *args,
    ])  # fmt: skip
    assert lab.poll(lambda: ready_file.exists() or sim.poll() is not None, 45), lab.dump()
    assert ready_file.exists(), lab.dump()
    early = json.loads(ready_file.read_text())
    assert early["up"] == count and early["failed"] == 0, lab.dump()

    listed = lab.poll(lambda: len(lab.sessions()) == count and lab.sessions(), 10)
    assert listed, f"{len(lab.sessions())} sessions listed\n{lab.dump()}"
    text = json.dumps(listed)
    assert "isp-a.example" in text and LNS in text
    assert lab.poll(lambda: lab.lns_state()["ipcp_up"] == count, 5), lab.lns_state()

    sim.send_signal(signal.SIGTERM)
    sim.wait(30)
    assert sim.returncode == 0, lab.dump()
    report: dict[str, Any] = json.loads(report_file.read_text())
    assert report["up"] == count and report["failed"] == 0 and report["success"] is True
    assert report["realms"] == {"isp-a.example": count}
    assert report["latency_ms"]["p99"] is not None
    # every call ended: the broker lists no sessions, the LNS none either
    assert lab.poll(lambda: lab.sessions() == [], 15), f"{lab.sessions()[:3]}\n{lab.dump()}"
    assert lab.poll(lambda: lab.lns_state()["sessions"] == 0, 15), lab.dump()
    return report


@pytest.mark.integration
def test_twenty_subscribers_through_the_broker_to_the_lns_emulator(tmp_path: Path) -> None:
    with sim_lab(tmp_path, []) as lab:
        report = _run_and_hold(lab, tmp_path, COUNT, [
            "--rate", "50", "--outstanding", "10", "--auth", "mixed", "--ping", LNS_PPP,
            "--ping-count", "2", "--ping-interval", "0.3",
        ])  # fmt: skip
        assert report["ping_ok"] == COUNT
        assert report["pings_received"] == 2 * COUNT


@pytest.mark.integration
def test_load_regression_guard_500_subscribers(tmp_path: Path) -> None:
    """Success and correctness under a small load (not timing: CI machines vary)."""
    with sim_lab(tmp_path, ["--receive-window", "64", "--reuse-addresses"]) as lab:
        report = _run_and_hold(lab, tmp_path, 500, [
            "--rate", "250", "--outstanding", "200", "--auth", "mixed", "--setup-timeout", "40",
        ])  # fmt: skip
        assert report["downs"] == {}


@pytest.mark.integration
def test_lns_refusing_calls_fails_every_subscriber_with_a_reason(tmp_path: Path) -> None:
    """``sim lns --reject-result 2``: the broker ends each call with a CHAP/PAP Failure; the
    load generator reports the reason and exits non-zero."""
    with sim_lab(tmp_path, ["--reject-result", "2"]) as lab:
        report_file = tmp_path / "report.json"
        sim = lab.subscribers([
            "--count", "5", "--rate", "20", "--auth", "mixed", "--setup-timeout", "20",
            "--json-out", str(report_file), "--timeout", "40",
        ])  # fmt: skip
        sim.wait(45)
        assert sim.returncode == 1, lab.dump()
        report = json.loads(report_file.read_text())
        assert report["up"] == 0 and report["failed"] == 5 and report["success"] is False
        assert report["failures"] == {"auth-failed": 5}, lab.dump()
        assert lab.poll(lambda: lab.sessions() == [], 10), lab.dump()
