"""Client for the control API, used by the CLI verbs (TCP loopback or unix socket)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any


class ControlError(Exception):
    """The daemon could not be reached or refused the request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class ControlClient:
    def __init__(self, listen: str, timeout: float = 10.0) -> None:
        self.listen = listen
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.listen.startswith("unix:"):
            return _UnixConnection(self.listen[5:], self.timeout)
        host, _, port = self.listen.rpartition(":")
        return http.client.HTTPConnection(
            host.strip("[]") or "127.0.0.1", int(port), timeout=self.timeout
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        conn = self._connection()
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            raise ControlError(
                f"cannot reach the broker's control API at {self.listen}: {exc}; "
                "is `l2tp-broker run` running, and does control.listen match?"
            ) from exc
        finally:
            conn.close()
        if path == "/metrics":
            return data.decode()
        try:
            decoded = json.loads(data or b"null")
        except ValueError as exc:
            raise ControlError(f"bad answer from {self.listen}{path}: {data[:200]!r}") from exc
        if resp.status >= 400:
            msg = decoded.get("error") if isinstance(decoded, dict) else decoded
            raise ControlError(f"{method} {path}: HTTP {resp.status}: {msg}")
        return decoded

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body if body is not None else {})
