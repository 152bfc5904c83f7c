"""End to end in namespaces: ``sim subscribers`` -> the broker daemon (+ FreeRADIUS) -> ``sim lns``.

    sub ns ──(PPPoE veth)── lac ns [l2tp-broker run, FreeRADIUS] ──veth 198.51.100.0/24── lns ns
                                                                                  [sim lns]

20 subscribers come up through the broker, get their addresses from the LNS emulator with
IPCP through the splice, ping the LNS's PPP address, and hang up; the broker's
``show sessions`` is checked while they are held, and again (empty) afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
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


@pytest.mark.integration
def test_twenty_subscribers_through_the_broker_to_the_lns_emulator(tmp_path: Path) -> None:
    require_root()
    require_binary("freeradius")
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
            "--status-file", str(lns_status),
        ])  # fmt: skip
        broker = start(lac, "broker", ["run", "-c", str(_config(tmp_path, lac_if))])
        control = ControlClient(f"unix:{tmp_path / 'control.sock'}", timeout=5)

        def ready() -> bool:
            if broker.poll() is not None:
                raise AssertionError(f"broker exited {broker.returncode}\n{dump()}")
            try:
                return bool(control.get("/status"))
            except ControlError:
                return False

        assert poll(ready, 30), dump()
        assert poll(lns_status.exists, 15), dump()

        ready_file = tmp_path / "ready.json"
        report_file = tmp_path / "report.json"
        sim = start(sub, "subscribers", [
            "sim", "subscribers", "--interface", sub_if, "--count", str(COUNT), "--rate", "50",
            "--outstanding", "10", "--user-template", "user{i}@isp-a.example",
            "--auth", "mixed", "--ping", LNS_PPP, "--ping-count", "2", "--ping-interval", "0.3",
            "--hold", "-1", "--ready-file", str(ready_file), "--json-out", str(report_file),
            "--timeout", "50",
        ])  # fmt: skip
        assert poll(lambda: ready_file.exists() or sim.poll() is not None, 40), dump()
        assert ready_file.exists(), dump()
        early = json.loads(ready_file.read_text())
        assert early["up"] == COUNT, dump()

        def sessions() -> list[dict[str, Any]]:
            result = control.get("/sessions")
            return list(result if isinstance(result, list) else result.get("sessions", []))

        listed = poll(lambda: len(sessions()) == COUNT and sessions(), 10)
        assert listed, f"{sessions()}\n{dump()}"
        text = json.dumps(listed)
        assert "isp-a.example" in text and LNS in text

        status = json.loads(lns_status.read_text())
        assert poll(lambda: json.loads(lns_status.read_text())["ipcp_up"] == COUNT, 5), status

        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
        assert sim.returncode == 0, dump()
        report = json.loads(report_file.read_text())
        assert report["up"] == COUNT and report["failed"] == 0
        assert report["ping_ok"] == COUNT
        assert report["pings_received"] == 2 * COUNT
        assert report["success"] is True
        assert report["latency_ms"]["p99"] is not None
        assert report["realms"] == {"isp-a.example": COUNT}
        # every call ended: the broker lists no sessions, the LNS none either
        assert poll(lambda: sessions() == [], 15), f"{sessions()}\n{dump()}"
        assert poll(lambda: json.loads(lns_status.read_text())["sessions"] == 0, 15), dump()
    finally:
        for proc in reversed(procs):
            stop_process(proc, timeout=10)
        if radius is not None:
            radius.stop()
        for ns in reversed(made):
            ns.close()
