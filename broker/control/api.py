"""HTTP+JSON control API and Prometheus ``/metrics`` (twisted.web), for loopback or a unix socket.

Routes (all JSON except /metrics):

    GET  /status                      node, uptime, counts, data plane, state backend, drain
    GET  /sessions | /tunnels | /lns | /realms
    POST /lns/NAME/drain|undrain|lock|unlock
    POST /sessions/ID/kill
    POST /drain  {"on": true|false}
    GET  /metrics                     Prometheus text format

The API never returns secrets: the backend's views are built without them. It has no
authentication, so it listens only on loopback or a unix socket (mode 0600; the config
loader refuses anything else). On TCP it refuses what a web browser on the same host could
be made to send: requests with an ``Origin`` header or a ``Host`` that is not a loopback
name (DNS rebinding) get 403, POSTs without ``content-type: application/json`` get 415 (a
cross-site form cannot send that type without a CORS preflight, which is never answered).
Bodies over 4 kB get 413.

Limits on what a client can make the daemon hold (issue 9 item 4): a body is kept only up to
``MAX_BODY`` octets while it arrives (a larger ``Content-Length`` or chunked body is counted
and discarded, never buffered or spooled to a temporary file); at most ``MAX_CONNECTIONS``
connections are open at once (more are closed at accept and counted in
``ControlFactory.counters``, shown in /metrics as ``engine_counter{engine="control"}``); an
idle connection is closed after ``IDLE_TIMEOUT`` seconds. Twisted bounds the request line
and the headers (16 kB, 500 headers).
"""

from __future__ import annotations

import io
import ipaddress
import json
from typing import Any, Protocol

from twisted.internet.address import UNIXAddress
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IAddress
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.server import Request


class ControlBackend(Protocol):
    def status(self) -> dict[str, Any]: ...
    def sessions(self) -> list[dict[str, Any]]: ...
    def tunnels(self) -> list[dict[str, Any]]: ...
    def lns(self) -> list[dict[str, Any]]: ...
    def realms(self) -> list[dict[str, Any]]: ...
    def lns_action(self, name: str, action: str) -> Any: ...  # dict or Deferred[dict]
    def kill_session(self, session_id: str) -> dict[str, Any]: ...
    def set_drain(self, on: bool) -> dict[str, Any]: ...
    def metrics_text(self) -> str: ...


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


LNS_ACTIONS = ("drain", "undrain", "lock", "unlock")


class ControlResource(resource.Resource):
    isLeaf = True

    def __init__(self, backend: ControlBackend) -> None:
        super().__init__()
        self.backend = backend
        #: refused requests by HTTP status (413 body too large, 403/415 browser-shaped)
        self.counters: dict[str, int] = {"refused_413": 0, "refused_403": 0, "refused_415": 0}

    def render(self, request: Request) -> bytes | int:  # Twisted override
        refusal = _refusal(request)
        if refusal is not None:
            code, message = refusal
            key = f"refused_{code}"
            self.counters[key] = self.counters.get(key, 0) + 1
            return _json(request, code, {"error": message})
        result: bytes | int = super().render(request)
        return result

    def render_GET(self, request: Request) -> bytes:  # Twisted override
        path = _path(request)
        if path == ["metrics"]:
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return self.backend.metrics_text().encode()
        views: dict[tuple[str, ...], Any] = {
            ("status",): self.backend.status,
            ("sessions",): self.backend.sessions,
            ("tunnels",): self.backend.tunnels,
            ("lns",): self.backend.lns,
            ("realms",): self.backend.realms,
        }
        view = views.get(tuple(path))
        if view is None:
            return _json(request, 404, {"error": f"no such resource: /{'/'.join(path)}"})
        return _json(request, 200, view())

    def render_POST(self, request: Request) -> bytes | int:  # Twisted override
        path = _path(request)
        try:
            if len(path) == 3 and path[0] == "lns":
                if path[2] not in LNS_ACTIONS:
                    raise ApiError(400, f"unknown action {path[2]!r}; use {', '.join(LNS_ACTIONS)}")
                d = maybeDeferred(self.backend.lns_action, path[1], path[2])
                d.addCallbacks(
                    lambda body: _finish(request, 200, body),
                    lambda f: _finish_error(request, f),
                )
                return server.NOT_DONE_YET
            if len(path) == 3 and path[0] == "sessions" and path[2] == "kill":
                return _json(request, 200, self.backend.kill_session(path[1]))
            if path == ["drain"]:
                body = json.loads(request.content.read() or b"{}") if request.content else {}
                return _json(request, 200, self.backend.set_drain(bool(body.get("on", True))))
        except ApiError as exc:
            return _json(request, exc.code, {"error": str(exc)})
        except (ValueError, KeyError) as exc:
            return _json(request, 400, {"error": str(exc)})
        return _json(request, 404, {"error": f"no such action: /{'/'.join(path)}"})


#: Largest POST body read (the only body is ``{"on": true}``).
MAX_BODY = 4096
#: Connections open at once; the CLI uses one per command.
MAX_CONNECTIONS = 64
#: Seconds a connection may stay idle.
IDLE_TIMEOUT = 30.0


class BoundedRequest(server.Request):
    """A request that keeps at most ``MAX_BODY`` octets of its body in memory, whatever the
    ``Content-Length`` says (the base class would spool a large body to a temporary file)."""

    body_too_large = False

    def gotLength(self, length: int | None) -> None:  # Twisted's name
        if length is not None and length > MAX_BODY:
            self.body_too_large = True
        # always an in-memory buffer: at most MAX_BODY octets are ever written to it
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:  # Twisted's name
        content = self.content
        if content is None:
            return
        if self.body_too_large or content.tell() + len(data) > MAX_BODY:
            self.body_too_large = True
            return  # counted as too large, not kept
        content.write(data)


class ControlFactory(WrappingFactory):
    """The site behind a connection limit (see module docstring)."""

    def __init__(self, site: server.Site, max_connections: int = MAX_CONNECTIONS) -> None:
        super().__init__(site)
        self.site = site
        self.max_connections = max_connections
        self.refused = 0

    def buildProtocol(self, addr: IAddress | None) -> Any:  # Twisted's name
        if len(self.protocols) >= self.max_connections:
            self.refused += 1
            return None  # the connection is closed at once
        return super().buildProtocol(addr)

    @property
    def counters(self) -> dict[str, int]:
        """Connections open and refused, requests refused (for ``engine_counter``)."""
        out = {"connections": len(self.protocols), "connections_refused": self.refused}
        res = self.site.resource
        if isinstance(res, ControlResource):
            out.update(res.counters)
        return out


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]").lower()
    if name in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refusal(request: Request) -> tuple[int, str] | None:
    """Why a request that a browser could have been tricked into sending is refused.
    Browsers cannot reach a unix socket: there only the body size is checked."""
    tcp = not isinstance(request.getHost(), UNIXAddress)
    if tcp and (refusal := _browser_refusal(request)) is not None:
        return refusal
    if getattr(request, "body_too_large", False):
        return 413, f"request body larger than {MAX_BODY} octets"
    if request.method == b"POST" and request.content is not None:
        request.content.seek(0, 2)
        size = request.content.tell()
        request.content.seek(0)
        if size > MAX_BODY:
            return 413, f"request body larger than {MAX_BODY} octets"
    return None


def _browser_refusal(request: Request) -> tuple[int, str] | None:
    if request.getHeader(b"origin") is not None:
        return 403, "cross-origin requests are refused (Origin header present)"
    host = request.getHeader(b"host")
    if host is not None and not _loopback_host(host.decode("latin-1")):
        return 403, "requests must name a loopback host (DNS rebinding protection)"
    if request.method == b"POST":
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return 415, "POST needs content-type: application/json"
    return None


def _path(request: Request) -> list[str]:
    raw = request.path.decode("utf-8", "replace") if request.path else "/"
    return [p for p in raw.split("/") if p]


def _json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, default=str, sort_keys=True).encode() + b"\n"


def _finish(request: Request, code: int, body: Any) -> None:
    request.write(_json(request, code, body))
    request.finish()


def _finish_error(request: Request, failure: Failure) -> None:
    exc = failure.value
    code = exc.code if isinstance(exc, ApiError) else 400 if isinstance(exc, KeyError) else 500
    _finish(request, code, {"error": str(exc)})


def make_site(backend: ControlBackend, *, timeout: float = IDLE_TIMEOUT) -> server.Site:
    site = server.Site(ControlResource(backend), timeout=timeout)
    site.requestFactory = BoundedRequest
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return site


def make_factory(
    backend: ControlBackend,
    *,
    max_connections: int = MAX_CONNECTIONS,
    timeout: float = IDLE_TIMEOUT,
) -> ControlFactory:
    """What the daemon listens with: :func:`make_site` behind the connection limit."""
    return ControlFactory(make_site(backend, timeout=timeout), max_connections)


def endpoint_description(listen: str) -> str:
    """Config ``control.listen`` (``127.0.0.1:8081`` or ``unix:/path``) -> Twisted endpoint."""
    if listen.startswith("unix:"):
        return f"unix:{listen[5:]}:mode=600"
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return f"tcp:{int(port)}:interface={host.replace(':', chr(92) + ':')}"
