"""A throw-away redis-server on 127.0.0.1 (random free port, temporary directory, no persistence)
for tests, labs and benchmarks. Optional Sentinel watching it.

    with RedisServer() as srv:
        client = redis.Redis.from_url(srv.url)
        srv.stop(); srv.start()   # same port, empty data: an outage and a return
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisSentinel", "RedisServer", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"redis on port {port} not ready after {timeout} s")


class RedisServer:
    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="l2tpb-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.running:
            return self
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(self.port, self.proc, timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait (then SIGKILL)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL at once (a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        self.proc = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisSentinel:
    """A redis-sentinel monitoring ``master`` under ``name`` (URL: ``sentinel_url``)."""

    def __init__(self, master: RedisServer, name: str = "l2tpb") -> None:
        self.master = master
        self.name = name
        self.port = free_port()
        self.binary = shutil.which("redis-sentinel") or shutil.which("redis-server") or ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sentinel_url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.name}/0"

    def start(self, timeout: float = 10.0) -> RedisSentinel:
        conf = self.master.dir / f"sentinel-{self.port}.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.master.dir}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 1\n"
        )
        cmd = [self.binary, str(conf), "--sentinel"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(self.port, self.proc, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)
        self.proc = None

    def __enter__(self) -> RedisSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
