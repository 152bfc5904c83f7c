"""The StateStore protocol: LNS lockouts, probes, session counts and the session registry.

Two layers. A backend implements :class:`StateCore`, a synchronous, thread-safe API (memory:
plain dicts; Redis: Lua scripts). :class:`DeferredStateStore` wraps a core into the
:class:`StateStore` protocol the reactor uses: every method returns a Deferred; the memory core
answers with ``succeed(...)``, the Redis core runs in a thread pool so Redis never blocks the
reactor.

Call flow per call: ``load_view`` -> ``broker.policy.select`` -> ``reserve`` the first candidate
(``None`` = refused: locked out, drained, probe in flight or a cap reached; try the next) ->
on a tunnel-level failure ``lock_out`` and ``release`` -> on success ``register_session``; if the
reservation was a probe, ``probe_result``. ``release`` exactly once per reservation (a second
release of the same reservation is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed

from broker.policy.model import RealmPolicy
from broker.policy.selection import Candidate, LoadView

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Caps:
    """Limits checked atomically by ``reserve``; ``None`` means unlimited. ``tunnel`` counts a
    tunnel *identity* (``Candidate.tunnel_key``) across nodes; the call flow leaves it ``None``
    (one identity may span several tunnels); it stays for operators' own uses."""

    lns: int | None = None
    tunnel: int | None = None
    realm: int | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    node: str
    lns_id: str
    tunnel_key: str
    realm: str
    probe: bool = False  # this call is the single probe of a locked-out LNS whose hold expired


@dataclass(frozen=True, slots=True)
class SessionRecord:
    node: str
    session_key: str
    subscriber: str  # username or MAC; never a password
    lns_id: str
    tunnel_id: int
    session_id: int
    start: float  # wall clock seconds

    def encode(self) -> str:
        return "\t".join(
            [
                self.node,
                self.session_key,
                self.subscriber,
                self.lns_id,
                str(self.tunnel_id),
                str(self.session_id),
                repr(self.start),
            ]
        )

    @classmethod
    def decode(cls, text: str) -> SessionRecord:
        node, key, sub, lns, tid, sid, start = text.split("\t")
        return cls(node, key, sub, lns, int(tid), int(sid), float(start))


_UNSAFE = str.maketrans({"\t": "?", "\n": "?", "\r": "?"})


def clean(name: str) -> str:
    """Names used in keys and records never carry tab or newline (the scripts' separators).
    Pass the matched ``RealmPolicy.name`` as ``realm``, never raw subscriber input."""
    if "\t" in name or "\n" in name or "\r" in name:
        return name.translate(_UNSAFE)
    return name


#: One entry of ``reserve_first``: (lns_id, tunnel_key, caps), tried in order.
Choice = tuple[str, str, Caps]


def choices_for(candidates: Sequence[Candidate], policy: RealmPolicy) -> list[Choice]:
    """``reserve_first`` input for a ``select`` result under ``policy``'s caps.

    No tunnel cap: ``policy.max_tunnel_sessions`` limits one tunnel and the call flow opens
    another tunnel with the same identity when the open ones are full; the store counts
    sessions per identity (across nodes), which may exceed 65,535."""
    return [
        (c.lns_id, c.tunnel_key, Caps(lns=c.max_sessions, tunnel=None, realm=policy.max_sessions))
        for c in candidates
    ]


class StateCore(Protocol):
    """Synchronous backend API (thread-safe). See the module docstring for the call flow."""

    node: str

    def reserve(
        self, lns_id: str, tunnel_key: str, realm: str, caps: Caps
    ) -> Reservation | None: ...
    def reserve_first(self, choices: Sequence[Choice], realm: str) -> Reservation | None: ...
    def release(self, reservation: Reservation) -> bool: ...
    def lock_out(self, lns_id: str, hold: float) -> None: ...
    def unlock(self, lns_id: str) -> None: ...
    def drain(self, lns_id: str, on: bool) -> None: ...
    def claim_probe(self, lns_id: str) -> bool: ...
    def probe_result(self, lns_id: str, ok: bool, hold: float) -> None: ...
    def load_view(
        self, lns_ids: Iterable[str], realm: str, tunnel_keys: Iterable[str] = ()
    ) -> LoadView: ...
    def register_session(self, record: SessionRecord) -> None: ...
    def unregister_session(self, session_key: str) -> None: ...
    def sessions(self) -> list[SessionRecord]: ...
    def heartbeat(self) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class StateStore(Protocol):
    """The reactor-side API: the same methods, each returning a Deferred."""

    node: str

    def reserve(
        self, lns_id: str, tunnel_key: str, realm: str, caps: Caps
    ) -> Deferred[Reservation | None]: ...
    def reserve_first(
        self, choices: Sequence[Choice], realm: str
    ) -> Deferred[Reservation | None]: ...
    def release(self, reservation: Reservation) -> Deferred[bool]: ...
    def lock_out(self, lns_id: str, hold: float) -> Deferred[None]: ...
    def unlock(self, lns_id: str) -> Deferred[None]: ...
    def drain(self, lns_id: str, on: bool) -> Deferred[None]: ...
    def claim_probe(self, lns_id: str) -> Deferred[bool]: ...
    def probe_result(self, lns_id: str, ok: bool, hold: float) -> Deferred[None]: ...
    def load_view(
        self, lns_ids: Sequence[str], realm: str, tunnel_keys: Sequence[str] = ()
    ) -> Deferred[LoadView]: ...
    def register_session(self, record: SessionRecord) -> Deferred[None]: ...
    def unregister_session(self, session_key: str) -> Deferred[None]: ...
    def heartbeat(self) -> Deferred[None]: ...
    def status(self) -> dict[str, Any]: ...


Runner = Callable[[Callable[[], Any]], "Deferred[Any]"]


def run_inline(fn: Callable[[], T]) -> Deferred[T]:
    """Runner for in-process cores: call now, answer with an already-fired Deferred."""
    return succeed(fn())


class DeferredStateStore:
    """Adapts a :class:`StateCore` to :class:`StateStore`.

    ``runner`` decides where the core runs: :func:`run_inline` (memory) or a thread pool
    (Redis: see ``broker.state.redis_store.thread_runner``)."""

    def __init__(self, core: StateCore, runner: Runner = run_inline) -> None:
        self.core = core
        self.node = core.node
        self._run = runner

    def reserve(
        self, lns_id: str, tunnel_key: str, realm: str, caps: Caps
    ) -> Deferred[Reservation | None]:
        return self._run(lambda: self.core.reserve(lns_id, tunnel_key, realm, caps))

    def reserve_first(self, choices: Sequence[Choice], realm: str) -> Deferred[Reservation | None]:
        """Reserve the first reservable of ``choices`` (e.g. the whole ``select`` result) in
        one atomic step; ``None`` when every one is refused."""
        items = tuple(choices)
        return self._run(lambda: self.core.reserve_first(items, realm))

    def release(self, reservation: Reservation) -> Deferred[bool]:
        return self._run(lambda: self.core.release(reservation))

    def lock_out(self, lns_id: str, hold: float) -> Deferred[None]:
        return self._run(lambda: self.core.lock_out(lns_id, hold))

    def unlock(self, lns_id: str) -> Deferred[None]:
        return self._run(lambda: self.core.unlock(lns_id))

    def drain(self, lns_id: str, on: bool) -> Deferred[None]:
        return self._run(lambda: self.core.drain(lns_id, on))

    def claim_probe(self, lns_id: str) -> Deferred[bool]:
        return self._run(lambda: self.core.claim_probe(lns_id))

    def probe_result(self, lns_id: str, ok: bool, hold: float) -> Deferred[None]:
        return self._run(lambda: self.core.probe_result(lns_id, ok, hold))

    def load_view(
        self, lns_ids: Sequence[str], realm: str, tunnel_keys: Sequence[str] = ()
    ) -> Deferred[LoadView]:
        ids, keys = tuple(lns_ids), tuple(tunnel_keys)
        return self._run(lambda: self.core.load_view(ids, realm, keys))

    def register_session(self, record: SessionRecord) -> Deferred[None]:
        return self._run(lambda: self.core.register_session(record))

    def unregister_session(self, session_key: str) -> Deferred[None]:
        return self._run(lambda: self.core.unregister_session(session_key))

    def heartbeat(self) -> Deferred[None]:
        return self._run(self.core.heartbeat)

    def status(self) -> dict[str, Any]:
        return self.core.status()
