"""Kernel data plane lab and benchmark: the broker runs INSIDE a qemu guest (Debian 6.1 kernel
with ppp/pppoe/l2tp), with real pppd PPPoE clients and an xl2tpd + pppd LNS in guest network
namespaces, and FreeRADIUS on the host.

::

    host netns kdp-*: FreeRADIUS 192.0.2.1 ── bridge ── tap ── eth0 (guest, 192.0.2.2)
    guest:
      c-* netns: pppd + pppoe.so on a macvlan of accp
      accp ═ veth ═ acc0 ── broker (guest root netns: PPPoE on acc0, L2TP 198.51.100.1:1701)
      core0 198.51.100.1 ═ veth ═ core1 198.51.100.10 (netns lns: xl2tpd + pppd, iperf3 -s)
      ceiling: netns ca 203.0.113.1 ═ veth ═ bridge brc ═ veth ═ netns cb 203.0.113.2

:class:`KernelDataplaneLab` is used by ``tests/integration/test_vm_kernel_dataplane.py``.
``python -m ops.bench.vm_dataplane`` measures, in one guest run, iperf3 TCP throughput from a
pppd client to the LNS through the kernel data plane and through the userspace one (the broker
restarted with ``dataplane: userspace``), and the same guest's plain veth/bridge forwarding
(the ceiling), in both directions, with guest CPU seconds (``/proc/stat``) per run, and prints
JSON (``--json``) or a table with the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # pragma: no cover - when run as a script
    sys.path.insert(0, str(ROOT))

from ops.lab.broker_lab import (  # noqa: E402
    PASSWORD,
    POLICY_DEFAULTS,
    RADIUS_SECRET,
    TUNNEL_SECRET,
    users_file,
)
from ops.lab.freeradius import FreeRadius, LabClient  # noqa: E402
from ops.lab.netns import Netns, bridge, poll  # noqa: E402
from ops.vm.guest import Guest, GuestProcess, random_mac  # noqa: E402
from ops.vm.interop import InteropLab, LnsSpec  # noqa: E402

__all__ = ["KernelDataplaneLab", "main"]

HOST_ADDR = "192.0.2.1"
GUEST_ADDR = "192.0.2.2"
LAC_ADDR = "198.51.100.1"
LNS_ADDR = "198.51.100.10"
REALM = "isp-k.example"
LNS = LnsSpec(
    "lns", REALM, LNS_ADDR, "203.0.113.129", "203.0.113.130-203.0.113.150", require_chap=False
)
#: the control API's unix socket in the guest (read with curl there)
CONTROL_SOCK = "/run/kdp-broker.sock"
PYTHON = str(ROOT / ".venv" / "bin" / "python")

IP_UP = """#!/bin/sh
echo "$(ip netns identify $PPPD_PID) $PPPD_PID $1 $4 $5" >> {log}
"""


class KernelDataplaneLab:
    """One guest with the broker, pppd clients and the LNS; FreeRADIUS on the host."""

    def __init__(self, *, memory: int = 768, boot_timeout: float = 240.0) -> None:
        self.memory = memory
        self.boot_timeout = boot_timeout
        self.ns: Netns | None = None
        self.radius: FreeRadius | None = None
        self.guest: Guest | None = None
        self.broker: GuestProcess | None = None
        self.lns_proc: GuestProcess | None = None
        self.clients: dict[str, GuestProcess] = {}
        self.dataplane = "kernel"
        self._broker_runs = 0

    def __enter__(self) -> KernelDataplaneLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.ns = Netns("kdp")
            br = bridge(self.ns, [], f"{HOST_ADDR}/24")
            self.guest = Guest("kdp", self.ns, nics=[(br, random_mac())], memory=self.memory)
            self.guest.boot(timeout=self.boot_timeout)
            rdir = self.guest.workdir / "radius"
            self.radius = FreeRadius(
                rdir, auth_port=1812, acct_port=1813, address=HOST_ADDR, netns=self.ns.name,
                clients=[LabClient("vm", GUEST_ADDR, RADIUS_SECRET)], users=users_file(2),
            )  # fmt: skip
            self.radius.start(timeout=60)
            self._setup_guest()
        except BaseException:
            self.close()
            raise

    @property
    def g(self) -> Guest:
        assert self.guest is not None
        return self.guest

    @property
    def share(self) -> Path:
        return self.g.share

    def _setup_guest(self) -> None:
        g, share = self.g, self.share
        for name in ("ip-up", "ip-down"):
            g.write(f"etc/{name}", IP_UP.format(log=share / f"{name.replace('-', '')}.log"), 0o755)
        InteropLab._write_lns_config(LNS, share / "lns")
        pol = share / "policies"
        (pol / "realms").mkdir(parents=True, exist_ok=True)
        (pol / "defaults.yaml").write_text(POLICY_DEFAULTS)
        (pol / "realms" / f"{REALM}.yaml").write_text(
            f"realm: {REALM}\n"
            f"match: {{kind: exact, value: {REALM}}}\n"
            "tunnel_source: static\n"
            "strip_realm: false\n"
            "static_pool:\n"
            f"  - {{name: lns, address: {LNS_ADDR}, secret_ref: lab-tunnel}}\n"
        )
        script = [
            "set -e",
            ": > /etc/ppp/options",
            f"cp {share}/etc/ip-up {share}/etc/ip-down /etc/ppp/",
            "mkdir -p /var/run/xl2tpd",
            "ip link set lo up",
            f"ip addr add {GUEST_ADDR}/24 dev eth0",
            "ip link set eth0 up",
            "ip link add acc0 type veth peer name accp",
            "ip link set acc0 up",
            "ip link set accp up",
            "ip netns add lns",
            "ip link add core0 type veth peer name core1 netns lns",
            f"ip addr add {LAC_ADDR}/24 dev core0",
            "ip link set core0 up",
            "ip -n lns link set lo up",
            f"ip -n lns addr add {LNS_ADDR}/24 dev core1",
            "ip -n lns link set core1 up",
            # the ceiling: two namespaces through veth + a bridge
            "ip link add brc type bridge",
            "ip link set brc up",
            "for n in a b; do ip netns add c$n; ip link add v$n type veth peer name p$n netns c$n;"
            " ip link set v$n master brc up; ip -n c$n link set lo up; ip -n c$n link set p$n up;"
            " done",
            "ip -n ca addr add 203.0.113.1/28 dev pa",
            "ip -n cb addr add 203.0.113.2/28 dev pb",
        ]
        g.run("\n".join(script), timeout=60).check()
        d = share / "lns"
        self.lns_proc = g.popen_bg(
            f"exec ip netns exec lns xl2tpd -D -c {d}/xl2tpd.conf -s {d}/l2tp-secrets "
            f"-p /run/xl2tpd-lns.pid -C /run/xl2tpd-lns.control",
            log=d / "xl2tpd.log",
        )
        r = g.wait_for("ip netns exec lns ss -Hlun 'sport = :1701' | grep -q .", 90)
        if not r.ok:
            raise RuntimeError(f"xl2tpd did not bind:\n{self.logs()}")

    # -- the broker --------------------------------------------------------------------------
    def broker_config(self, dataplane: str) -> Path:
        node = self.share / "node"
        node.mkdir(exist_ok=True)
        text = f"""\
node_id: lac-vm
dataplane: {dataplane}
interfaces: [acc0]
pppoe: {{ac_name: vm-lac}}
ppp: {{auth: [chap, pap], echo_interval: 30}}
l2tp:
  listen: {LAC_ADDR}
  port: 1701
  host_name: vm-lac
  hide_avps: false
radius:
  nas_ip: {LAC_ADDR}
  nas_identifier: vm-lac
  bind: {GUEST_ADDR}
  interim_interval: 0
  servers:
    - {{name: lab, address: {HOST_ADDR}, port: 1812, secret: "env:LAB_RADIUS_SECRET",
        timeout: [2, 2, 4]}}
  accounting_servers:
    - {{name: lab, address: {HOST_ADDR}, port: 1813, secret: "env:LAB_RADIUS_SECRET"}}
lns_secrets: {{lab-tunnel: "env:LAB_TUNNEL_SECRET"}}
state: memory
policies: {self.share / "policies"}
state_dir: /run/broker-state
control: unix:{CONTROL_SOCK}
log: {{format: text, level: info}}
"""
        path = node / f"broker-{dataplane}.yaml"
        path.write_text(text)
        return path

    def start_broker(self, dataplane: str = "kernel", timeout: float = 180.0) -> GuestProcess:
        cfg = self.broker_config(dataplane)
        self._broker_runs += 1
        log = self.share / "node" / f"broker-{self._broker_runs}-{dataplane}.log"
        self.broker = self.g.popen_bg(
            f"cd {ROOT} && LAB_RADIUS_SECRET={RADIUS_SECRET} LAB_TUNNEL_SECRET={TUNNEL_SECRET} "
            f"exec {PYTHON} -m broker run -c {cfg}",
            log=log,
        )
        self.dataplane = dataplane
        broker = self.broker

        def ready() -> bool:
            if not broker.alive():
                raise RuntimeError(f"broker exited:\n{broker.output()[-4000:]}")
            return "dataplane" in broker.output() and self.control("/status") is not None

        if not poll(ready, timeout, interval=1.0):
            raise RuntimeError(f"broker not ready in {timeout:.0f} s:\n{broker.output()[-4000:]}")
        return broker

    def stop_broker(self, timeout: float = 60.0) -> None:
        """SIGTERM (the broker ends every call cleanly) and wait for it to exit."""
        broker = self.broker
        if broker is None:
            return
        if broker.alive():
            broker.kill("TERM")
            if not poll(lambda: not broker.alive(), timeout, interval=0.5):
                broker.kill("KILL")
        self.broker = None

    def control(self, path: str) -> Any:
        """GET on the broker's control API (unix socket, through curl in the guest)."""
        r = self.g.run(
            f"curl -s -m 10 --unix-socket {CONTROL_SOCK} http://broker{path}", timeout=30
        )
        if not r.ok or not r.out:
            return None
        if path == "/metrics":
            return r.out
        try:
            return json.loads(r.out)
        except ValueError:
            return None

    def metric(self, engine: str, name: str) -> float | None:
        text = self.control("/metrics") or ""
        needle = f'engine="{engine}",name="{name}"'
        for line in text.splitlines():
            if needle in line and not line.startswith("#"):
                return float(line.rsplit(" ", 1)[1])
        return None

    # -- subscribers -------------------------------------------------------------------------
    def start_client(self, name: str, user: str, *, auth: str = "chap") -> GuestProcess:
        """A pppd PPPoE client in guest netns ``name`` (macvlan of accp, its own MAC)."""
        g = self.g
        refuse = ["refuse-pap"] if auth == "chap" else ["refuse-chap"]
        refuse += ["refuse-eap", "refuse-mschap", "refuse-mschap-v2"]
        dev = f"m{name}"[:15]
        g.run(
            f"set -e; ip netns add {name}; "
            f"ip link add {dev} link accp address {random_mac()} type macvlan mode private; "
            f"ip link set {dev} netns {name}; ip -n {name} link set lo up; "
            f"ip -n {name} link set {dev} up",
            timeout=30,
        ).check()
        args = [
            "pppd", "nodetach", "plugin", "pppoe.so", f"nic-{dev}", "user", user,
            "password", PASSWORD, "noauth", "noipdefault", "defaultroute", "noccp", "novj",
            "nobsdcomp", "nodeflate", "mtu", "1400", "mru", "1400", "maxfail", "1",
            "lcp-echo-interval", "0", "debug", "linkname", name, "ifname", f"ppp{name}"[:15],
            *refuse,
        ]  # fmt: skip
        proc = g.popen_bg(
            f"exec ip netns exec {name} " + " ".join(shlex.quote(a) for a in args),
            log=self.share / f"client-{name}.log",
        )
        self.clients[name] = proc
        return proc

    def sessions(self, path: str = "ipup.log") -> list[list[str]]:
        """Rows ``netns pid ifname local remote`` of ipup.log / ipdown.log."""
        p = self.share / path
        if not p.exists():
            return []
        return [line.split() for line in p.read_text().splitlines() if len(line.split()) == 5]

    def client_up(self, name: str, timeout: float = 120.0) -> list[str]:
        """Wait for IPCP on client ``name``; its ipup.log row."""

        def find() -> list[str] | None:
            for row in self.sessions():
                if row[0] == name:
                    return row
            proc = self.clients.get(name)
            if proc is not None and not proc.alive():
                raise RuntimeError(f"pppd {name} exited:\n{proc.output()[-3000:]}")
            return None

        row = poll(find, timeout, interval=0.5)
        if row is None:
            raise RuntimeError(f"client {name}: no IPCP within {timeout:.0f} s\n{self.logs()}")
        return row  # type: ignore[no-any-return]

    def lns_row(self, remote: str, path: str = "ipup.log") -> list[str] | None:
        for row in self.sessions(path):
            if row[0] == "lns" and row[4] == remote:
                return row
        return None

    def client_down(self, name: str, timeout: float = 60.0) -> bool:
        proc = self.clients[name]
        return bool(poll(lambda: not proc.alive(), timeout, interval=0.5))

    def kernel_sessions(self) -> str:
        """``ip l2tp show session`` in the guest's root namespace (the broker's)."""
        return self.g.run("ip l2tp show session; ip l2tp show tunnel", timeout=30).out

    def accounting(self) -> list[dict[str, str]]:
        assert self.radius is not None
        return self.radius.records()

    def logs(self) -> str:
        parts: list[str] = []
        if self.guest is not None:
            parts.append("== console ==\n" + self.guest.log()[-3000:])
            with contextlib.suppress(OSError):
                for p in sorted(self.share.rglob("*.log")):
                    text = p.read_text(errors="replace")
                    parts.append(f"== {p.relative_to(self.share)} ==\n{text[-3000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_broker(timeout=20)
        if self.radius is not None:
            with contextlib.suppress(Exception):
                self.radius.stop()
            self.radius = None
        if self.guest is not None:
            with contextlib.suppress(Exception):
                self.guest.shutdown()
            self.guest = None
        if self.ns is not None:
            with contextlib.suppress(Exception):
                self.ns.close()
            self.ns = None


# -- benchmark --------------------------------------------------------------------------------


def _cpu(g: Guest) -> tuple[float, float]:
    """(busy, total) guest CPU seconds since boot, from /proc/stat (USER_HZ 100)."""
    f = g.run("head -1 /proc/stat", timeout=30).out.split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / 100.0, sum(v[:8]) / 100.0


def iperf(
    g: Guest, client_ns: str, server_ns: str, server: str, seconds: int, reverse: bool
) -> dict[str, float]:
    """One iperf3 TCP run; Mbit/s received, guest busy CPU seconds, Mbit per CPU-second."""
    srv = g.popen_bg(f"exec ip netns exec {server_ns} iperf3 -s -1 -B {server}")
    g.wait_for(f"ip netns exec {server_ns} ss -Hltn 'sport = :5201' | grep -q .", 30)
    busy0, total0 = _cpu(g)
    r = g.run(
        f"ip netns exec {client_ns} iperf3 -J -c {server} -t {seconds} -O 1"
        + (" -R" if reverse else ""),
        timeout=seconds + 60,
    ).check()
    busy1, total1 = _cpu(g)
    with contextlib.suppress(Exception):
        srv.kill("KILL")
    end = json.loads(r.out)["end"]
    bps = float(end["sum_received"]["bits_per_second"])
    busy = busy1 - busy0
    mbit = bps / 1e6
    return {
        "mbit_s": round(mbit, 1),
        "cpu_busy_s": round(busy, 2),
        "cpu_wall_s": round(total1 - total0, 2),
        "mbit_per_cpu_s": round(mbit * seconds / busy, 1) if busy > 0 else 0.0,
    }


def run_benchmark(seconds: int = 8) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds": seconds}
    with KernelDataplaneLab() as lab:
        g = lab.g
        results["boot_s"] = g.boot_seconds
        for direction, rev in (("up", False), ("down", True)):
            results[f"ceiling_{direction}"] = iperf(g, "ca", "cb", "203.0.113.2", seconds, rev)
        for plane in ("kernel", "userspace"):
            lab.start_broker(plane)
            name = f"b{plane[0]}"
            lab.start_client(name, f"user0@{REALM}")
            row = lab.client_up(name)
            for direction, rev in (("up", False), ("down", True)):
                results[f"{plane}_{direction}"] = iperf(g, name, "lns", row[4], seconds, rev)
            lab.clients[name].kill("TERM")
            lab.client_down(name)
            lab.stop_broker()
            time.sleep(1.0)  # the LNS tears its side down (CDN) before the next broker
    for direction in ("up", "down"):
        c = results[f"ceiling_{direction}"]["mbit_s"] or 1.0
        k = results[f"kernel_{direction}"]["mbit_s"]
        u = results[f"userspace_{direction}"]["mbit_s"] or 1.0
        results[f"ratio_{direction}"] = {
            "kernel/userspace": round(k / u, 2),
            "kernel/ceiling": round(k / c, 2),
            "userspace/ceiling": round(u / c, 2),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="iperf3 run length (default 8)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run_benchmark(args.seconds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"guest boot {res['boot_s']:.1f} s, iperf3 TCP {res['seconds']} s per run")
    print(f"{'path':<22}{'Mbit/s':>10}{'guest CPU s':>13}{'Mbit/CPU-s':>12}")
    for key in ("ceiling", "kernel", "userspace"):
        for direction in ("up", "down"):
            r = res[f"{key}_{direction}"]
            print(
                f"{key + ' ' + direction:<22}{r['mbit_s']:>10}{r['cpu_busy_s']:>13}"
                f"{r['mbit_per_cpu_s']:>12}"
            )
    for direction in ("up", "down"):
        print(direction, res[f"ratio_{direction}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
