"""Redis state store shared by broker nodes: atomic Lua scripts, heartbeats, outage handling.

Counts live twice in Redis: global hashes (what ``reserve`` checks in one atomic script) and a
per-node share (``node:{node}:cnt``) so that when a node stops heart-beating any live node's
heartbeat script subtracts the dead node's share and deletes its reservations and sessions.
Lockouts are keys with a PX TTL on the Redis clock, so every node sees the same expiry; a
``suspect`` marker stays after expiry until one probe call (claimed by ``SET NX``) succeeds.

Outage: every node keeps a local ledger (a :class:`MemoryStateCore` mirror of its own
reservations, sessions, lockouts and drains, plus the other nodes' last known counts). When a
Redis call fails the node switches to that local view (logged once, ``status()['state']`` says
``degraded``, counted in ``counters``) and keeps placing calls; established sessions are never
touched. It retries Redis every ``retry_interval`` seconds; on return it re-publishes its ledger
atomically (``resync``) and carries on. The synchronous core is thread-safe; the reactor uses it
through :func:`make_redis_store` (a thread pool), never blocking.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from broker.policy.selection import LoadView
from broker.state.base import (
    Caps,
    Choice,
    DeferredStateStore,
    Reservation,
    Runner,
    SessionRecord,
    clean,
)
from broker.state.keys import Keys
from broker.state.memory import MemoryStateCore
from broker.state.redis_reactor import ReactorRedis, locate_for

T = TypeVar("T")
log = Logger(namespace="broker.state.redis")

REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.sentinel.MasterNotFoundError,
    OSError,
)
SUSPECT_EXTRA_MS = 86_400_000  # a suspect marker outlives its lockout by a day, then expires

_LUA_COMMON = """
local p = ARGV[1]
local function dec(h, f, n)
  local left = redis.call('HINCRBY', h, f, -n)
  if left <= 0 then redis.call('HDEL', h, f) end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reap(d)
  local nc = p .. 'node:' .. d .. ':cnt'
  local flat = redis.call('HGETALL', nc)
  for i = 1, #flat, 2 do
    local f, n = flat[i], tonumber(flat[i + 1])
    local kind, name = string.sub(f, 1, 1), string.sub(f, 3)
    local h = p .. 'cnt:realm'
    if kind == 'l' then h = p .. 'cnt:lns' elseif kind == 't' then h = p .. 'cnt:tun' end
    if n > 0 then dec(h, name, n) end
  end
  redis.call('DEL', nc, p .. 'node:' .. d .. ':res', p .. 'node:' .. d .. ':sess')
  redis.call('ZREM', p .. 'nodes', d)
end
local function add(node, id, lns, tun, realm)
  local nc = p .. 'node:' .. node .. ':cnt'
  redis.call('HINCRBY', p .. 'cnt:lns', lns, 1)
  redis.call('HINCRBY', p .. 'cnt:tun', tun, 1)
  redis.call('HINCRBY', p .. 'cnt:realm', realm, 1)
  redis.call('HINCRBY', nc, 'l|' .. lns, 1)
  redis.call('HINCRBY', nc, 't|' .. tun, 1)
  redis.call('HINCRBY', nc, 'r|' .. realm, 1)
  redis.call('HSET', p .. 'node:' .. node .. ':res', id, lns .. '\\t' .. tun .. '\\t' .. realm)
end
local function over(h, f, cap)
  if cap == '' then return false end
  return tonumber(redis.call('HGET', h, f) or '0') >= tonumber(cap)
end
local function try_reserve(node, id, lns, tun, realm, lcap, tcap, rcap, probe_ms)
  if redis.call('SISMEMBER', p .. 'drained', lns) == 1 then return 0, 'drained' end
  if redis.call('EXISTS', p .. 'lock:' .. lns) == 1 then return 0, 'locked-out' end
  if over(p .. 'cnt:lns', lns, lcap) then return 0, 'lns-full' end
  if over(p .. 'cnt:tun', tun, tcap) then return 0, 'tunnel-full' end
  if over(p .. 'cnt:realm', realm, rcap) then return 0, 'realm-full' end
  local probe = 0
  if redis.call('EXISTS', p .. 'suspect:' .. lns) == 1 then
    if not redis.call('SET', p .. 'probe:' .. lns, node, 'NX', 'PX', probe_ms) then
      return 0, 'probe-in-flight'
    end
    probe = 1
  end
  add(node, id, lns, tun, realm)
  return 1, probe
end
local function lock(lns, hold)
  local cur = redis.call('PTTL', p .. 'lock:' .. lns)
  if cur < hold then redis.call('SET', p .. 'lock:' .. lns, '1', 'PX', hold) end
  redis.call('SET', p .. 'suspect:' .. lns, '1', 'PX', hold + SUSPECT_EXTRA_MS)
  redis.call('DEL', p .. 'probe:' .. lns)
end
""".replace("SUSPECT_EXTRA_MS", str(SUSPECT_EXTRA_MS))

# ARGV: p node id lns tun realm lns_cap tun_cap realm_cap probe_ms
_RESERVE = """
local ok, extra = try_reserve(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  ARGV[9], ARGV[10])
return {ok, extra}
"""

# ARGV: p node id realm probe_ms choices ("lns\\ttun\\tlns_cap\\ttun_cap\\trealm_cap" lines)
# -> {1, index (1-based), probe} for the first choice that could be reserved, or {0}
_RESERVE_FIRST = """
local node, id, realm, probe_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = 0
for line in string.gmatch(ARGV[6], '[^\\n]+') do
  k = k + 1
  local lns, tun, lc, tc, rc = string.match(line, '^(.-)\\t(.-)\\t(.-)\\t(.-)\\t(.*)$')
  local ok, extra = try_reserve(node, id, lns, tun, realm, lc, tc, rc, probe_ms)
  if ok == 1 then return {1, k, extra} end
end
return {0}
"""

# ARGV: p node id
_RELEASE = """
local node, id = ARGV[2], ARGV[3]
local rk = p .. 'node:' .. node .. ':res'
local v = redis.call('HGET', rk, id)
if not v then return 0 end
local lns, tun, realm = string.match(v, '^(.-)\\t(.-)\\t(.*)$')
local nc = p .. 'node:' .. node .. ':cnt'
dec(p .. 'cnt:lns', lns, 1)
dec(p .. 'cnt:tun', tun, 1)
dec(p .. 'cnt:realm', realm, 1)
dec(nc, 'l|' .. lns, 1)
dec(nc, 't|' .. tun, 1)
dec(nc, 'r|' .. realm, 1)
redis.call('HDEL', rk, id)
return 1
"""

# ARGV: p lns hold_ms
_LOCK_OUT = """
lock(ARGV[2], tonumber(ARGV[3]))
return 1
"""

# ARGV: p lns node probe_ms
_CLAIM_PROBE = """
local lns = ARGV[2]
if redis.call('EXISTS', p .. 'suspect:' .. lns) == 0 then return 0 end
if redis.call('EXISTS', p .. 'lock:' .. lns) == 1 then return 0 end
if redis.call('SET', p .. 'probe:' .. lns, ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 0
"""

# ARGV: p node realm "lns\\n..." "tun\\n..." -> "n,n,..." (one string: cheap to parse):
# per lns: global, mine, lock pttl, suspect, probe, drained; realm global, mine;
# per tun: global, mine
_LOAD_VIEW = """
local node, realm = ARGV[2], ARGV[3]
local nc = p .. 'node:' .. node .. ':cnt'
local out = {}
for lns in string.gmatch(ARGV[4], '[^\\n]+') do
  out[#out + 1] = tonumber(redis.call('HGET', p .. 'cnt:lns', lns) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', nc, 'l|' .. lns) or '0')
  out[#out + 1] = redis.call('PTTL', p .. 'lock:' .. lns)
  out[#out + 1] = redis.call('EXISTS', p .. 'suspect:' .. lns)
  out[#out + 1] = redis.call('EXISTS', p .. 'probe:' .. lns)
  out[#out + 1] = redis.call('SISMEMBER', p .. 'drained', lns)
end
out[#out + 1] = tonumber(redis.call('HGET', p .. 'cnt:realm', realm) or '0')
out[#out + 1] = tonumber(redis.call('HGET', nc, 'r|' .. realm) or '0')
for tun in string.gmatch(ARGV[5], '[^\\n]+') do
  out[#out + 1] = tonumber(redis.call('HGET', p .. 'cnt:tun', tun) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', nc, 't|' .. tun) or '0')
end
return table.concat(out, ',')
"""

# ARGV: p node ttl_ms -> {1 if this node was absent (reaped or new), number reaped}
_HEARTBEAT = """
local node, now = ARGV[2], now_ms()
local absent = redis.call('ZSCORE', p .. 'nodes', node) == false and 1 or 0
local dead = redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now)
for _, d in ipairs(dead) do
  if d ~= node then reap(d) end
end
redis.call('ZADD', p .. 'nodes', now + tonumber(ARGV[3]), node)
return {absent, #dead}
"""

# ARGV: p node ttl_ms n_res (id value)* n_sess (key value)* n_lock (lns ms)* n_drain lns*
_RESYNC = """
local node = ARGV[2]
reap(node)
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local lns, tun, realm = string.match(ARGV[i + 1], '^(.-)\\t(.-)\\t(.*)$')
  add(node, ARGV[i], lns, tun, realm)
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', p .. 'node:' .. node .. ':sess', ARGV[i], ARGV[i + 1])
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if redis.call('EXISTS', p .. 'lock:' .. ARGV[i]) == 0 then
    lock(ARGV[i], tonumber(ARGV[i + 1]))
  end
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('SADD', p .. 'drained', ARGV[i])
  i = i + 1
end
redis.call('ZADD', p .. 'nodes', now_ms() + tonumber(ARGV[3]), node)
return 1
"""


def make_client(url: str, socket_timeout: float = 0.5) -> redis.Redis:
    """``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://h:p,h:p/master[/db]``.

    No client-side retries: a failure must switch the node to its local view at once."""
    opts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
    }
    if url.startswith("redis+sentinel://"):
        parts = urlsplit(url)
        hosts: list[tuple[str, int]] = []
        for item in parts.netloc.rsplit("@", 1)[-1].split(","):
            host, _, port = item.rpartition(":")
            hosts.append((host.strip("[]") or "127.0.0.1", int(port or 26379)))
        path = [unquote(p) for p in parts.path.split("/") if p]
        if not path:
            raise ValueError(f"sentinel URL needs a master name: {url!r}")
        if len(path) > 1:
            opts["db"] = int(path[1])
        if parts.password:
            opts["password"] = unquote(parts.password)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            hosts,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        client: redis.Redis = sentinel.master_for(path[0], **opts)  # type: ignore[no-untyped-call]
        return client
    return redis.Redis.from_url(url, **opts)


class _SharedExclusive:
    """Many normal operations at once (shared) or one resync alone (exclusive)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    def try_acquire_shared(self) -> bool:
        """Take a shared slot without waiting (False while a resync runs)."""
        with self._cond:
            if self._writer:
                return False
            self._readers += 1
            return True

    def release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Pipeliner:
    """Sends the script calls of concurrent callers in one pipeline (one round trip per batch).

    Every script stays atomic on the server; batching only removes round trips. Callers block on
    a future; a connection error fails the whole batch (each caller then uses the local view).
    """

    def __init__(self, client: redis.Redis, wait: float, max_batch: int = 256) -> None:
        self.client = client
        self.wait = wait
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Script, list[Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._loop, name="redis-pipeliner", daemon=True)
        self._thread.start()
        self.batches = 0
        self.calls = 0

    def call(self, script: Script, args: list[Any]) -> Any:
        return self.submit(script, args).result(self.wait)

    def submit(self, script: Script, args: list[Any]) -> Future[Any]:
        """Queue one script call; the future completes on the pipeliner thread."""
        fut: Future[Any] = Future()
        self._queue.put((script, args, fut))
        return fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._run(batch)
                    return
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[tuple[Script, list[Any], Future[Any]]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        pending = batch
        for _attempt in range(2):
            try:
                pipe = self.client.pipeline(transaction=False)
                for script, args, _ in pending:
                    pipe.evalsha(script.sha, 0, *args)
                results = pipe.execute(raise_on_error=False)
            except Exception as exc:
                for _, _, fut in pending:
                    fut.set_exception(exc)
                return
            retry = []
            for (script, args, fut), result in zip(pending, results, strict=True):
                if isinstance(result, redis.exceptions.NoScriptError):
                    retry.append((script, args, fut))  # not run: the server lost its scripts
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            if not retry:
                return
            try:
                for script in {id(r[0]): r[0] for r in retry}.values():
                    script.sha = self.client.script_load(script.script)
            except Exception as exc:
                for _, _, fut in retry:
                    fut.set_exception(exc)
                return
            pending = retry
        for _, _, fut in pending:
            fut.set_exception(redis.ConnectionError("scripts could not be loaded"))


class _Down(Exception):
    """Internal: Redis unusable right now, use the local view."""


#: Completion of one script call: (error or None, reply).
Done = Callable[[BaseException | None, Any], None]
#: Sends one script call and arranges for ``Done`` to be called with its outcome.
Send = Callable[[Script, list[Any], Done], None]


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One hot-path script call: its arguments and what its reply (or an outage) means."""

    script: Script
    args: list[Any]
    on_reply: Callable[[Any], T]
    on_down: Callable[[], T]
    before: Callable[[], None] | None = None


class RedisStateCore:
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        node: str | None = None,
        prefix: str = "l2tpb:",
        node_ttl: float = 15.0,
        probe_timeout: float = 120.0,
        retry_interval: float = 1.0,
        socket_timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        client: redis.Redis | None = None,
        pipeline: bool = True,
    ) -> None:
        self.node = node or uuid.uuid4().hex[:12]
        self.keys = Keys(prefix)
        self.node_ttl = node_ttl
        self.probe_timeout = probe_timeout
        self.retry_interval = retry_interval
        self.socket_timeout = socket_timeout
        self.clock = clock
        self.local = MemoryStateCore(self.node, clock, probe_timeout)
        self.client = client if client is not None else make_client(url, socket_timeout)
        self.counters: dict[str, int] = {
            "redis_errors": 0,
            "degraded_reserves": 0,
            "resyncs": 0,
            "outages": 0,
        }
        self._gate = _SharedExclusive()
        self._lines: dict[Choice, str] = {}
        self._state_lock = threading.Lock()
        self._down_since: float | None = None
        self._next_attempt = 0.0
        reg = self.client.register_script
        self._reserve = reg(_LUA_COMMON + _RESERVE)
        self._reserve_first = reg(_LUA_COMMON + _RESERVE_FIRST)
        self._release = reg(_LUA_COMMON + _RELEASE)
        self._lock_out = reg(_LUA_COMMON + _LOCK_OUT)
        self._claim_probe = reg(_LUA_COMMON + _CLAIM_PROBE)
        self._load_view = reg(_LUA_COMMON + _LOAD_VIEW)
        self._heartbeat = reg(_LUA_COMMON + _HEARTBEAT)
        self._resync = reg(_LUA_COMMON + _RESYNC)
        self._pipeliner = (
            _Pipeliner(self.client, wait=4 * socket_timeout + 1.0) if pipeline else None
        )
        # Start clean: drop whatever a previous process with this node name left behind.
        self._mark_down_quietly()
        self._try_recover()

    # -- outage machinery ------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def _mark_down_quietly(self) -> None:
        self._down_since = self.clock()
        self._next_attempt = 0.0

    def _mark_down(self, exc: BaseException) -> None:
        with self._state_lock:
            self.counters["redis_errors"] += 1
            self._next_attempt = self.clock() + self.retry_interval
            if self._down_since is None:
                self._down_since = self.clock()
                self.counters["outages"] += 1
                log.warn(
                    "redis unreachable ({error}); node {node} continues on its local view",
                    error=type(exc).__name__,
                    node=self.node,
                )

    def _try_recover(self) -> bool:
        """If down and the retry time has come, re-publish the local ledger. True when up."""
        if self._down_since is None:
            return True
        if self.clock() < self._next_attempt:
            return False
        with self._gate.exclusive():
            if not self.degraded:  # another thread recovered while we waited
                return True
            try:
                self._publish()
            except REDIS_DOWN_ERRORS as exc:
                self._mark_down(exc)
                return False
            was_outage = self.counters["outages"] > 0
            self._down_since = None
            self.counters["resyncs"] += 1
            if was_outage:
                log.info(
                    "redis reachable again; node {node} re-published its state", node=self.node
                )
            return True

    def _publish(self) -> None:
        loc = self.local
        with loc._lock:
            now = self.clock()
            args: list[Any] = [self.keys.prefix, self.node, int(self.node_ttl * 1000)]
            args.append(len(loc.reservations))
            for r in loc.reservations.values():
                args += [r.id, f"{r.lns_id}\t{r.tunnel_key}\t{r.realm}"]
            args.append(len(loc.session_records))
            for s in loc.session_records.values():
                args += [s.session_key, s.encode()]
            locks = [(lns, until - now) for lns, until in loc.locked_until.items() if until > now]
            args.append(len(locks))
            for lns, left in locks:
                args += [lns, max(1, int(left * 1000))]
            args.append(len(loc.drained))
            args += sorted(loc.drained)
        self._resync(keys=[], args=args)

    @contextmanager
    def _op(self) -> Iterator[None]:
        """One normal operation: maybe reconnect first, then run shared with other operations."""
        self._try_recover()
        with self._gate.shared():
            yield

    def _script(self, script: Script, args: list[Any]) -> Any:
        """Run one script call (through the pipeliner when enabled) or raise :class:`_Down`."""
        if self._pipeliner is None:
            return self._redis(lambda: script(keys=[], args=args))
        pipeliner = self._pipeliner
        return self._redis(lambda: pipeliner.call(script, args))

    def _redis(self, op: Callable[[], T]) -> T:
        """Run ``op`` against Redis or raise :class:`_Down` (caller falls back to local)."""
        if self._down_since is not None:
            raise _Down
        try:
            return op()
        except REDIS_DOWN_ERRORS as exc:
            self._mark_down(exc)
            raise _Down from exc

    # -- StateCore -------------------------------------------------------------------------
    @staticmethod
    def _cap(value: int | None) -> str:
        return "" if value is None else str(value)

    def reserve(self, lns_id: str, tunnel_key: str, realm: str, caps: Caps) -> Reservation | None:
        lns_id, tunnel_key, realm = clean(lns_id), clean(tunnel_key), clean(realm)
        with self._op():
            rid = uuid.uuid4().hex
            try:
                reply = self._script(
                    self._reserve,
                    [
                        self.keys.prefix,
                        self.node,
                        rid,
                        lns_id,
                        tunnel_key,
                        realm,
                        self._cap(caps.lns),
                        self._cap(caps.tunnel),
                        self._cap(caps.realm),
                        int(self.probe_timeout * 1000),
                    ],
                )
            except _Down:
                self.counters["degraded_reserves"] += 1
                return self.local.reserve(lns_id, tunnel_key, realm, caps)
            if int(reply[0]) != 1:
                return None
            res = Reservation(rid, self.node, lns_id, tunnel_key, realm, bool(int(reply[1])))
            self.local.adopt(res)
            return res

    def reserve_first(self, choices: Sequence[Choice], realm: str) -> Reservation | None:
        """Reserve the first of ``choices`` that can be reserved, in one atomic round trip."""
        if not choices:
            return None
        with self._op():
            rid = uuid.uuid4().hex
            lines = "\n".join([self._choice_line(choice) for choice in choices])
            realm = clean(realm)
            args = [self.keys.prefix, self.node, rid, realm, int(self.probe_timeout * 1000), lines]
            try:
                reply = self._script(self._reserve_first, args)
            except _Down:
                self.counters["degraded_reserves"] += 1
                return self.local.reserve_first(choices, realm)
            if int(reply[0]) != 1:
                return None
            lns_id, tunnel_key, _ = choices[int(reply[1]) - 1]
            res = Reservation(rid, self.node, lns_id, tunnel_key, realm, bool(int(reply[2])))
            self.local.adopt(res)
            return res

    # -- non-blocking hot path (no pool thread waits on Redis) -----------------------------
    def _start(
        self,
        call: _Call[T],
        send: Send,
        deliver: Callable[[BaseException | None, T | None], None],
    ) -> bool:
        """Send one script call without blocking the caller; False when the blocking path must
        be used instead (Redis down, or a resync in progress). ``call.on_reply`` /
        ``call.on_down`` run where ``send`` completes, while this operation still holds its
        shared slot, so a resync never interleaves with the mirror update; then ``deliver``
        gets (error, result)."""
        if not self._gate.try_acquire_shared():
            return False
        if self.degraded:
            self._gate.release_shared()
            return False
        if call.before is not None:
            call.before()

        def finish(exc: BaseException | None, reply: Any) -> None:
            try:
                if exc is None:
                    result = call.on_reply(reply)
                elif isinstance(exc, REDIS_DOWN_ERRORS):
                    self._mark_down(exc)
                    result = call.on_down()
                else:
                    raise exc
            except Exception as error:
                self._gate.release_shared()
                deliver(error, None)
                return
            self._gate.release_shared()
            deliver(None, result)

        send(call.script, call.args, finish)
        return True

    def _via_pipeliner(self, call: _Call[T] | None) -> Future[T] | None:
        pipeliner = self._pipeliner
        if call is None or pipeliner is None:
            return None
        out: Future[T] = Future()

        def send(script: Script, args: list[Any], done: Done) -> None:
            def relay(fut: Future[Any]) -> None:
                exc = fut.exception()
                done(exc, None if exc is not None else fut.result())

            pipeliner.submit(script, args).add_done_callback(relay)

        def deliver(exc: BaseException | None, result: T | None) -> None:
            if exc is not None:
                out.set_exception(exc)
            else:
                out.set_result(cast(T, result))

        return out if self._start(call, send, deliver) else None

    def reserve_first_call(
        self, choices: Sequence[Choice], realm: str
    ) -> _Call[Reservation | None] | None:
        """The script call behind :meth:`reserve_first` and what to do with its reply."""
        if not choices:
            return None
        rid = uuid.uuid4().hex
        lines = "\n".join([self._choice_line(choice) for choice in choices])
        realm = clean(realm)
        args = [self.keys.prefix, self.node, rid, realm, int(self.probe_timeout * 1000), lines]

        def on_reply(reply: Any) -> Reservation | None:
            if int(reply[0]) != 1:
                return None
            lns_id, tunnel_key, _ = choices[int(reply[1]) - 1]
            res = Reservation(
                rid, self.node, clean(lns_id), clean(tunnel_key), realm, bool(int(reply[2]))
            )
            self.local.adopt(res)
            return res

        def on_down() -> Reservation | None:
            self.counters["degraded_reserves"] += 1
            return self.local.reserve_first(choices, realm)

        return _Call(self._reserve_first, args, on_reply, on_down)

    def _choice_line(self, choice: Choice) -> str:
        """``lns\ttunnel\tlns_cap\ttunnel_cap\trealm_cap`` for the script (memoised: the same
        few choices recur on every call of a realm)."""
        line = self._lines.get(choice)
        if line is None:
            lns_id, tunnel_key, caps = choice
            line = (
                f"{clean(lns_id)}\t{clean(tunnel_key)}\t{self._cap(caps.lns)}\t"
                f"{self._cap(caps.tunnel)}\t{self._cap(caps.realm)}"
            )
            if len(self._lines) >= 4096:
                self._lines.clear()
            self._lines[choice] = line
        return line

    def release_call(self, reservation: Reservation) -> _Call[bool]:
        """The script call behind :meth:`release`; the ledger entry goes at once (exactly
        once, in ``before``), Redis follows."""
        mine = [False]

        def before() -> None:
            mine[0] = self.local.release(reservation)

        return _Call(
            self._release,
            [self.keys.prefix, self.node, reservation.id],
            lambda _: mine[0],
            lambda: mine[0],
            before,
        )

    def reserve_first_nowait(
        self, choices: Sequence[Choice], realm: str
    ) -> Future[Reservation | None] | None:
        """:meth:`reserve_first` without blocking; ``None``: call :meth:`reserve_first`."""
        return self._via_pipeliner(self.reserve_first_call(choices, realm))

    def release_nowait(self, reservation: Reservation) -> Future[bool] | None:
        """:meth:`release` without blocking; ``None``: call :meth:`release`."""
        return self._via_pipeliner(self.release_call(reservation))

    def release(self, reservation: Reservation) -> bool:
        with self._op():
            mine = self.local.release(reservation)
            with suppress(_Down):
                self._script(self._release, [self.keys.prefix, self.node, reservation.id])
            return mine

    def lock_out(self, lns_id: str, hold: float) -> None:
        with self._op():
            self.local.lock_out(lns_id, hold)
            with suppress(_Down):
                self._script(self._lock_out, [self.keys.prefix, lns_id, max(1, int(hold * 1000))])

    def unlock(self, lns_id: str) -> None:
        with self._op():
            self.local.unlock(lns_id)
            k = self.keys
            with suppress(_Down):
                self._redis(
                    lambda: self.client.delete(k.lock(lns_id), k.suspect(lns_id), k.probe(lns_id))
                )

    def drain(self, lns_id: str, on: bool) -> None:
        with self._op():
            self.local.drain(lns_id, on)
            op = self.client.sadd if on else self.client.srem
            with suppress(_Down):
                self._redis(lambda: op(self.keys.drained, lns_id))

    def claim_probe(self, lns_id: str) -> bool:
        with self._op():
            try:
                reply = self._script(
                    self._claim_probe,
                    [
                        self.keys.prefix,
                        lns_id,
                        self.node,
                        int(self.probe_timeout * 1000),
                    ],
                )
            except _Down:
                return self.local.claim_probe(lns_id)
            return int(reply) == 1

    def probe_result(self, lns_id: str, ok: bool, hold: float) -> None:
        if ok:
            self.unlock(lns_id)
        else:
            self.lock_out(lns_id, hold)

    def load_view(
        self, lns_ids: Iterable[str], realm: str, tunnel_keys: Iterable[str] = ()
    ) -> LoadView:
        ids, tuns = [clean(i) for i in lns_ids], [clean(t) for t in tunnel_keys]
        realm = clean(realm)
        with self._op():
            try:
                flat = self._script(
                    self._load_view,
                    [self.keys.prefix, self.node, realm, "\n".join(ids), "\n".join(tuns)],
                )
            except _Down:
                return self.local.load_view(ids, realm, tuns)
            return self._view_from(flat, ids, realm, tuns)

    def _view_from(self, flat: str, ids: list[str], realm: str, tuns: list[str]) -> LoadView:
        vals = [int(v) for v in str(flat).split(",")]
        loc = self.local
        now = self.clock()
        per_lns: dict[str, int] = {}
        locked: dict[str, float] = {}
        probe_ok: set[str] = set()
        in_flight: set[str] = set()
        drained: set[str] = set()
        base_lns = dict(loc.baseline_lns)
        with loc._lock:
            for n, lns in enumerate(ids):
                total, mine, pttl, suspect, probe, drn = vals[n * 6 : n * 6 + 6]
                per_lns[lns] = total
                base_lns[lns] = max(0, total - mine)
                if pttl > 0 or pttl == -1:
                    left = pttl / 1000 if pttl > 0 else 86400.0
                    locked[lns] = left
                    loc.locked_until[lns] = now + left
                    loc.suspect.add(lns)
                else:
                    loc.locked_until.pop(lns, None)
                    if suspect:
                        loc.suspect.add(lns)
                        (in_flight if probe else probe_ok).add(lns)
                    else:
                        loc.suspect.discard(lns)
                if drn:
                    drained.add(lns)
            base = len(ids) * 6
            realm_total, realm_mine = vals[base], vals[base + 1]
            base_tun = dict(loc.baseline_tunnel)
            per_tun: dict[str, int] = {}
            for n, key in enumerate(tuns):
                total, mine = vals[base + 2 + n * 2], vals[base + 3 + n * 2]
                per_tun[key] = total
                base_tun[key] = max(0, total - mine)
            base_realm = dict(loc.baseline_realm)
            base_realm[realm] = max(0, realm_total - realm_mine)
            loc.baseline_lns, loc.baseline_tunnel, loc.baseline_realm = (
                base_lns,
                base_tun,
                base_realm,
            )
        return LoadView(
            sessions_per_lns=per_lns,
            sessions_per_tunnel=per_tun,
            locked_out=locked,
            probe_available=frozenset(probe_ok),
            probe_in_flight=frozenset(in_flight),
            drained=frozenset(drained),
            realm_sessions=realm_total,
            existing_tunnels=frozenset(k for k, v in per_tun.items() if v > 0),
        )

    def register_session(self, record: SessionRecord) -> None:
        with self._op():
            self.local.register_session(record)
            with suppress(_Down):
                self._redis(
                    lambda: self.client.hset(
                        self.keys.node_sessions(self.node), record.session_key, record.encode()
                    )
                )

    def unregister_session(self, session_key: str) -> None:
        with self._op():
            self.local.unregister_session(session_key)
            with suppress(_Down):
                self._redis(
                    lambda: self.client.hdel(self.keys.node_sessions(self.node), session_key)
                )

    def sessions(self) -> list[SessionRecord]:
        """This node's sessions (from its ledger; the registry in Redis mirrors it)."""
        return self.local.sessions()

    def all_sessions(self) -> list[SessionRecord]:
        """Every live node's registered sessions (operator view); local ones when degraded."""
        try:
            nodes: list[Any] = self._redis(lambda: list(self.client.zrange(self.keys.nodes, 0, -1)))
            out: list[SessionRecord] = []
            for node in nodes:
                key = self.keys.node_sessions(str(node))
                values: list[Any] = self._redis(lambda k=key: list(self.client.hvals(k)))  # type: ignore[misc]
                out += [SessionRecord.decode(str(v)) for v in values]
            return out
        except _Down:
            return self.local.sessions()

    def heartbeat(self) -> None:
        """Refresh liveness, reap dead nodes, reconnect and re-publish after an outage."""
        self.local.heartbeat()
        with self._op():
            try:
                reply = self._script(
                    self._heartbeat, [self.keys.prefix, self.node, int(self.node_ttl * 1000)]
                )
            except _Down:
                return
        if int(reply[0]) == 1:
            # Another node reaped us (we were silent longer than node_ttl): publish again.
            log.warn("node {node} was expired by peers; re-publishing its state", node=self.node)
            with self._state_lock:
                self._down_since = self.clock()
                self._next_attempt = 0.0
            self._try_recover()

    def status(self) -> dict[str, Any]:
        down = self._down_since
        return {
            "backend": "redis",
            "node": self.node,
            "state": "ok" if down is None else "degraded (redis down, local view)",
            "degraded_for": 0.0 if down is None else self.clock() - down,
            "reservations": len(self.local.reservations),
            "sessions": len(self.local.session_records),
            **self.counters,
        }

    def close(self) -> None:
        if self._pipeliner is not None:
            self._pipeliner.close()
        self.client.close()


def thread_runner(reactor: Any, pool: ThreadPool) -> Runner:
    def run(fn: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, pool, fn)

    return run


class RedisDeferredStore(DeferredStateStore):
    """The reactor's Redis store. ``reserve_first`` and ``release`` are written straight onto
    a pipelined connection owned by the reactor (:class:`ReactorRedis`: no thread hop, no
    wake-up per reply); until that connection is up, they go to the pipeliner thread (result
    back through ``callFromThread``); other calls, and these two while Redis is down or being
    re-synced, run in the thread pool."""

    def __init__(
        self,
        core: RedisStateCore,
        reactor: Any,
        runner: Runner,
        fast: ReactorRedis | None = None,
    ) -> None:
        super().__init__(core, runner)
        self.redis_core = core
        self.reactor = reactor
        self.fast = fast

    def _deferred(self, fut: Future[T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()

        def done(f: Future[T]) -> None:
            exc = f.exception()
            if exc is None:
                self.reactor.callFromThread(d.callback, f.result())
            else:
                self.reactor.callFromThread(d.errback, exc)

        fut.add_done_callback(done)
        return d

    def _on_reactor(self, call: _Call[T] | None) -> Deferred[T] | None:
        """Run ``call`` on the reactor's own connection; None when it is not usable now."""
        fast = self.fast
        if call is None or fast is None or self.redis_core.degraded:
            return None
        if not fast.ready:
            fast.connect()
            return None
        d: Deferred[T] = Deferred()

        def send(script: Script, args: list[Any], done: Done) -> None:
            fast.call(script, args).addCallbacks(
                lambda reply: done(None, reply), lambda failure: done(failure.value, None)
            )

        def deliver(exc: BaseException | None, result: T | None) -> None:
            if exc is not None:
                d.errback(exc)
            else:
                d.callback(cast(T, result))

        return d if self.redis_core._start(call, send, deliver) else None

    def reserve_first(self, choices: Sequence[Choice], realm: str) -> Deferred[Reservation | None]:
        items = tuple(choices)
        core = self.redis_core
        d = self._on_reactor(core.reserve_first_call(items, realm))
        if d is not None:
            return d
        fut = core.reserve_first_nowait(items, realm)
        if fut is None:
            return super().reserve_first(items, realm)
        return self._deferred(fut)

    def release(self, reservation: Reservation) -> Deferred[bool]:
        core = self.redis_core
        d = self._on_reactor(core.release_call(reservation))
        if d is not None:
            return d
        fut = core.release_nowait(reservation)
        if fut is None:
            return super().release(reservation)
        return self._deferred(fut)


def make_redis_store(
    core: RedisStateCore, reactor: Any = None, threads: int = 32, on_reactor: bool = True
) -> DeferredStateStore:
    """Wrap ``core`` for the reactor: its calls run in a dedicated pool stopped at shutdown;
    the hot path uses a pipelined connection on the reactor (``on_reactor``, not for TLS)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    pool = ThreadPool(minthreads=1, maxthreads=threads, name="redis-state")
    pool.start()
    runner = thread_runner(reactor, pool)
    fast = None
    tls = "SSL" in core.client.connection_pool.connection_class.__name__
    if on_reactor and not tls:
        locate = locate_for(core.client)
        fast = ReactorRedis(reactor, lambda: runner(locate), timeout=core.socket_timeout)
        reactor.addSystemEventTrigger("before", "shutdown", fast.close)
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    reactor.addSystemEventTrigger("after", "shutdown", core.close)
    return RedisDeferredStore(core, reactor, runner, fast)
