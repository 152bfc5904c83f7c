"""Interop lab: real pppd PPPoE clients and xl2tpd/pppd LNSs in one qemu guest, around the
broker running on the host (namespace ``lac``, userspace data plane) of :class:`BrokerLab`.

::

    guest netns c-*  (pppd + pppoe.so on a macvlan of eth0, one netns per subscriber)
        eth0 ── tap ── br-acc (lac) ── veth ── br-sub (sub) ── veth ── broker access port (lac)
    broker (lac, 198.51.100.1) ── lac bridge 198.51.100.0/24 ── l2tpns A .2 / B .3 (host)
                                                          └── tap ── eth1 (guest)
    guest netns lns-x (198.51.100.10, macvlan of eth1): xl2tpd + pppd, no re-authentication:
        the proxy LCP/auth AVPs are accepted (xl2tpd ignores them) and pppd renegotiates LCP
    guest netns lns-y (198.51.100.11): xl2tpd + pppd with ``require chap``: pppd renegotiates
        LCP and authenticates the subscriber again (CHAP) before IPCP

Realms: ``isp-x.example`` -> lns-x, ``isp-y.example`` -> lns-y (static pools), ``isp-a.example``
-> l2tpns A (RADIUS tunnel attributes). The guest's ``/etc/ppp/ip-up`` and ``ip-down`` append
``<netns> <pppd pid> <ifname> <local> <remote>`` to ``ipup.log`` / ``ipdown.log`` in the share,
which maps every PPP session on either side to its pppd.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.lab.broker_lab import PASSWORD, TUNNEL_SECRET, BrokerLab
from ops.lab.netns import bridge, poll, veth
from ops.vm.guest import Guest, GuestError, GuestProcess, random_mac

__all__ = ["LNS_X", "LNS_Y", "InteropLab", "LnsSpec", "PppSession"]

LNS_X = "198.51.100.10"
LNS_Y = "198.51.100.11"


@dataclass(frozen=True, slots=True)
class LnsSpec:
    netns: str
    realm: str
    address: str
    local_ip: str
    ip_range: str
    require_chap: bool


LNSS = (
    LnsSpec("lns-x", "isp-x.example", LNS_X, "203.0.113.129", "203.0.113.130-203.0.113.150",
            require_chap=False),
    LnsSpec("lns-y", "isp-y.example", LNS_Y, "203.0.113.161", "203.0.113.162-203.0.113.182",
            require_chap=True),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PppSession:
    """One line of ipup.log / ipdown.log."""

    netns: str
    pid: int
    ifname: str
    local: str
    remote: str


IP_UP = """#!/bin/sh
echo "$(ip netns identify $PPPD_PID) $PPPD_PID $1 $4 $5" >> {log}
"""


class InteropLab(BrokerLab):
    """:class:`BrokerLab` plus one guest holding pppd clients and two xl2tpd LNSs."""

    def __init__(self, *, memory: int = 768, boot_timeout: float = 240.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.memory = memory
        self.boot_timeout = boot_timeout
        self.guest: Guest | None = None
        self.clients: dict[str, GuestProcess] = {}
        self.lns_procs: dict[str, GuestProcess] = {}
        self.client_macs: dict[str, str] = {}
        self.capture: GuestProcess | None = None
        #: seconds per phase: host_lab, guest_boot, guest_setup, total_start
        self.timings: dict[str, float] = {}

    # -- host side ---------------------------------------------------------------------------
    def _write_policies(self) -> None:
        super()._write_policies()
        for lns in LNSS:
            (self.dir / "policies" / "realms" / f"{lns.realm}.yaml").write_text(
                f"realm: {lns.realm}\n"
                f"match: {{kind: exact, value: {lns.realm}}}\n"
                "tunnel_source: static\n"
                "strip_realm: false\n"
                "static_pool:\n"
                f"  - {{name: {lns.netns}, address: {lns.address}, secret_ref: lab-tunnel}}\n"
            )

    def start(self) -> None:
        t0 = time.monotonic()
        super().start()
        self.timings["host_lab"] = time.monotonic() - t0
        try:
            self._start_guest()
            self.timings["total_start"] = time.monotonic() - t0
        except BaseException:
            self.close()
            raise

    def _lac_bridge(self) -> str:
        assert self.lac is not None
        out = self.lac.run(["ip", "-j", "link", "show", "type", "bridge"]).stdout
        names = [link["ifname"] for link in json.loads(out)]
        if len(names) != 1:
            raise RuntimeError(f"expected one bridge in the lac namespace, found {names}")
        return str(names[0])

    def _start_guest(self) -> None:
        assert self.lac is not None and self.sub is not None
        core = self._lac_bridge()
        # Access side: guest eth0 -> br-acc (lac) -> veth -> br-sub (sub) -> the subscriber end
        # of the broker's access veth. The broker's own port stays untouched.
        lac_end, sub_end = veth(self.lac, self.sub, prefix="g")
        acc = bridge(self.lac, [lac_end])
        bridge(self.sub, [sub_end, self.access_ifaces[0][0]])
        self.guest = Guest(
            "interop", self.lac, nics=[(acc, random_mac()), (core, random_mac())],
            memory=self.memory, workdir=self.dir / "vm",
        )  # fmt: skip
        self.guest.boot(timeout=self.boot_timeout)
        self.timings["guest_boot"] = self.guest.boot_seconds or 0.0
        t0 = time.monotonic()
        self._setup_guest()
        self.timings["guest_setup"] = time.monotonic() - t0

    # -- guest side --------------------------------------------------------------------------
    @property
    def share(self) -> Path:
        assert self.guest is not None
        return self.guest.share

    def _setup_guest(self) -> None:
        g = self.guest
        assert g is not None
        share = g.share
        for name in ("ip-up", "ip-down"):
            g.write(f"etc/{name}", IP_UP.format(log=share / f"{name.replace('-', '')}.log"), 0o755)
        secrets = "".join(
            f'"user{i}@{lns.realm}" * "{PASSWORD}" *\n' for lns in LNSS for i in range(8)
        )
        g.write("etc/chap-secrets", secrets, 0o600)
        script = [
            "set -e",
            ": > /etc/ppp/options",
            f"cp {share}/etc/ip-up {share}/etc/ip-down /etc/ppp/",
            f"cp {share}/etc/chap-secrets /etc/ppp/chap-secrets",
            "chmod 600 /etc/ppp/chap-secrets",
            "mkdir -p /var/run/xl2tpd",
            "ip link set eth0 up",
            "ip link set eth1 up",
        ]
        for lns in LNSS:
            d = share / lns.netns
            self._write_lns_config(lns, d)
            mv = f"mv{lns.netns[-1]}"
            script += [
                f"ip netns add {lns.netns}",
                f"ip link add {mv} link eth1 type macvlan mode bridge",
                f"ip link set {mv} netns {lns.netns}",
                f"ip -n {lns.netns} link set lo up",
                f"ip -n {lns.netns} addr add {lns.address}/24 dev {mv}",
                f"ip -n {lns.netns} link set {mv} up",
            ]
        g.run("\n".join(script), timeout=60).check()
        for lns in LNSS:
            d = share / lns.netns
            self.lns_procs[lns.netns] = g.popen_bg(
                f"exec ip netns exec {lns.netns} xl2tpd -D -c {d}/xl2tpd.conf "
                f"-s {d}/l2tp-secrets -p /run/xl2tpd-{lns.netns}.pid "
                f"-C /run/xl2tpd-{lns.netns}.control",
                log=d / "xl2tpd.log",
            )
        # PPPoE discovery frames on the guest's access NIC (PADI/PADO/PADR/PADS/PADT), as text.
        self.capture = g.popen_bg(
            "exec tcpdump -i eth0 -l -n -e -U 'ether proto 0x8863'", log=share / "pppoe-disc.log"
        )
        for lns in LNSS:
            r = g.wait_for(f"ip netns exec {lns.netns} ss -Hlun 'sport = :1701' | grep -q .", 60)
            if not r.ok:
                raise RuntimeError(
                    f"xl2tpd in {lns.netns} did not bind: "
                    f"{(share / lns.netns / 'xl2tpd.log').read_text(errors='replace')[-2000:]}"
                )

    @staticmethod
    def _write_lns_config(lns: LnsSpec, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        auth = (
            ["require authentication = yes", "require chap = yes", "refuse pap = yes"]
            if lns.require_chap
            else ["require authentication = no"]
        )
        conf = [
            "[global]",
            f"listen-addr = {lns.address}",
            "port = 1701",
            f"auth file = {d}/l2tp-secrets",
            "access control = no",
            "debug avp = yes",
            "debug network = yes",
            "debug state = yes",
            "debug tunnel = yes",
            "",
            "[lns default]",
            f"ip range = {lns.ip_range}",
            f"local ip = {lns.local_ip}",
            *auth,
            "challenge = yes",
            "hidden bit = no",
            "length bit = yes",
            f"hostname = vm-{lns.netns}",
            f"name = vm-{lns.netns}",
            "ppp debug = yes",
            f"pppoptfile = {d}/options",
            "",
        ]
        (d / "xl2tpd.conf").write_text("\n".join(conf))
        (d / "l2tp-secrets").write_text(f"* * {TUNNEL_SECRET}\n")
        (d / "l2tp-secrets").chmod(0o600)
        opts = [
            "nodefaultroute", "mtu 1400", "mru 1400", "lcp-echo-interval 0", "noccp",
            "novj", "nobsdcomp", "nodeflate", "debug", f"logfile {d}/pppd.log",
            "lcp-max-configure 40", "ipcp-max-configure 40", "chap-max-challenge 40",
        ]  # fmt: skip
        if lns.require_chap:
            opts.append(f"name vm-{lns.netns}")
        (d / "options").write_text("\n".join(opts) + "\n")

    def start_client(self, name: str, user: str, *, auth: str = "chap") -> GuestProcess:
        """A pppd PPPoE client in its own guest netns ``name`` (macvlan of eth0, own MAC),
        offering only ``auth`` ("chap" or "pap"); it gets a default route over its ppp link."""
        return self.start_clients([(name, user, auth)])[name]

    def start_clients(self, specs: Sequence[tuple[str, str, str]]) -> dict[str, GuestProcess]:
        """Several clients ``(netns name, user, "chap"|"pap")`` with one guest command."""
        g = self.guest
        assert g is not None
        links: list[str] = []  # one `ip -batch` for every netns and macvlan (TCG: few execs)
        jobs: list[tuple[str, str]] = []
        for name, user, auth in specs:
            refuse = ["refuse-pap"] if auth == "chap" else ["refuse-chap"]
            refuse += ["refuse-eap", "refuse-mschap", "refuse-mschap-v2"]
            mac, dev = random_mac(), f"m{name}"[:15]
            self.client_macs[name] = mac
            args = [
                "pppd", "nodetach", "plugin", "pppoe.so", f"nic-{dev}", "user", user,
                "password", PASSWORD, "noauth", "noipdefault", "defaultroute", "noccp", "novj",
                "nobsdcomp", "nodeflate", "mtu", "1400", "mru", "1400", "maxfail", "1",
                "lcp-echo-interval", "0", "debug", "linkname", name, "ifname", f"ppp{name}"[:15],
                # generous retries: a loaded host slows TCG guests down a lot
                "pppoe-padi-timeout", "5", "pppoe-padi-attempts", "12", "lcp-max-configure", "40",
                "ipcp-max-configure", "40", "pap-max-authreq", "40",
                *refuse,
            ]  # fmt: skip
            cmd = f"exec ip netns exec {name} " + " ".join(shlex.quote(a) for a in args)
            links += [
                f"netns add {name}",
                f"link add {dev} link eth0 address {mac} netns {name} up type macvlan mode private",
            ]
            jobs.append((name, cmd))
        (g.share / "clients.ip").write_text("\n".join(links) + "\n")
        g.run(f"ip -batch {shlex.quote(str(g.share / 'clients.ip'))}", timeout=120).check()
        started = {name: g.popen_bg(cmd, g.share / f"client-{name}.log") for name, cmd in jobs}
        self.clients.update(started)
        return started

    def ac_mac(self) -> str:
        """The MAC of the broker's access port."""
        assert self.lac is not None
        out = self.lac.run(["ip", "-j", "link", "show", "dev", self.access_ifaces[0][1]]).stdout
        return str(json.loads(out)[0]["address"])

    def send_padt(self, name: str, session_id: int) -> None:
        """Send a PADT (RFC 2516 section 5.5) for ``session_id`` from client ``name``'s MAC on
        its own link, as a client that hangs up without an LCP Terminate would."""
        g = self.guest
        assert g is not None
        frame = (
            bytes.fromhex(self.ac_mac().replace(":", ""))
            + bytes.fromhex(self.client_macs[name].replace(":", ""))
            + bytes.fromhex("886311a7")
            + session_id.to_bytes(2, "big")
            + b"\0\0"
        ).ljust(60, b"\0")
        dev = f"m{name}"[:15]
        py = (
            "import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
            f"s.bind(({dev!r}, 0)); s.send(bytes.fromhex(sys.argv[1]))"
        )
        g.run(f"ip netns exec {name} python3 -c {shlex.quote(py)} {frame.hex()}", 60).check()

    def padts(self, name: str) -> tuple[int, int]:
        """PADTs seen on the guest's access NIC (from client ``name``, to client ``name``)."""
        mac = self.client_macs[name]
        p = self.share / "pppoe-disc.log"
        lines = [ln for ln in p.read_text(errors="replace").splitlines() if "PADT" in ln]
        return (
            sum(1 for ln in lines if f" {mac} > " in ln),
            sum(1 for ln in lines if f" > {mac}," in ln),
        )

    def sessions_up(self, path: str = "ipup.log") -> list[PppSession]:
        p = self.share / path
        rows: list[PppSession] = []
        if p.exists():
            for line in p.read_text().splitlines():
                f = line.split()
                if len(f) == 5:
                    rows.append(PppSession(f[0], int(f[1]), f[2], f[3], f[4]))
        return rows

    def client_session(self, name: str, timeout: float = 180.0) -> PppSession:
        """Wait until client ``name`` has IPCP up; return its session (raises on timeout)."""

        def find() -> PppSession | None:
            for s in self.sessions_up():
                if s.netns == name:
                    return s
            proc = self.clients.get(name)
            if proc is not None and not proc.alive():
                raise RuntimeError(f"pppd client {name} exited:\n{proc.output()[-3000:]}")
            return None

        found = poll(find, timeout, interval=0.5)
        if found is None:
            raise RuntimeError(f"client {name}: no IPCP within {timeout:.0f} s")
        return found  # type: ignore[no-any-return]

    def lns_session(self, remote: str, down: bool = False) -> PppSession | None:
        """The LNS-side pppd session whose peer is ``remote`` (None when absent)."""
        lns_names = {lns.netns for lns in LNSS}
        for s in self.sessions_up("ipdown.log" if down else "ipup.log"):
            if s.netns in lns_names and s.remote == remote:
                return s
        return None

    def guest_pids(self, netns: str, comm: str = "pppd") -> list[int]:
        """Live processes named ``comm`` in guest netns ``netns`` (raises GuestError when the
        guest cannot tell, so that a poll for a process to vanish never passes by accident)."""
        assert self.guest is not None
        r = self.guest.run(
            f"for p in $(ip netns pids {netns}); do "
            f'[ "$(cat /proc/$p/comm 2>/dev/null)" = {comm} ] && '
            f'grep -qv "^State:.*Z" /proc/$p/status && echo $p; done; echo end',
            timeout=60,
        )
        if not r.ok or not r.out.rstrip().endswith("end"):
            raise GuestError(f"cannot list {comm} in {netns}: rc {r.rc}: {r.out[-500:]}")
        return [int(x) for x in r.out.split() if x.isdigit()]

    def guest_logs(self) -> str:
        """Console tail, client and LNS logs (for test reports)."""
        parts: list[str] = []
        if self.guest is not None:
            parts.append("== console ==\n" + self.guest.log()[-3000:])
            for p in sorted(self.share.rglob("*.log")):
                with contextlib.suppress(OSError):
                    parts.append(f"== {p.relative_to(self.share)} ==\n" + p.read_text(
                        errors="replace")[-2500:])  # fmt: skip
        parts.append(f"== timings == {self.timings}")
        parts.append("== broker ==\n" + self.broker_log(0)[-4000:])
        return "\n".join(parts)

    def close(self) -> None:
        if self.guest is not None:
            with contextlib.suppress(Exception):
                self.guest.shutdown()
        super().close()
