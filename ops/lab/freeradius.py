"""Start and stop a lab FreeRADIUS (auth + accounting) and read its detail file.

    auth, acct = free_udp_ports(2)
    with FreeRadius(tmp_path / "r1", auth_port=auth, acct_port=acct,
                    clients=[LabClient("lo", "127.0.0.1", "s3cret")]) as radius:
        ... send requests to 127.0.0.1:radius.auth_port ...
        radius.records()     # detail-file records (accounting)

The configuration comes from :mod:`ops.radius.config` (users file ``ops/radius/users``).
``netns="NAME"`` runs the server with ``ip netns exec NAME`` (``address`` must then exist in
that namespace). The server runs in the foreground (``freeradius -f -d DIR``, no ``-X``) and is
ready when its log says so and, for loopback servers, when it answers a Status-Server.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.radius.config import LabClient, write_config

__all__ = ["FreeRadius", "LabClient", "free_udp_port", "free_udp_ports", "parse_detail"]


def free_udp_port(address: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (bind to 0 and release)."""
    return free_udp_ports(1, address)[0]


def free_udp_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` distinct UDP ports that were free a moment ago (all bound at once)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((address, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class FreeRadius:
    directory: Path
    auth_port: int
    acct_port: int
    clients: Sequence[LabClient]
    address: str = "127.0.0.1"
    netns: str | None = None
    users: str | None = None
    threads: int = 4
    binary: str = "freeradius"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.directory / "log" / "radius.log"

    @property
    def detail_path(self) -> Path:
        return self.directory / "radacct" / "detail"

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        """Write the configuration, start the server and wait until it answers."""
        if self.proc is not None:
            raise RuntimeError("already running")
        self.directory = Path(self.directory).resolve()
        write_config(
            self.directory,
            auth_port=self.auth_port,
            acct_port=self.acct_port,
            clients=self.clients,
            address=self.address,
            users=self.users,
            threads=self.threads,
        )
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [self.binary, "-f", "-d", str(self.directory)]
        if self.netns is not None:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"freeradius exited with {self.proc.returncode}: {self._log_tail(offset)}"
                    )
                if b"Ready to process requests" in self._log_since(offset) and self._answers():
                    return
                time.sleep(0.05)
            raise RuntimeError(f"freeradius not ready after {timeout} s: {self._log_tail(offset)}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def records(self) -> list[dict[str, str]]:
        """Accounting records from the detail file (attribute -> value, quotes removed)."""
        return parse_detail(self.detail_path.read_text() if self.detail_path.exists() else "")

    # -- internals ---------------------------------------------------------------------------

    def _log_since(self, offset: int) -> bytes:
        if not self.log_path.exists():
            return b""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read()

    def _log_tail(self, offset: int) -> str:
        return self._log_since(offset).decode("utf-8", "replace")[-2000:]

    def _answers(self) -> bool:
        """Status-Server (RFC 5997) from loopback; inside a namespace the log line suffices."""
        if self.netns is not None or self.address not in ("127.0.0.1", "::1"):
            return True
        client = next((c for c in self.clients if c.ipaddr in ("127.0.0.1", "::1")), None)
        if client is None:
            return True
        from broker.radius import packet

        secret = client.secret.encode()
        auth = os.urandom(16)
        request = packet.encode_request(12, 1, [], secret, auth)
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(request, (self.address, self.auth_port))
            try:
                reply: Any = s.recv(4096)
            except OSError:
                return False
        return packet.verify_reply(reply, auth, secret)


_LINE = re.compile(r"^\s+([A-Za-z0-9:.-]+) = (.*)$")


def parse_detail(text: str) -> list[dict[str, str]]:
    """Parse FreeRADIUS detail records: a date header line, then indented ``Name = value``."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur = None
            continue
        m = _LINE.match(line)
        if m is None:  # the time stamp that starts a record
            if cur:
                out.append(cur)
            cur = {}
            continue
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if cur is not None:
            cur.setdefault(m.group(1), value)
    if cur:
        out.append(cur)
    return out
