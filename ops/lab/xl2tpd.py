"""Run xl2tpd (Debian package) as an L2TP LNS, or as a LAC, inside a lab network namespace.

    with Netns("lns") as ns:
        veth(lac, ns, "192.0.2.1/24", "192.0.2.2/24")
        with Xl2tpd(ns, Xl2tpdConfig(listen_addr="192.0.2.2", secret="s3cret")) as lns:
            ...            # lns.log() holds xl2tpd's debug output

Everything (xl2tpd.conf, l2tp-secrets, the pppd options file, pid and control files, the log)
lives in a private temporary directory that is removed on stop. xl2tpd runs in the foreground
(``-D``) so the namespace's process list owns it. On this machine's kernel (no /dev/ppp) xl2tpd
accepts a call (ICRQ -> ICRP, ICCN) and then fails to start pppd, so it ends the call with a CDN.

With ``lac_peer`` set, xl2tpd is a LAC instead: it dials ``lac_peer`` at start (``autodial``),
opening a tunnel and one incoming call to that LNS (then pppd fails the same way).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ops.lab.netns import LabDaemon, Netns, poll

__all__ = ["Xl2tpd", "Xl2tpdConfig", "udp_listening"]


@dataclass(frozen=True)
class Xl2tpdConfig:
    """Settings. ``secret`` enables tunnel authentication (``challenge = yes``); LNS role
    unless ``lac_peer`` is set."""

    listen_addr: str
    port: int = 1701
    secret: str | None = None
    hidden: bool = True
    host_name: str = "xl2tpd-lns"
    local_ip: str = "198.51.100.1"
    ip_range: str = "198.51.100.10-198.51.100.50"
    length_bit: bool = True
    debug: bool = True
    pppd_options: tuple[str, ...] = ("noauth", "nodefaultroute", "mtu 1400", "mru 1400")
    #: LAC role: the LNS address to dial at start (no LNS section is written then)
    lac_peer: str | None = None


def udp_listening(ns: Netns, port: int) -> bool:
    """True when some socket in ``ns`` listens on UDP ``port``."""
    out = ns.run(["ss", "-H", "-u", "-l", "-n", f"sport = :{port}"], check=False).stdout
    return bool(out.strip())


class Xl2tpd(LabDaemon):
    """One xl2tpd process in ``ns``; :meth:`start` waits until its UDP port is bound."""

    def __init__(self, ns: Netns, config: Xl2tpdConfig, binary: str = "xl2tpd") -> None:
        self.ns = ns
        self.config = config
        self.binary = shutil.which(binary) or f"/usr/sbin/{binary}"
        self.dir = Path(tempfile.mkdtemp(prefix="xl2tpd-"))
        self.conf_path = self.dir / "xl2tpd.conf"
        self.secrets_path = self.dir / "l2tp-secrets"
        self.options_path = self.dir / "options.xl2tpd"
        self.pid_path = self.dir / "xl2tpd.pid"
        self.control_path = self.dir / "l2tp-control"
        self.log_path = self.dir / "xl2tpd.log"
        self.proc = None
        self._out = None

    def write_config(self) -> None:
        c = self.config
        yes = {True: "yes", False: "no"}
        glob = [
            "[global]",
            f"listen-addr = {c.listen_addr}",
            f"port = {c.port}",
            f"auth file = {self.secrets_path}",
            "access control = no",
        ]
        if c.debug:
            glob += [
                "debug avp = yes",
                "debug network = yes",
                "debug packet = no",
                "debug state = yes",
                "debug tunnel = yes",
            ]
        common = [
            f"hostname = {c.host_name}",
            f"challenge = {yes[c.secret is not None]}",
            f"hidden bit = {yes[c.hidden]}",
            f"length bit = {yes[c.length_bit]}",
            "refuse pap = yes",
            "refuse chap = yes",
            f"pppoptfile = {self.options_path}",
        ]
        if c.lac_peer is None:
            section = [
                "[lns default]",
                f"ip range = {c.ip_range}",
                f"local ip = {c.local_ip}",
                "require authentication = no",
                *common,
            ]
        else:
            section = [
                "[lac lab]",
                f"lns = {c.lac_peer}",
                "autodial = yes",
                "redial = no",
                *common,
            ]
        self.conf_path.write_text("\n".join([*glob, "", *section, ""]))
        # l2tp-secrets: "<them> <me> <secret>"; "*" matches any host name.
        secret = c.secret if c.secret is not None else ""
        self.secrets_path.write_text(f"* * {secret}\n" if c.secret is not None else "")
        self.secrets_path.chmod(0o600)
        self.options_path.write_text("\n".join(c.pppd_options) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.write_config()
        self._out = self.log_path.open("wb")
        self.proc = self.ns.popen(
            [
                self.binary,
                "-D",
                "-c",
                str(self.conf_path),
                "-s",
                str(self.secrets_path),
                "-p",
                str(self.pid_path),
                "-C",
                str(self.control_path),
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        proc = self.proc
        if not poll(
            lambda: proc.poll() is not None or udp_listening(self.ns, self.config.port), timeout
        ):
            self.stop()
            raise RuntimeError(f"xl2tpd did not bind UDP {self.config.port}: {self.log()}")
        if proc.poll() is not None:
            log = self.log()
            self.stop()
            raise RuntimeError(f"xl2tpd exited {proc.returncode}: {log}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
