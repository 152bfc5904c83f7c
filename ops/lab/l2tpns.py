"""Run l2tpns (Debian 2.4.1) as an L2TP LNS inside a lab network namespace.

Facts (DESIGN.md section 4) this launcher deals with:

- l2tpns looks up an interface named ``eth0``: :func:`rename_to_eth0` renames the lab veth end
  inside the namespace (only an interface we created, only inside our namespace).
- it reads its address pool from the fixed path /etc/l2tpns/ip_pool: the process runs in its
  own mount namespace (``unshare -m --propagation private``) with a private pool file
  bind-mounted over that path, so the host file is never changed and instances don't mix.
- it binds UDP 1701 on ``bind_address``, creates ``tun0`` (needs /dev/net/tun) and gives the
  tun device the same address; PPP is terminated in userspace and authenticated via RADIUS
  (``radius_server``/``radius_secret``; ``radius_port`` + 1 is accounting). A tunnel and a
  session come up without any RADIUS server; PPP authentication needs one.
- it starts as a cluster slave and ignores L2TP until it elects itself master after the
  heartbeat timeout (default 15 s): the config sets the shortest heartbeat timers l2tpns
  accepts (it raises the timeout to ~1.9 s) and :meth:`L2tpns.start` waits for the election.

    with Netns("lns") as ns:
        _, end = veth(lac, ns, "192.0.2.1/24", "192.0.2.2/24")
        rename_to_eth0(ns, end)
        with L2tpns(ns, L2tpnsConfig(bind_address="192.0.2.2", secret="s3cret")) as lns:
            ...            # lns.log() holds its debug log
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ops.lab.netns import LabDaemon, Netns, poll
from ops.lab.xl2tpd import udp_listening

__all__ = ["POOL_PATH", "L2tpns", "L2tpnsConfig", "rename_to_eth0"]

#: Where l2tpns reads its pool (compiled in).
POOL_PATH = "/etc/l2tpns/ip_pool"


def rename_to_eth0(ns: Netns, ifname: str) -> None:
    """Rename ``ifname`` (inside ``ns``) to ``eth0``; addresses survive the rename."""
    ns.run(["ip", "link", "set", ifname, "down"])
    ns.run(["ip", "link", "set", ifname, "name", "eth0"])
    ns.run(["ip", "link", "set", "eth0", "up"])


@dataclass(frozen=True)
class L2tpnsConfig:
    """Settings written as ``set key value`` lines (see startup-config(5)).

    ``secret`` is the tunnel secret (used when the LAC sends a Challenge). ``radius_server``
    None points RADIUS at 127.0.0.1 port 9 inside the namespace (nothing answers: PPP
    authentication then fails, which tests of tunnel/session setup do not reach).
    ``extra`` adds raw settings (key -> value, quoted as needed by the caller).
    """

    bind_address: str
    secret: str | None = None
    pool: str = "198.51.100.0/24"
    radius_server: str | None = None
    radius_port: int = 1812
    radius_secret: str = "radius-lab-secret"
    radius_authtypes: str = "pap,chap"
    radius_accounting: bool = False
    primary_dns: str = "198.51.100.253"
    secondary_dns: str = "198.51.100.254"
    debug: int = 3  #: >= 1 (start() waits for the master election message in the log)
    hostname: str = "l2tpns-lns"
    extra: Mapping[str, str] = field(default_factory=dict)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class L2tpns(LabDaemon):
    """One l2tpns process in ``ns``; :meth:`start` waits until UDP 1701 is bound."""

    def __init__(self, ns: Netns, config: L2tpnsConfig, binary: str = "l2tpns") -> None:
        self.ns = ns
        self.config = config
        self.binary = shutil.which(binary) or f"/usr/sbin/{binary}"
        self.dir = Path(tempfile.mkdtemp(prefix="l2tpns-"))
        self.conf_path = self.dir / "startup-config"
        self.pool_path = self.dir / "ip_pool"
        self.log_path = self.dir / "l2tpns.log"
        self.out_path = self.dir / "stdout.log"
        self.pid_path = self.dir / "l2tpns.pid"
        self.proc = None
        self._out = None

    def config_text(self) -> str:
        c = self.config
        radius = c.radius_server or "127.0.0.1"
        port = c.radius_port if c.radius_server else 9
        settings: dict[str, str] = {
            "debug": str(c.debug),
            "log_file": _quote(str(self.log_path)),
            "pid_file": _quote(str(self.pid_path)),
            "bind_address": c.bind_address,
            "cli_bind_address": "127.0.0.1",
            "send_garp": "no",
            "primary_dns": c.primary_dns,
            "secondary_dns": c.secondary_dns,
            "primary_radius": radius,
            "primary_radius_port": str(port),
            "radius_secret": _quote(c.radius_secret),
            "radius_authtypes": _quote(c.radius_authtypes),
            "radius_accounting": "yes" if c.radius_accounting else "no",
            "hostname": _quote(c.hostname),
            # Become cluster master (and so answer L2TP) after ~2 s instead of 15 s.
            "cluster_hb_interval": "2",
            "cluster_hb_timeout": "5",
        }
        if c.secret is not None:
            settings["l2tp_secret"] = _quote(c.secret)
        settings.update(c.extra)
        return "".join(f"set {k} {v}\n" for k, v in settings.items())

    def start(self, timeout: float = 10.0) -> None:
        if not Path("/dev/net/tun").exists():
            raise RuntimeError("l2tpns needs /dev/net/tun")
        self.conf_path.write_text(self.config_text())
        self.conf_path.chmod(0o600)
        self.pool_path.write_text(self.config.pool + "\n")
        script = (
            f"mount --bind {shlex.quote(str(self.pool_path))} {POOL_PATH} && "
            f"exec {shlex.quote(self.binary)} -c {shlex.quote(str(self.conf_path))}"
        )
        self._out = self.out_path.open("wb")
        self.proc = self.ns.popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        proc = self.proc
        if not poll(lambda: proc.poll() is not None or udp_listening(self.ns, 1701), timeout):
            log = self.log()
            self.stop()
            raise RuntimeError(f"l2tpns did not bind UDP 1701: {log[-2000:]}")
        if not poll(lambda: proc.poll() is not None or self.is_master(), timeout):
            log = self.log()
            self.stop()
            raise RuntimeError(f"l2tpns did not become cluster master: {log[-2000:]}")
        if proc.poll() is not None:
            log = self.log()
            self.stop()
            raise RuntimeError(f"l2tpns exited {proc.returncode}: {log[-2000:]}")

    def is_master(self) -> bool:
        """True once l2tpns logged its election (it handles L2TP only as master)."""
        return "declaring myself the master" in self.log()

    def log(self) -> str:
        parts = []
        for path in (self.out_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to l2tpns (SIGQUIT: clear every tunnel and session, then exit)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
