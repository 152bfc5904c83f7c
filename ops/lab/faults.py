"""Fault injection for the lab (issue 9 items 2-6): link impairment, process faults, and a
broker lab whose LNSs are ``sim lns`` emulators behind impairable links.

Link impairment. This machine's kernel has no ``sch_netem`` (CONFIG_NET_SCH_NETEM is not set:
``tc qdisc add ... netem`` answers "Specified qdisc kind is unknown"), so :class:`Impairment`
is netem in userspace: a relay process between two interfaces (AF_PACKET, ETH_P_ALL) that
drops, duplicates, delays and reorders IPv4 frames with a seeded random generator, reading its
settings from a JSON file that can be rewritten while it runs (:meth:`Impairment.set`). IPv4
UDP checksums are zeroed on the way through (0 = "no checksum", RFC 768), since checksum
offload metadata does not survive a raw socket. When a kernel has netem, :func:`tc_netem`
applies the same settings with ``tc`` instead.

    lab = FaultLab(impair=("lns-a",))          # relay on LNS A's link
    lab.start()
    lab.impair("lns-a", loss=0.2, reorder=0.25, delay=0.02)
    ...
    lab.impair("lns-a")                        # back to a clean link

Process faults: :func:`kill9` (SIGKILL to the process group), :func:`freeze` / :func:`thaw`
(SIGSTOP / SIGCONT: a peer that stops answering without closing anything).

:class:`FaultLab` is :class:`ops.lab.broker_lab.BrokerLab` with ``sim lns`` emulators as LNS A
and B (scalable, with a JSON status file: tunnels, sessions, IPCP up, counters), FreeRADIUS
users for ``user0..user1999@isp-a.example``, optional Redis (plain or a master, a replica and a
Sentinel) and per-node sampling of the broker process (RSS, open fds) for the soak.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops.lab.broker_lab import LAC_ADDR, LNS_A, LNS_B, PASSWORD, RADIUS_SECRET, TUNNEL_SECRET
from ops.lab.broker_lab import BrokerLab as _BrokerLab
from ops.lab.freeradius import FreeRadius, LabClient, free_udp_port
from ops.lab.l2tpns import rename_to_eth0
from ops.lab.netns import LabDaemon, Netns, bridge, poll, stop_process, venv_python, veth

__all__ = [
    "FaultLab",
    "ImpairSettings",
    "Impairment",
    "SimLns",
    "freeze",
    "kill9",
    "proc_sample",
    "tc_netem",
    "tc_netem_available",
    "thaw",
]

ROOT = Path(__file__).resolve().parents[2]
LNS_ADDR = {"lns-a": LNS_A, "lns-b": LNS_B}
LNS_POOL = {"lns-a": "203.0.113.0/25", "lns-b": "203.0.113.128/25"}


# -- process faults ---------------------------------------------------------------------------


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill9(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int | None:
    """SIGKILL the process group (a crash: no handler runs) and reap it."""
    _signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    return proc.returncode


def freeze(proc: subprocess.Popen[Any]) -> None:
    """SIGSTOP: the process keeps its sockets but answers nothing."""
    _signal_group(proc, signal.SIGSTOP)


def thaw(proc: subprocess.Popen[Any]) -> None:
    _signal_group(proc, signal.SIGCONT)


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (KiB), open fds, threads and CPU seconds (user + system) of a process."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = float(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = float(line.split()[1])
    with contextlib.suppress(OSError):
        out["fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
    return out


# -- link impairment ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImpairSettings:
    """What happens to each IPv4 frame crossing the link (both directions).

    ``loss``/``duplicate``/``reorder`` are probabilities; ``delay`` and ``jitter`` seconds
    (uniform in delay +- jitter); a reordered frame is held back ``reorder_gap`` seconds more
    than the frames around it, so they overtake it (netem's ``reorder`` works the same way)."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_gap: float = 0.03
    #: drop everything in this direction: "a->b", "b->a" or "" (partition of one side)
    blackhole: str = ""

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if self.delay < 0 or self.jitter < 0 or self.reorder_gap < 0:
            raise ValueError("delays must be >= 0")
        if self.blackhole not in ("", "a->b", "b->a", "both"):
            raise ValueError("blackhole: '', 'a->b', 'b->a' or 'both'")

    @property
    def clean(self) -> bool:
        return self == ImpairSettings()


ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _zero_udp_checksum(frame: bytearray) -> None:
    """IPv4 UDP over Ethernet (optionally one 802.1Q tag): set the UDP checksum to 0."""
    off = 12
    ethertype = int.from_bytes(frame[off : off + 2], "big")
    if ethertype == 0x8100:
        off += 4
        ethertype = int.from_bytes(frame[off : off + 2], "big")
    ip = off + 2
    if ethertype != 0x0800 or len(frame) < ip + 20 or frame[ip + 9] != 17:
        return
    ihl = (frame[ip] & 0x0F) * 4
    if len(frame) >= ip + ihl + 8:
        frame[ip + ihl + 6 : ip + ihl + 8] = b"\x00\x00"


def _is_ipv4(frame: bytes | bytearray) -> bool:
    return len(frame) >= 14 and frame[12:14] in (b"\x08\x00", b"\x81\x00")


def relay(a: str, b: str, control: Path, stats: Path, seed: int) -> None:
    """Forward frames between interfaces ``a`` and ``b`` applying the settings in ``control``
    (re-read when it changes); write counters to ``stats`` every 0.5 s. Runs until SIGTERM."""
    rng = random.Random(seed)
    socks: dict[str, socket.socket] = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        socks[name] = s
    other = {a: socks[b], b: socks[a]}
    direction = {a: "a->b", b: "b->a"}
    counters = dict.fromkeys(
        ("forwarded", "dropped", "duplicated", "reordered", "delayed", "non_ip"), 0
    )
    settings = ImpairSettings()
    mtime = -1.0
    queue: list[tuple[float, int, str, bytes]] = []
    seq = 0
    running = True

    def stop(_s: int, _f: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    next_check = next_stats = 0.0
    while running:
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 0.1
            with contextlib.suppress(OSError, ValueError, TypeError):
                m = control.stat().st_mtime
                if m != mtime:
                    settings = ImpairSettings(**json.loads(control.read_text()))
                    mtime = m
                    tmp = stats.with_suffix(".tmp")
                    tmp.write_text(json.dumps({**counters, "settings": asdict(settings)}))
                    tmp.replace(stats)
        timeout = 0.1
        if queue:
            timeout = max(0.0, min(timeout, queue[0][0] - now))
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select(list(socks.values()), [], [], timeout)
            for s in ready:
                name = a if s is socks[a] else b
                for _ in range(64):
                    try:
                        data, addr = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    frame = bytearray(data)
                    if not _is_ipv4(frame):
                        counters["non_ip"] += 1
                        with contextlib.suppress(OSError):
                            other[name].send(frame)
                        continue
                    _zero_udp_checksum(frame)
                    st = settings
                    if st.blackhole in (direction[name], "both") or rng.random() < st.loss:
                        counters["dropped"] += 1
                        continue
                    copies = 2 if st.duplicate and rng.random() < st.duplicate else 1
                    counters["duplicated"] += copies - 1
                    for _c in range(copies):
                        wait = st.delay + (rng.uniform(-st.jitter, st.jitter) if st.jitter else 0)
                        if st.reorder and rng.random() < st.reorder:
                            wait += st.reorder_gap
                            counters["reordered"] += 1
                        if wait <= 0:
                            with contextlib.suppress(OSError):
                                other[name].send(frame)
                            counters["forwarded"] += 1
                        else:
                            counters["delayed"] += 1
                            seq += 1
                            heapq.heappush(
                                queue, (time.monotonic() + wait, seq, name, bytes(frame))
                            )
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _t, _s, name, frame_b = heapq.heappop(queue)
            with contextlib.suppress(OSError):
                other[name].send(frame_b)
            counters["forwarded"] += 1
        if now >= next_stats:
            next_stats = now + 0.5
            with contextlib.suppress(OSError):
                tmp = stats.with_suffix(".tmp")
                tmp.write_text(json.dumps({**counters, "settings": asdict(settings)}))
                tmp.replace(stats)


class Impairment:
    """A :func:`relay` process in ``ns`` between interfaces ``a`` and ``b``."""

    def __init__(self, ns: Netns, a: str, b: str, directory: Path, seed: int = 1) -> None:
        self.ns, self.a, self.b = ns, a, b
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control = self.dir / f"impair-{a}.json"
        self.stats_path = self.dir / f"impair-{a}.stats.json"
        self.seed = seed
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        self.control.write_text(json.dumps(asdict(ImpairSettings())))
        for ifname in (self.a, self.b):
            self.ns.run(["ip", "link", "set", ifname, "promisc", "on", "up"])
        self.proc = self.ns.popen(
            [venv_python(), "-m", "ops.lab.faults", "relay", "--a", self.a, "--b", self.b,
             "--control", str(self.control), "--stats", str(self.stats_path),
             "--seed", str(self.seed)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT),
            stdout=subprocess.DEVNULL, stderr=(self.dir / f"impair-{self.a}.err").open("wb"),
        )  # fmt: skip
        proc = self.proc
        if not poll(lambda: proc.poll() is not None or self.stats_path.exists(), 15):
            raise RuntimeError("impairment relay did not start")
        if proc.poll() is not None:
            err = (self.dir / f"impair-{self.a}.err").read_text(errors="replace")
            raise RuntimeError(f"impairment relay exited: {err[-2000:]}")

    def set(self, settings: ImpairSettings | None = None, **kw: Any) -> ImpairSettings:
        """Apply new settings (keyword arguments of :class:`ImpairSettings`); returns them
        once the relay has read them."""
        s = settings or ImpairSettings(**kw)
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(s)))
        tmp.replace(self.control)
        want = asdict(s)
        poll(lambda: self.stats().get("settings") == want, 5, interval=0.05)
        return s

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.stats_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def tc_netem_available() -> bool:
    """Does this kernel have the netem qdisc? (Probed on a throw-away veth in a namespace.)"""
    with Netns("netemprobe") as ns:
        a, _b = veth(ns, ns, None, None, prefix="np")
        r = ns.run(["tc", "qdisc", "add", "dev", a, "root", "netem", "loss", "1%"], check=False)
        return r.returncode == 0


def tc_netem(ns: Netns, dev: str, settings: ImpairSettings | None) -> None:
    """The same impairment with the kernel's netem on ``dev`` egress (None: remove it)."""
    if settings is None or settings.clean:
        ns.run(["tc", "qdisc", "del", "dev", dev, "root"], check=False)
        return
    args = ["delay", f"{settings.delay * 1000:.1f}ms", f"{settings.jitter * 1000:.1f}ms"]
    if settings.loss:
        args += ["loss", f"{settings.loss * 100:.2f}%"]
    if settings.duplicate:
        args += ["duplicate", f"{settings.duplicate * 100:.2f}%"]
    if settings.reorder:
        args += ["reorder", f"{(1 - settings.reorder) * 100:.2f}%"]
    ns.run(["tc", "qdisc", "replace", "dev", dev, "root", "netem", *args])


# -- the LNS emulator as a lab daemon -----------------------------------------------------------


class SimLns(LabDaemon):
    """``l2tp-broker sim lns`` in a namespace, with its JSON status file."""

    def __init__(self, ns: Netns, address: str, pool: str, directory: Path, *args: str) -> None:
        self.ns, self.address, self.pool = ns, address, pool
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.status_path = self.dir / "status.json"
        self.out_path = self.dir / "lns.log"
        self.args = args
        self.starts = 0

    def start(self) -> None:
        self.status_path.unlink(missing_ok=True)
        self._out = self.out_path.open("ab")
        self.proc = self.ns.popen(
            [venv_python(), "-m", "broker", "sim", "lns", "--listen", self.address,
             "--port", "1701", "--pool", self.pool, "--status-file", str(self.status_path),
             "--reuse-addresses", "--receive-window", "64", *self.args],
            env=dict(os.environ, PYTHONPATH=str(ROOT), SIM_LNS_SECRET=TUNNEL_SECRET),
            cwd=str(ROOT), stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.starts += 1
        proc = self.proc
        if not poll(lambda: proc.poll() is not None or self.status_path.exists(), 20):
            raise RuntimeError(f"sim lns did not start: {self.log()[-2000:]}")
        if proc.poll() is not None:
            raise RuntimeError(f"sim lns exited: {self.log()[-2000:]}")

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def log(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None:
            kill9(self.proc)
        if self._out is not None:
            self._out.close()
            self._out = None

    def freeze(self) -> None:
        if self.proc is not None:
            freeze(self.proc)

    def thaw(self) -> None:
        if self.proc is not None:
            thaw(self.proc)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            thaw(self.proc)  # a frozen process does not handle SIGTERM
        return super().stop()


# -- the lab ------------------------------------------------------------------------------------


def lab_users(count: int = 2000, tunnels: int = 1) -> str:
    """``user0..user{count-1}@isp-a.example`` get LNS A (preference 0) then LNS B
    (preference 10); every other user a plain Access-Accept (isp-b uses a static pool).

    ``tunnels`` > 1 spreads the users over that many Tunnel-Assignment-IDs per LNS
    (``lns-a-0``, ``lns-a-1``, ...): separate tunnels to the same LNS (RFC 2868 3.7), as
    operators do to spread a big population over several control connections."""

    def entry(i: int) -> str:
        groups = []
        for tag, (name, addr, pref) in enumerate((("lns-a", LNS_A, 0), ("lns-b", LNS_B, 10)), 1):
            assignment = name if tunnels <= 1 else f"{name}-{i % tunnels}"
            groups += [
                f"Tunnel-Type:{tag} = L2TP", f"Tunnel-Medium-Type:{tag} = IPv4",
                f'Tunnel-Server-Endpoint:{tag} = "{addr}"',
                f'Tunnel-Password:{tag} = "{TUNNEL_SECRET}"',
                f"Tunnel-Preference:{tag} = {pref}",
                f'Tunnel-Assignment-Id:{tag} = "{assignment}"',
            ]  # fmt: skip
        attrs = ["Service-Type = Framed-User", "Framed-Protocol = PPP", 'Class = "lab-billing"']
        body = ",\n\t".join([*attrs, *groups])
        return f'user{i}@isp-a.example\tCleartext-Password := "{PASSWORD}"\n\t{body}\n\n'

    return (
        "# Generated by ops/lab/faults.py.\n"
        + "".join(entry(i) for i in range(count))
        + f'DEFAULT\tCleartext-Password := "{PASSWORD}"\n'
        "\tService-Type = Framed-User,\n\tFramed-Protocol = PPP\n"
    )


class FaultLab(_BrokerLab):
    """:class:`BrokerLab` with ``sim lns`` LNSs, impairable LNS links and fault helpers.

    ``impair``: names of the LNSs ("lns-a", "lns-b") whose link gets an :class:`Impairment`
    relay; ``lns_args``: extra ``sim lns`` arguments; ``state``: "memory", "redis" or
    "sentinel" (a master, a replica and one Sentinel in the broker namespace);
    ``realm_a``: YAML lines added to the isp-a.example realm policy (``max_tunnel_sessions``,
    ``lockout_hold``, ...); ``users``: how many isp-a users FreeRADIUS knows;
    ``hello_interval``/``echo_interval``: the broker's L2TP HELLO and PPP LCP echo settings."""

    def __init__(
        self,
        *,
        impair: Sequence[str] = (),
        lns_args: Sequence[str] = (),
        state: str = "memory",
        hello_interval: float = 60.0,
        echo_interval: float = 10.0,
        spool_sync: str = "full",
        users: int = 2000,
        realm_a: str = "",
        tunnels: int = 1,
        **kw: Any,
    ) -> None:
        super().__init__(state="redis" if state == "redis" else "memory", **kw)
        self.state_kind = state
        self.impair_names = tuple(impair)
        self.lns_args = tuple(lns_args)
        self.hello_interval = hello_interval
        self.echo_interval = echo_interval
        self.spool_sync = spool_sync
        self.user_count = users
        self.realm_a_extra = realm_a
        self.tunnels = tunnels
        self.impairments: dict[str, Impairment] = {}
        self.sims: dict[str, SimLns] = {}
        self.redis_procs: dict[str, subprocess.Popen[Any]] = {}
        self.redis_ports = {"master": 6379, "replica": 6380, "sentinel": 26379}

    def _build(self) -> None:
        self.sub = Netns("fsub")
        self.lac = Netns("flac")
        ports = []
        for i, name in enumerate(("lns-a", "lns-b")):
            ns = Netns("f" + name)
            self.lns_ns[name] = ns
            if name in self.impair_names:
                port, inner = veth(self.lac, self.lac, None, None, prefix="p")
                outer, lns_end = veth(self.lac, ns, None, None, prefix="c")
                imp = Impairment(self.lac, inner, outer, self.dir / "impair", seed=i + 1)
                imp.start()
                self.impairments[name] = imp
            else:
                port, lns_end = veth(self.lac, ns, None, None, prefix="c")
            rename_to_eth0(ns, lns_end)
            ns.add_address("eth0", f"{LNS_ADDR[name]}/24")
            ports.append(port)
        bridge(self.lac, ports, f"{LAC_ADDR}/24")
        for _ in range(self.node_count):
            sub_end, lac_end = veth(self.sub, self.lac, None, None, prefix="a")
            self.access_ifaces.append((sub_end, lac_end))
        self.acct_port = free_udp_port()
        self.radius = FreeRadius(
            self.dir / "radius", auth_port=1812, acct_port=1813,
            clients=[LabClient("broker", f"{LAC_ADDR}/32", RADIUS_SECRET)],
            address=LAC_ADDR, netns=self.lac.name, users=lab_users(self.user_count, self.tunnels),
        )  # fmt: skip
        self.radius.start()
        for name in ("lns-a", "lns-b"):
            sim = SimLns(
                self.lns_ns[name], LNS_ADDR[name], LNS_POOL[name], self.dir / name,
                "--hostname", name, *self.lns_args,
            )  # fmt: skip
            sim.start()
            self.sims[name] = sim
            self.lns[name] = sim  # type: ignore[assignment]  # BrokerLab.close() stops it
        self._write_policies()
        if self.state_kind == "redis":
            self.start_redis()
        elif self.state_kind == "sentinel":
            self.start_sentinel()
        for i in range(self.node_count):
            self.start_broker(i)

    # -- Redis ----------------------------------------------------------------------------
    def _redis(self, role: str, args: Sequence[str]) -> subprocess.Popen[Any]:
        assert self.lac is not None
        rdir = self.dir / f"redis-{role}"
        rdir.mkdir(exist_ok=True)
        proc = self.lac.popen(
            [*args, "--dir", str(rdir), "--logfile", str(rdir / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.redis_procs[role] = proc
        port = self.redis_ports[role]
        ns = self.lac

        def answers() -> bool:
            r = ns.run(["redis-cli", "-p", str(port), "ping"], check=False)
            return "PONG" in r.stdout

        if not poll(answers, 15, interval=0.1):
            raise RuntimeError(f"redis {role} did not start")
        return proc

    def redis_server(self, role: str) -> subprocess.Popen[Any]:
        """(Re)start the master or the replica redis-server (same port, same directory)."""
        port = self.redis_ports[role]
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]  # fmt: skip
        if role == "replica":
            args += ["--replicaof", "127.0.0.1", str(self.redis_ports["master"])]
        return self._redis(role, args)

    def start_sentinel(self) -> None:
        self.redis_server("master")
        self.redis_server("replica")
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.redis_ports['sentinel']}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor lab 127.0.0.1 {self.redis_ports['master']} 1\n"
            "sentinel down-after-milliseconds lab 1000\n"
            "sentinel failover-timeout lab 5000\n"
        )
        self._redis("sentinel", ["redis-server", str(conf), "--sentinel"])

    def redis_cli(self, role: str, *args: str) -> str:
        assert self.lac is not None
        r = self.lac.run(["redis-cli", "-p", str(self.redis_ports[role]), *args], check=False)
        return r.stdout.strip()

    def start_redis(self) -> None:
        self.redis_server("master")
        self.redis = self.redis_procs["master"]

    def stop_redis(self, role: str = "master", hard: bool = False) -> None:
        proc = self.redis_procs.pop(role, None)
        if proc is not None:
            kill9(proc) if hard else stop_process(proc)

    # -- the broker -------------------------------------------------------------------------
    def broker_config(self, i: int) -> Path:
        path = super().broker_config(i)
        lines = path.read_text().splitlines()
        state = {
            "memory": "memory",
            "redis": f"redis://127.0.0.1:{self.redis_ports['master']}/0",
            "sentinel": f"redis+sentinel://127.0.0.1:{self.redis_ports['sentinel']}/lab/0",
        }[self.state_kind]
        out = []
        for line in lines:
            if line.startswith("state:"):
                line = f"state: {state}"
            elif line.startswith("ppp:"):
                line = f"ppp: {{auth: [chap, pap], echo_interval: {self.echo_interval}}}"
            elif line.startswith("  retransmit:"):
                out.append(line)
                line = f"  hello_interval: {self.hello_interval}"
            out.append(line)
        out.append(f"accounting: {{spool_sync: {self.spool_sync}}}")
        path.write_text("\n".join(out) + "\n")
        return path

    def kill_broker(self, i: int = 0) -> int | None:
        """SIGKILL the broker (no Stop, no StopCCN, no Accounting-Off)."""
        return kill9(self.brokers[i])

    def broker_sample(self, i: int = 0) -> dict[str, float]:
        proc = self.brokers[i]
        return proc_sample(proc.pid) if proc.poll() is None else {}

    def impair(self, name: str, **kw: Any) -> ImpairSettings:
        """Set the impairment of LNS ``name``'s link (no arguments: a clean link)."""
        return self.impairments[name].set(**kw)

    def _write_policies(self) -> None:
        super()._write_policies()
        if self.realm_a_extra:
            path = self.dir / "policies" / "realms" / "isp-a.example.yaml"
            path.write_text(path.read_text() + self.realm_a_extra.strip() + "\n")

    def metric(self, series: str, node: int = 0, **labels: str) -> float:
        """Sum of ``l2tp_broker_<series>`` samples in /metrics whose labels include
        ``labels``."""
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for line in str(self.control("/metrics", node)).splitlines():
            if line.startswith("#") or " " not in line:
                continue
            key, value = line.rsplit(" ", 1)
            base = key.split("{", 1)[0]
            if base != f"l2tp_broker_{series}" or any(w not in key for w in want):
                continue
            with contextlib.suppress(ValueError):
                total += float(value)
        return total

    def lns_totals(self) -> tuple[int, int]:
        """(IPCP-up sessions, sessions) summed over the LNS emulators' status files."""
        ipcp = sessions = 0
        for sim in self.sims.values():
            st = sim.status()
            ipcp += int(st.get("ipcp_up", 0))
            sessions += int(st.get("sessions", 0))
        return ipcp, sessions

    def agreement(self, node: int = 0) -> tuple[int, int, int, int] | None:
        """(spliced, broker calls, LNS IPCP up, LNS sessions) when all four are equal (no call
        half up or stuck in set-up on either side), else None."""
        rows = self.sessions(node)
        spliced = sum(1 for r in rows if r["state"] == "spliced")
        ipcp, lns_sessions = self.lns_totals()
        if spliced == len(rows) == ipcp == lns_sessions:
            return spliced, len(rows), ipcp, lns_sessions
        return None

    def hold(
        self, count: int, *, timeout: float, extra: Sequence[str] = (), rate: float = 200.0
    ) -> tuple[dict[str, Any] | None, subprocess.Popen[Any], Path]:
        """Start ``count`` subscribers held until SIGTERM; wait until every setup settled.
        Returns (the generator's report at that moment or None on timeout, process, path
        of its final JSON report)."""
        self._runs += 1
        ready = self.dir / f"ready-{self._runs}.json"
        proc, out = self.subscribers(
            count, rate=rate, hold=-1, background=True,
            extra=["--ready-file", str(ready), "--timeout", str(timeout + 120), *extra],
        )  # fmt: skip
        poll(lambda: ready.exists() or proc.poll() is not None, timeout, interval=0.5)
        report = json.loads(ready.read_text()) if ready.exists() else None
        return report, proc, out

    def hang_up(self, proc: subprocess.Popen[Any], out: Path) -> dict[str, Any]:
        """SIGTERM a held generator; return its final report."""
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        stop_process(proc)
        data: dict[str, Any] = json.loads(out.read_text())
        return data

    def sessions(self, node: int = 0) -> list[dict[str, Any]]:
        rows = self.control("/sessions", node)
        return list(rows if isinstance(rows, list) else rows.get("sessions", []))

    def close(self) -> None:
        for sim in self.sims.values():
            with contextlib.suppress(Exception):
                sim.thaw()
        super().close()
        for proc in self.redis_procs.values():
            with contextlib.suppress(Exception):
                stop_process(proc)
        for imp in self.impairments.values():
            with contextlib.suppress(Exception):
                imp.stop()


@contextlib.contextmanager
def fault_lab(**kw: Any) -> Iterator[FaultLab]:
    lab = FaultLab(**kw)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.lab.faults")
    verbs = p.add_subparsers(dest="verb", required=True)
    r = verbs.add_parser("relay", help="userspace netem between two interfaces")
    r.add_argument("--a", required=True)
    r.add_argument("--b", required=True)
    r.add_argument("--control", type=Path, required=True)
    r.add_argument("--stats", type=Path, required=True)
    r.add_argument("--seed", type=int, default=1)
    verbs.add_parser("probe", help="does the kernel have tc netem?")
    args = p.parse_args(argv)
    if args.verb == "relay":
        relay(args.a, args.b, args.control, args.stats, args.seed)
        return 0
    print("tc netem available" if tc_netem_available() else "no tc netem in this kernel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
