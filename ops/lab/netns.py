"""Network namespaces for labs and integration tests (root only).

Everything here creates its own namespaces and veth pairs under random names and deletes them
again; nothing touches an interface it did not create. Addresses come from the documentation
ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24).

    with Netns("lac") as lac, Netns("lns") as lns:
        a, b = veth(lac, lns, "192.0.2.1/24", "192.0.2.2/24")
        lns.popen(["xl2tpd", "-D", ...])
        lac.run(["ping", "-c1", "192.0.2.2"])
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["LabDaemon", "Netns", "bridge", "poll", "stop_process", "unique_name", "veth"]


def unique_name(prefix: str, limit: int = 15) -> str:
    """``prefix`` plus random hex, at most ``limit`` characters (IFNAMSIZ - 1 for links)."""
    return (prefix[: limit - 7] + "-" + secrets.token_hex(3))[:limit]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Netns:
    """A network namespace with its loopback up; deleted (with its processes) on close."""

    def __init__(self, prefix: str = "bl") -> None:
        self.name = unique_name(prefix, 24)
        self._procs: list[subprocess.Popen[Any]] = []
        _ip("netns", "add", self.name)
        self.run(["ip", "link", "set", "lo", "up"])

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prefix_cmd(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self, cmd: Sequence[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.prefix_cmd(cmd), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"in netns {self.name}: {' '.join(cmd)} exited {proc.returncode}: "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside the namespace; it is killed when the namespace closes."""
        kwargs.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.prefix_cmd(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def add_address(self, ifname: str, cidr: str) -> None:
        self.run(["ip", "addr", "add", cidr, "dev", ifname])
        self.run(["ip", "link", "set", ifname, "up"])

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.name, check=False).stdout.split()
        return [int(p) for p in out if p.isdigit()]

    def close(self) -> None:
        for proc in reversed(self._procs):
            stop_process(proc)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", self.name, check=False)


class LabDaemon:
    """Lifecycle shared by the lab's peer daemons (xl2tpd, l2tpns): one process started in a
    namespace with its output in a file under its own temporary directory.

    Subclasses set ``self.dir``, then in ``start()`` open ``self._out`` and set ``self.proc``.
    """

    dir: Path
    proc: subprocess.Popen[Any] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        code = stop_process(self.proc) if self.proc is not None else None
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LabDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def veth(
    a: Netns | None,
    b: Netns | None,
    addr_a: str | None = None,
    addr_b: str | None = None,
    *,
    prefix: str = "v",
) -> tuple[str, str]:
    """Create a veth pair with one end in ``a`` and one in ``b`` (None = the host).

    Returns the two interface names (random, unique). Both ends are brought up; addresses
    (CIDR) are added when given.
    """
    name_a, name_b = unique_name(prefix + "a"), unique_name(prefix + "b")
    _ip("link", "add", name_a, "type", "veth", "peer", "name", name_b)
    for ns, name, addr in ((a, name_a, addr_a), (b, name_b, addr_b)):
        if ns is not None:
            _ip("link", "set", name, "netns", ns.name)
            if addr:
                ns.add_address(name, addr)
            else:
                ns.run(["ip", "link", "set", name, "up"])
        else:
            if addr:
                _ip("addr", "add", addr, "dev", name)
            _ip("link", "set", name, "up")
    return name_a, name_b


def bridge(ns: Netns, ports: Sequence[str], cidr: str | None = None) -> str:
    """A Linux bridge inside ``ns`` enslaving ``ports`` (already in ``ns``)."""
    name = unique_name("br")
    ns.run(["ip", "link", "add", name, "type", "bridge"])
    for port in ports:
        ns.run(["ip", "link", "set", port, "master", name])
        ns.run(["ip", "link", "set", port, "up"])
    if cidr:
        ns.run(["ip", "addr", "add", cidr, "dev", name])
    ns.run(["ip", "link", "set", name, "up"])
    return name


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
    """SIGTERM the process group, then SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Call ``predicate`` until it returns a truthy value or ``timeout`` s pass; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@contextlib.contextmanager
def namespaces(*prefixes: str) -> Iterator[list[Netns]]:
    made: list[Netns] = []
    try:
        for p in prefixes:
            made.append(Netns(p))
        yield made
    finally:
        for ns in reversed(made):
            ns.close()


def venv_python() -> str:
    """The project's virtualenv interpreter (falls back to the running one)."""
    here = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    return str(here) if here.exists() else os.environ.get("PYTHON", "python3")
