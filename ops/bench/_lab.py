"""Shared set-up of the scale benchmarks (issue 8): namespaces, FreeRADIUS, ``sim lns``, broker.

    sub ns ──(PPPoE veth)── lac ns [l2tp-broker run, FreeRADIUS] ──bridge 198.51.100.0/24──
                                                       ├── lns0 ns [sim lns 198.51.100.2]
                                                       └── lns1 ns [sim lns 198.51.100.3]

RADIUS (real FreeRADIUS, every user accepted) answers the broker with RFC 2868 tagged tunnel
groups: LNS 0 preference 0, LNS 1 preference 10 (when there are two), so losing LNS 0 moves
the calls to LNS 1. ``sim subscribers`` runs in the subscriber namespace. Helpers read the
CPU time and resident memory of each process from /proc (per-CPU-second figures do not
depend on how busy the shared machine is). Root only; everything is torn down on close.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from broker.control.client import ControlClient, ControlError
from ops.lab.freeradius import FreeRadius, LabClient
from ops.lab.netns import Netns, bridge, poll, stop_process, venv_python, veth

__all__ = ["LabOptions", "ScaleLab", "proc_cpu", "proc_rss_kb", "progress_lines"]

ROOT = Path(__file__).resolve().parents[2]
LAC = "198.51.100.1"
LNS_ADDRS = ("198.51.100.2", "198.51.100.3")
RADIUS_SECRET = "scale-radius-secret"
TUNNEL_SECRET = "scale-tunnel-secret"
PASSWORD = "scale-password"
REALM = "isp-a.example"
_TICK = os.sysconf("SC_CLK_TCK")
#: ``python -c`` body: run ``python -m broker ...`` under cProfile timed by CPU time.
_CPROFILE = """\
import cProfile, runpy, sys, time
out = sys.argv[1]
sys.argv = ["l2tp-broker", *sys.argv[2:]]
prof = cProfile.Profile(time.process_time)
prof.enable()
try:
    runpy.run_module("broker", run_name="__main__")
except SystemExit:
    pass
finally:
    prof.disable()
    prof.dump_stats(out)
"""


def add_tunnel_args(p: argparse.ArgumentParser) -> None:
    """--tunnels, --max-tunnel-sessions, --padt-per-s (LabOptions tunnels_per_lns,
    max_tunnel_sessions, padt_per_s)."""
    p.add_argument(
        "--tunnels",
        type=int,
        default=1,
        help="tunnel identities (Tunnel-Assignment-Id) per LNS; the broker opens as many "
        "tunnels per identity as --max-tunnel-sessions requires",
    )
    p.add_argument(
        "--max-tunnel-sessions", type=int, default=65535, help="policy cap per tunnel (<= 65,535)"
    )
    p.add_argument("--padt-per-s", type=float, help="broker pppoe.padt_per_s (default 5,000)")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_PROGRESS = re.compile(
    r"\[\s*([\d.]+)s\] started=(\d+) up=(\d+) in-setup=(\d+) failed=(\d+) now-up=(\d+)"
)


def progress_lines(text: str) -> list[tuple[float, int, int, int, int, int]]:
    """(t, started, ever up, in setup, failed, up now) of every ``sim subscribers`` progress
    line in ``text``."""
    return [
        (float(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        for m in _PROGRESS.finditer(text)
    ]


def _users(lns_count: int, tunnels_per_lns: int = 1) -> str:
    """Every user: one RFC 2868 tag group per (LNS, tunnel); LNS i has preference 10 * i, its
    groups differ by Tunnel-Assignment-Id, so they are separate tunnels (RFC 2868 3.7) that
    share the load. One identity may carry more than 65,535 sessions: the broker caps each
    *tunnel* at the policy's ``max_tunnel_sessions`` (<= 65,535, RFC 2661 16-bit session ids)
    and opens another tunnel with the same identity when the open ones are full."""
    groups = []
    for i in range(lns_count):
        for k in range(tunnels_per_lns):
            tag = i * tunnels_per_lns + k + 1
            groups.append(
                f"\tTunnel-Type:{tag} = L2TP,\n\tTunnel-Medium-Type:{tag} = IPv4,\n"
                f'\tTunnel-Server-Endpoint:{tag} = "{LNS_ADDRS[i]}",\n'
                f'\tTunnel-Password:{tag} = "{TUNNEL_SECRET}",\n'
                f"\tTunnel-Preference:{tag} = {10 * i},\n"
                f'\tTunnel-Assignment-Id:{tag} = "lns{i}-t{k}"'
            )
    return (
        f'DEFAULT Cleartext-Password := "{PASSWORD}"\n'
        "\tService-Type = Framed-User,\n\tFramed-Protocol = PPP,\n" + ",\n".join(groups) + "\n"
    )


@dataclass(frozen=True, slots=True)
class LabOptions:
    lns_count: int = 1
    #: tunnel identities (Tunnel-Assignment-Id) per LNS in the RADIUS reply
    tunnels_per_lns: int = 1
    #: extra ``sim lns`` arguments (every emulator)
    lns_args: tuple[str, ...] = ("--receive-window", "256", "--reuse-addresses")
    broker_echo_interval: float = 10.0
    hello_interval: float = 60.0
    retransmit: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 8.0)
    receive_window: int = 256
    max_sessions: int = 65000
    max_setups: int = 2000
    max_tunnel_sessions: int = 65535
    lockout_hold: float = 300.0
    #: broker ``pppoe.padt_per_s`` (None: the default, 5,000)
    padt_per_s: float | None = None
    #: environment for the broker process (e.g. profiling switches)
    broker_env: dict[str, str] = field(default_factory=dict)
    #: command prefix for the broker (e.g. a profiler); the broker's own argv follows
    broker_wrap: tuple[str, ...] = ()
    #: run the broker from this source tree instead (before/after comparisons)
    broker_root: Path | None = None
    #: profile the broker with cProfile on CPU time (``time.process_time``) into this file
    #: (written when the broker exits)
    cprofile: Path | None = None


class ScaleLab:
    """Build with :meth:`start` (or ``with``); tear down with :meth:`close`."""

    def __init__(self, options: LabOptions | None = None, dir: Path | None = None) -> None:
        self.o = options or LabOptions()
        self.dir = Path(dir or tempfile.mkdtemp(prefix="scale-lab-"))
        self._own_dir = dir is None
        self.sub: Netns | None = None
        self.lac: Netns | None = None
        self.lns_ns: list[Netns] = []
        self.lns: list[subprocess.Popen[Any] | None] = []
        self.broker: subprocess.Popen[Any] | None = None
        self.radius: FreeRadius | None = None
        self.sub_if = ""
        self.lac_if = ""
        self._files: list[IO[bytes]] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self.env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            SCALE_RADIUS_SECRET=RADIUS_SECRET,
            SIM_LNS_SECRET=TUNNEL_SECRET,
            SIM_PASSWORD=PASSWORD,
        )

    def __enter__(self) -> ScaleLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        o = self.o
        self.sub, self.lac = Netns("ssub"), Netns("slac")
        self.sub_if, self.lac_if = veth(self.sub, self.lac, None, None, prefix="s")
        ports = []
        for i in range(o.lns_count):
            ns = Netns(f"slns{i}")
            self.lns_ns.append(ns)
            lac_end, _ = veth(self.lac, ns, None, f"{LNS_ADDRS[i]}/24", prefix=f"n{i}")
            ports.append(lac_end)
        bridge(self.lac, ports, f"{LAC}/24")
        self.radius = FreeRadius(
            self.dir / "radius", auth_port=1812, acct_port=1813,
            clients=[LabClient("lab", "198.51.100.0/24", RADIUS_SECRET)],
            address=LAC, netns=self.lac.name, users=_users(o.lns_count, o.tunnels_per_lns),
        )  # fmt: skip
        self.radius.start()
        for i in range(o.lns_count):
            self.lns.append(None)
            self.start_lns(i)
        self.start_broker()

    def _popen(
        self, ns: Netns, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT
    ) -> Any:
        log = (self.dir / f"{name}.log").open("ab")
        self._files.append(log)
        proc = ns.popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(cwd))
        self._procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status_path(self, i: int) -> Path:
        return self.dir / f"lns{i}.json"

    def start_lns(self, i: int) -> None:
        status = self.status_path(i)
        status.unlink(missing_ok=True)
        argv = [
            venv_python(), "-m", "broker", "sim", "lns", "--listen", LNS_ADDRS[i],
            "--port", "1701", "--pool", f"203.0.113.{64 * i}/26", "--hostname", f"lns{i}",
            "--status-file", str(status), *self.o.lns_args,
        ]  # fmt: skip
        self.lns[i] = self._popen(self.lns_ns[i], f"lns{i}", argv, self.env)
        if not poll(status.exists, 20):
            raise RuntimeError(f"sim lns {i} did not start: {self.log(f'lns{i}')[-2000:]}")

    def kill_lns(self, i: int) -> float:
        """SIGKILL emulator ``i`` (an LNS failure: no StopCCN); returns the time it died."""
        proc = self.lns[i]
        assert proc is not None
        proc.kill()
        proc.wait(10)
        return time.monotonic()

    def lns_status(self, i: int) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_path(i).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def _config(self) -> Path:
        o = self.o
        pol = self.dir / "policies"
        (pol / "realms").mkdir(parents=True, exist_ok=True)
        (pol / "defaults.yaml").write_text(
            f"policy:\n  tunnel_source: radius\n  lockout_hold: {o.lockout_hold}\n"
        )
        (pol / "realms" / f"{REALM}.yaml").write_text(
            f"realm: {REALM}\nmatch: {{kind: suffix, value: {REALM}}}\ntunnel_source: radius\n"
            f"max_tunnel_sessions: {o.max_tunnel_sessions}\nlockout_hold: {o.lockout_hold}\n"
        )
        path = self.dir / "broker.yaml"
        rtx = ", ".join(str(x) for x in o.retransmit)
        padt = f", padt_per_s: {o.padt_per_s}" if o.padt_per_s is not None else ""
        path.write_text(
            f"""\
node_id: scale-lac
interfaces: [{self.lac_if}]
pppoe: {{ac_name: scale-lac, max_sessions: {o.max_sessions}, max_setups: {o.max_setups},
        padi_per_mac_per_s: 5{padt}}}
ppp: {{auth: [chap, pap], echo_interval: {o.broker_echo_interval}}}
l2tp: {{listen: {LAC}, port: 1701, host_name: scale-lac, hide_avps: false,
       hello_interval: {o.hello_interval}, retransmit: [{rtx}],
       receive_window: {o.receive_window}}}
radius:
  nas_ip: {LAC}
  nas_identifier: scale-lac
  bind: {LAC}
  servers:
    - {{name: lab, address: {LAC}, port: 1812, secret: "env:SCALE_RADIUS_SECRET",
        timeout: [2, 2, 3]}}
state: memory
policies: {pol}
state_dir: {self.dir / "state"}
control: unix:{self.dir / "control.sock"}
log: {{format: text, level: warn}}
"""
        )
        return path

    def start_broker(self) -> None:
        assert self.lac is not None
        config = str(self._config())
        argv = [*self.o.broker_wrap, venv_python(), "-m", "broker", "run", "-c", config]
        if self.o.cprofile is not None:
            argv = [venv_python(), "-c", _CPROFILE, str(self.o.cprofile), "run", "-c", config]
        env = dict(self.env, **self.o.broker_env)
        root = self.o.broker_root or ROOT
        env["PYTHONPATH"] = str(root)
        self.broker = proc = self._popen(self.lac, "broker", argv, env, cwd=root)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited {proc.returncode}: {self.log('broker')[-3000:]}")
            with contextlib.suppress(ControlError):
                return bool(self.control("/status"))
            return False

        if not poll(ready, 60, 0.2):
            raise RuntimeError(f"broker did not start: {self.log('broker')[-3000:]}")

    def control(self, path: str) -> Any:
        return ControlClient(f"unix:{self.dir / 'control.sock'}", timeout=30).get(path)

    def engine_counters(self) -> dict[str, float]:
        """The broker's engine counters (``engine.name`` -> value) from ``/metrics``."""
        out: dict[str, float] = {}
        pattern = re.compile(r'engine_counter\{engine="([^"]+)",name="([^"]+)"\} (\S+)')
        for m in pattern.finditer(self.control("/metrics")):
            out[f"{m[1]}.{m[2]}"] = float(m[3])
        return out

    def broker_pid(self) -> int:
        """The broker's Python process (below a profiler wrapper, if any)."""
        assert self.broker is not None
        pid = self.broker.pid
        if not self.o.broker_wrap:
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            kids = children.read_text().split()
            if kids:
                return int(kids[0])
        return pid

    def stop_broker(self) -> None:
        """SIGTERM the broker and wait (a profiler wrapper writes its output then)."""
        if self.broker is not None:
            stop_process(self.broker, timeout=120)

    # -- load --------------------------------------------------------------------------------
    def subscribers(self, name: str, args: Sequence[str]) -> subprocess.Popen[Any]:
        """``sim subscribers`` in the subscriber namespace (output in ``<name>.log``)."""
        assert self.sub is not None
        argv = [
            venv_python(), "-m", "broker", "sim", "subscribers", "--interface", self.sub_if,
            "--user-template", f"user{{i}}@{REALM}", "--password", PASSWORD, *args,
        ]  # fmt: skip
        proc: subprocess.Popen[Any] = self._popen(self.sub, name, argv, self.env)
        return proc

    def close(self) -> None:
        if self.broker is not None:  # first, alone: a profiled broker writes its output
            with contextlib.suppress(Exception):
                stop_process(self.broker, timeout=120)
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                stop_process(proc, timeout=30)
        if self.radius is not None:
            with contextlib.suppress(Exception):
                self.radius.stop()
        for ns in (*self.lns_ns, self.lac, self.sub):
            if ns is not None:
                with contextlib.suppress(Exception):
                    ns.close()
        for f in self._files:
            f.close()
        if self._own_dir and not os.environ.get("SCALE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
