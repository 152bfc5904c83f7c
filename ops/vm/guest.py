"""A lab guest: one qemu (TCG) VM attached by tap devices to bridges in a lab namespace, with a
command agent. See the package docstring (``ops/vm/__init__.py``) for the API contract.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.lab.netns import Netns, poll, stop_process, unique_name
from ops.vm.initramfs import FAIL_MARK, READY_MARK, build_initramfs
from ops.vm.kernel import KernelImage, ensure_kernel
from ops.vm.qemu import QemuSpec, qemu_argv

__all__ = ["CompletedCommand", "Guest", "GuestError", "GuestProcess", "random_mac"]


class GuestError(RuntimeError):
    """The guest failed to boot, died, or a command channel operation failed."""


@dataclass(frozen=True, slots=True)
class CompletedCommand:
    cmd: str
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def check(self) -> CompletedCommand:
        if self.rc != 0:
            raise GuestError(f"guest command {self.cmd!r} exited {self.rc}: {self.out[-2000:]}")
        return self


@dataclass(frozen=True, slots=True)
class GuestProcess:
    """A background process in the guest (its output goes to ``log``, a host-visible path)."""

    guest: Guest
    pid: int
    log: Path

    def alive(self) -> bool:
        """False once the process is gone or a zombie. A guest too busy to answer within the
        timeout counts as alive (not provably dead), so polls for an exit keep polling."""
        r = self.guest.run(f"cat /proc/{self.pid}/stat", timeout=60)
        if r.rc == 124:
            return True
        fields = r.out.rsplit(")", 1)
        return r.ok and len(fields) == 2 and fields[1].split()[:1] != ["Z"]

    def kill(self, sig: str = "TERM") -> CompletedCommand:
        return self.guest.run(f"kill -{sig} {self.pid}", timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def random_mac() -> str:
    """A locally administered unicast MAC in qemu's 52:54:00 range."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


class Guest:
    """A qemu guest booted from the Debian kernel with the host root as its root file system.

    ``nics`` are ``(bridge, mac)`` pairs: a tap device is created in ``ns`` for each one and
    enslaved to the bridge (already present in ``ns``); ``mac`` may be ``None`` (random). In the
    guest they are ``eth0``, ``eth1``, ... in order. ``ns`` is a :class:`Netns`, a namespace
    name or ``None`` (the host's own namespace: only for NIC-less guests).
    """

    def __init__(
        self,
        name: str,
        ns: Netns | str | None = None,
        nics: Sequence[tuple[str, str | None]] = (),
        *,
        memory: int = 512,
        cpus: int = 1,
        workdir: Path | str | None = None,
        kernel: KernelImage | None = None,
        append: Sequence[str] = (),
        nice: int = 10,
        keep_workdir: bool = False,
    ) -> None:
        self.name = name
        self.ns_name = ns.name if isinstance(ns, Netns) else ns
        self.nics = [(br, mac or random_mac()) for br, mac in nics]
        self.memory = memory
        self.cpus = cpus
        self.append = tuple(append)
        self.nice = nice
        self._kernel = kernel
        self._own_workdir = workdir is None
        self.keep_workdir = keep_workdir
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"vm-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.console_path = self.workdir / "console.log"
        self.agent_path = self.workdir / "agent.sock"
        self.taps: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._bg = itertools.count(1)
        self.boot_seconds: float | None = None
        self.boot_cpu_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Guest:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def share(self) -> Path:
        """The per-guest directory, read-write and at the same path on host and guest."""
        return self.workdir

    def nic_names(self) -> list[str]:
        return [f"eth{i}" for i in range(len(self.nics))]

    def _host(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns_name, *cmd] if self.ns_name else list(cmd)

    def _make_taps(self) -> None:
        for bridge, _mac in self.nics:
            tap = unique_name("tap")
            subprocess.run(
                self._host(["ip", "tuntap", "add", "dev", tap, "mode", "tap"]),
                check=True, capture_output=True,
            )  # fmt: skip
            self.taps.append(tap)
            for args in (["master", bridge], ["up"]):
                r = subprocess.run(
                    self._host(["ip", "link", "set", tap, *args]), capture_output=True, text=True
                )
                if r.returncode != 0:
                    raise GuestError(f"tap {tap} -> bridge {bridge}: {r.stderr.strip()}")

    def boot(self, timeout: float = 180.0) -> Guest:
        """Start qemu and wait until the command agent answers; raises :class:`GuestError`
        (with the tail of the console log) on failure, after tearing everything down."""
        started = time.monotonic()
        try:
            kernel = self._kernel or ensure_kernel()
            initrd = build_initramfs(kernel)
            self._make_taps()
            spec = QemuSpec(
                name=self.name, kernel=kernel.vmlinuz, initrd=initrd,
                console_log=self.console_path, agent_socket=self.agent_path, share=self.workdir,
                nics=[(t, mac) for t, (_br, mac) in zip(self.taps, self.nics, strict=True)],
                memory_mb=self.memory, cpus=self.cpus, append=self.append,
            )  # fmt: skip
            argv = qemu_argv(spec)
            if self.nice:
                argv = ["nice", "-n", str(self.nice), *argv]
            self.console_path.write_bytes(b"")
            with (self.workdir / "qemu.out").open("wb") as out:
                self.proc = subprocess.Popen(
                    self._host(argv), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            self._wait_ready(timeout)
            self._connect(timeout=max(5.0, timeout - (time.monotonic() - started)))
            self.run("true", timeout=60).check()
        except BaseException as exc:
            tail = self.log()[-3000:]
            self.shutdown()
            if isinstance(exc, GuestError):
                raise
            raise GuestError(f"guest {self.name} failed to boot: {exc}\n{tail}") from exc
        self.boot_seconds = time.monotonic() - started
        self.boot_cpu_seconds = self.cpu_seconds()
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the qemu process (0.0 when not running)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            qout = self.workdir / "qemu.out"
            text = qout.read_text(errors="replace") if qout.exists() else ""
            return f"qemu exited {self.proc.returncode}: {text[-1500:]}"
        return None

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            text = self.log()
            if FAIL_MARK in text:
                raise GuestError(f"guest {self.name} init failed:\n{text[-3000:]}")
            died = self._died()
            if died:
                raise GuestError(f"guest {self.name}: {died}\n{text[-3000:]}")
            return READY_MARK in text

        if not poll(ready, timeout, interval=0.1):
            raise GuestError(
                f"guest {self.name} not ready after {timeout:.0f} s:\n{self.log()[-3000:]}"
            )

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.agent_path))
                self._sock = sock
                return
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Power the guest off (killing qemu if it does not stop), delete the taps and the
        workdir (unless it was given or ``keep_workdir``). Safe to call more than once."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendall(b"0 10 " + base64.b64encode(b"echo o > /proc/sysrq-trigger\n"))
                self._sock.sendall(b"\n")
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stop_process(self.proc, timeout=5)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        for tap in self.taps:
            subprocess.run(self._host(["ip", "link", "del", tap]), capture_output=True)
        self.taps.clear()
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- commands ----------------------------------------------------------------------------
    def run(self, cmd: str, timeout: float = 60.0, *, check: bool = False) -> CompletedCommand:
        """Run ``cmd`` with the guest's ``sh``; its stdout and stderr together are ``out``.
        The command's process group is killed in the guest after ``timeout`` s (rc 124)."""
        result = self._call(cmd, timeout)
        return result.check() if check else result

    def _call(self, cmd: str, timeout: float) -> CompletedCommand:
        if self._sock is None:
            raise GuestError(f"guest {self.name} is not running")
        with self._lock:
            cid = str(next(self._ids))
            self._sock.sendall(
                f"{cid} {timeout:g} ".encode() + base64.b64encode(cmd.encode()) + b"\n"
            )
            # TCG may be slow on a loaded host: answers get a minute beyond the timeout.
            deadline = time.monotonic() + max(timeout, 0.0) + 60.0
            while True:
                line = self._readline(deadline, cmd)
                parts = line.split(b" ", 3)
                if len(parts) >= 3 and parts[0] == b"R" and parts[1].decode() == cid:
                    out = base64.b64decode(parts[3]) if len(parts) == 4 else b""
                    return CompletedCommand(cmd, int(parts[2]), out.decode(errors="replace"))

    def _readline(self, deadline: float, cmd: str) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            died = self._died()
            if left <= 0 or died:
                why = died or "no answer"
                raise GuestError(f"guest {self.name}: {cmd!r}: {why}\n{self.log()[-2000:]}")
            self._sock.settimeout(min(left, 1.0))
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise GuestError(f"guest {self.name}: agent channel closed during {cmd!r}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.strip()

    def popen_bg(self, cmd: str, log: Path | str | None = None) -> GuestProcess:
        """Start ``cmd`` (``sh`` syntax; prefix ``exec`` to make the pid the program's own) in
        the background in its own session in the guest; its output goes to ``log`` (default:
        a new file in the share, readable from the host). The agent reaps it."""
        path = Path(log) if log else self.workdir / f"bg-{next(self._bg)}.log"
        script = f"exec > {shlex.quote(str(path))} 2>&1 < /dev/null\n{cmd}\n"
        r = self._call(script, -1).check()
        return GuestProcess(self, int(r.out.split()[-1]), path)

    def wait_for(self, cmd: str, timeout: float, interval: float = 0.5) -> CompletedCommand:
        """Run ``cmd`` until it succeeds or ``timeout`` s pass; return the last result."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.run(cmd, timeout=max(10.0, min(60.0, timeout)))
            if r.ok or time.monotonic() >= deadline:
                return r
            time.sleep(interval)

    def log(self) -> str:
        """The serial console so far."""
        try:
            return self.console_path.read_text(errors="replace")
        except OSError:
            return ""

    def write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        """Write a file into the share (visible at the same path in the guest)."""
        path = self.workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        return path

    def __repr__(self) -> str:
        return f"Guest({self.name!r}, ns={self.ns_name!r}, nics={self.nics!r})"
