"""The control API served by twisted.web, driven by the CLI's client and verbs (subprocess)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli import main
from broker.control.api import endpoint_description
from broker.control.client import ControlClient, ControlError
from ops.lab.netns import poll, stop_process

SERVER = textwrap.dedent(
    """
    import sys
    from twisted.internet import reactor, endpoints
    from broker.control.api import make_factory, endpoint_description, ApiError

    class Backend:
        drained = False
        def status(self): return {"node": "lac-t", "sessions": 1, "draining": self.drained}
        def sessions(self): return [{"id": 1, "username": "a@isp-a.example", "state": "spliced"}]
        def tunnels(self): return []
        def lns(self): return [{"name": "lns-a", "address": "198.51.100.2", "sessions": 1}]
        def realms(self): return []
        def lns_action(self, name, action):
            if name != "lns-a":
                raise ApiError(404, f"no LNS named {name!r}")
            return {"name": name, "action": action, "ok": True}
        def kill_session(self, sid):
            if sid != "1":
                raise KeyError(f"no session {sid}")
            return {"id": sid, "killed": True}
        def set_drain(self, on):
            self.drained = on
            return {"draining": on}
        def metrics_text(self): return "l2tp_broker_sessions 1\\n"

    ep = endpoints.serverFromString(reactor, endpoint_description(sys.argv[1]))
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    factory = make_factory(Backend(), max_connections=4, timeout=timeout)
    ep.listen(factory).addCallback(lambda _: print("READY", flush=True))
    reactor.run()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["tcp", "unix"])
def control(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _server(request.param, tmp_path, "60")


@pytest.fixture
def short_idle(tmp_path: Path) -> Iterator[str]:
    yield from _server("tcp", tmp_path, "1")


def _server(kind: str, tmp_path: Path, idle_timeout: str) -> Iterator[str]:
    listen = f"127.0.0.1:{_free_port()}" if kind == "tcp" else f"unix:{tmp_path}/ctl.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, listen, idle_timeout], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        yield listen
    finally:
        stop_process(proc)


def test_views_actions_and_metrics(control: str) -> None:
    c = ControlClient(control)
    assert c.get("/status")["node"] == "lac-t"
    assert c.get("/sessions")[0]["username"] == "a@isp-a.example"
    assert c.post("/lns/lns-a/drain") == {"name": "lns-a", "action": "drain", "ok": True}
    assert c.post("/drain", {"on": True}) == {"draining": True}
    assert c.get("/status")["draining"] is True
    assert "l2tp_broker_sessions 1" in c.get("/metrics")
    with pytest.raises(ControlError, match="HTTP 404: no LNS named 'lns-b'"):
        c.post("/lns/lns-b/lock")
    with pytest.raises(ControlError, match="HTTP 400: unknown action 'explode'"):
        c.post("/lns/lns-a/explode")
    with pytest.raises(ControlError, match="HTTP 400"):
        c.post("/sessions/9/kill")
    with pytest.raises(ControlError, match="HTTP 404"):
        c.get("/nothing")


def test_cli_verbs_table_and_json(control: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "sessions", "--control", control]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["ID", "USERNAME", "STATE"]
    assert "a@isp-a.example" in out
    assert main(["show", "lns", "--json", "--control", control]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "lns-a"
    assert main(["session", "kill", "1", "--control", control]) == 0
    assert "True" in capsys.readouterr().out
    assert main(["lns", "lock", "lns-b", "--control", control]) == 1
    assert "no LNS named" in capsys.readouterr().err


def test_unreachable_daemon_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    assert main(["show", "status", "--control", f"127.0.0.1:{port}"]) == 1
    assert "cannot reach the broker's control API" in capsys.readouterr().err


def test_endpoint_description() -> None:
    assert endpoint_description("127.0.0.1:8081") == "tcp:8081:interface=127.0.0.1"
    assert endpoint_description("unix:/run/b.sock") == "unix:/run/b.sock:mode=600"
    assert poll(lambda: True, 0.1)


def _raw(control: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
    """Send one request with exactly these headers; return the HTTP status."""
    conn = ControlClient(control)._connection()
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def test_browser_shaped_requests_are_refused(control: str) -> None:
    assert _raw(control, "POST", "/drain", JSON, b"{" + b" " * 5000 + b"}") == 413
    if control.startswith("unix:"):  # no browser reaches a unix socket: curl-style is fine
        assert _raw(control, "GET", "/status", {"Host": "broker"}) == 200
        assert _raw(control, "POST", "/drain", {}, b"") == 200
        assert _raw(control, "POST", "/drain", JSON, b'{"on": false}') == 200
        return
    # what the CLI sends works
    assert _raw(control, "GET", "/status", {}) == 200
    assert _raw(control, "POST", "/drain", JSON, b'{"on": false}') == 200
    for host in ("localhost", "127.0.0.1:8081", "[::1]:8081", "127.1.2.3"):
        assert _raw(control, "GET", "/status", {"Host": host}) == 200, host
    # a page in a browser on the same host: cross-site form POST, fetch with Origin,
    # DNS rebinding (the attacker's name resolving to 127.0.0.1)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _raw(control, "POST", "/drain", form, b"on=true") == 415
    assert _raw(control, "POST", "/sessions/1/kill", {"Content-Type": "text/plain"}) == 415
    assert _raw(control, "POST", "/drain", {}) == 415
    origin = {**JSON, "Origin": "http://evil.example"}
    assert _raw(control, "POST", "/drain", origin, b'{"on": true}') == 403
    assert _raw(control, "GET", "/sessions", {"Origin": "null"}) == 403
    for host in ("evil.example", "evil.example:8081", "198.51.100.7", "[2001:db8::1]:80"):
        assert _raw(control, "GET", "/sessions", {"Host": host}) == 403, host
        assert _raw(control, "POST", "/drain", {**JSON, "Host": host}, b"{}") == 403, host
    assert ControlClient(control).get("/status")["draining"] is False  # nothing got through


def _connect(control: str) -> socket.socket:
    if control.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(control[5:])
    else:
        host, _, port = control.rpartition(":")
        s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    return s


def _response(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n")
                 if h.lower().startswith(b"content-length:")), None,
            )  # fmt: skip
            if length is not None and len(body) >= length:
                break
    return data


def test_large_bodies_are_refused_without_being_kept(control: str) -> None:
    head = "POST /drain HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    # a Content-Length far above the limit, the body streamed in full: counted, not buffered
    with _connect(control) as s:
        size = 4 << 20
        s.sendall(f"{head}Content-Length: {size}\r\n\r\n".encode())
        for _ in range(size // 65536):
            s.sendall(b" " * 65536)
        assert _response(s).startswith(b"HTTP/1.1 413")
    # chunked (no Content-Length): refused once the chunks pass the limit
    with _connect(control) as s:
        s.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(4):
            s.sendall(b"800\r\n" + b" " * 0x800 + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 413")
    assert ControlClient(control).get("/status")["draining"] is False


def test_connection_limit(control: str) -> None:
    idle = [_connect(control) for _ in range(4)]  # the limit in SERVER (idle timeout 60 s)
    try:
        extra = _connect(control)  # accepted by the kernel, closed by the daemon at once
        with extra:
            assert extra.recv(1) == b""
        with pytest.raises(ControlError):
            ControlClient(control, timeout=5).get("/status")
    finally:
        for s in idle:
            s.close()
    assert poll(lambda: _status_ok(control), 10, 0.1)  # room again once they are closed


def test_idle_connections_are_closed(short_idle: str) -> None:
    idle = [_connect(short_idle) for _ in range(4)]
    try:
        for s in idle:  # closed by the daemon after its idle timeout (1 s in this server)
            assert s.recv(1) == b""
    finally:
        for s in idle:
            s.close()
    assert _status_ok(short_idle)


def _status_ok(control: str) -> bool:
    try:
        return ControlClient(control, timeout=5).get("/status")["node"] == "lac-t"
    except ControlError:
        return False
