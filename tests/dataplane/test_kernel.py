"""KernelSplice table handling with fake kernel objects (no PPP/L2TP on this host)."""

from __future__ import annotations

import errno
import socket
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.dataplane import pppox
from broker.dataplane.fastpath import FastSplice
from broker.dataplane.kernel import (
    L2TP_OVERHEAD,
    SEQ_OVERHEAD,
    KernelSplice,
    LinuxKernelOps,
    kernel_support,
)
from broker.dataplane.userspace import ETH_P_PPP_SES
from broker.service import DataplaneUnavailable, choose_dataplane, make_splice_factory
from broker.wire import MacAddress

LNS = ("198.51.100.2", 1701)
LNS2 = ("198.51.100.3", 1701)
LOCAL = ("198.51.100.1", 1701)


class FakeSock:
    _next = 100

    def __init__(self, kind: str, **info: Any) -> None:
        FakeSock._next += 1
        self.fd = FakeSock._next
        self.kind = kind
        self.info = info
        self.closed = False
        self.rx: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.opts: list[tuple[int, int, Any]] = []

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        self.closed = True

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        if not self.rx:
            raise BlockingIOError
        return self.rx.popleft()

    def setsockopt(self, level: int, opt: int, value: Any) -> None:
        self.opts.append((level, opt, value))

    def getsockname(self) -> tuple[str, int]:
        return LOCAL


class FakeOps:
    """Records the kernel calls; ``fail`` names a call that raises OSError once."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: str | None = None
        self.socks: list[FakeSock] = []
        self.ppp_open: set[int] = set()
        self.bridges: dict[int, tuple[int, int]] = {}  # ppp fd -> (pppoe chan, l2tp chan)
        self.chan = 0
        self.stats: dict[int, pppox.L2tpStats] = {}
        self._fd = 1000

    def _maybe_fail(self, name: str) -> None:
        if self.fail == name:
            self.fail = None
            raise OSError(errno.EEXIST, f"{name} failed")

    def _sock(self, kind: str, **info: Any) -> FakeSock:
        sock = FakeSock(kind, **info)
        self.socks.append(sock)
        return sock

    def tunnel_socket(self, local: tuple[str, int], peer: tuple[str, int]) -> FakeSock:
        self._maybe_fail("tunnel_socket")
        self.calls.append(("tunnel_socket", local, peer))
        return self._sock("udp", local=local, peer=peer)

    def pppol2tp_socket(self, udp_fd: int, peer: tuple[str, int], *ids: Any) -> FakeSock:
        self._maybe_fail("pppol2tp_socket")
        self.calls.append(("pppol2tp_socket", udp_fd, peer, *ids))
        return self._sock("pppol2tp", udp_fd=udp_fd, ids=ids)

    def pppoe_socket(self, interface: str, mac: bytes, session_id: int) -> FakeSock:
        self._maybe_fail("pppoe_socket")
        self.calls.append(("pppoe_socket", interface, mac, session_id))
        return self._sock("pppoe", interface=interface, mac=mac, sid=session_id)

    def channel(self, sock: FakeSock) -> int:
        self._maybe_fail("channel")
        self.chan += 1
        sock.info["chan"] = self.chan
        return self.chan

    def open_ppp(self) -> int:
        self._maybe_fail("open_ppp")
        self._fd += 1
        self.ppp_open.add(self._fd)
        return self._fd

    def attach_channel(self, ppp_fd: int, channel: int) -> None:
        self._maybe_fail("attach_channel")
        self.bridges[ppp_fd] = (channel, 0)

    def bridge(self, ppp_fd: int, channel: int) -> None:
        self._maybe_fail("bridge")
        self.bridges[ppp_fd] = (self.bridges[ppp_fd][0], channel)

    def unbridge(self, ppp_fd: int) -> None:
        self.calls.append(("unbridge", ppp_fd))
        self._maybe_fail("unbridge")
        self.bridges.pop(ppp_fd, None)

    def close_fd(self, fd: int) -> None:
        self.ppp_open.discard(fd)
        self.bridges.pop(fd, None)  # closing /dev/ppp detaches (and unbridges) the channel

    def l2tp_stats(self, sock: FakeSock) -> pppox.L2tpStats:
        self._maybe_fail("l2tp_stats")
        return self.stats.get(sock.fd, pppox.L2tpStats(0, 0, False, 0, 0, 0, 0, 0, 0, 0, 0))

    def open_socks(self) -> list[FakeSock]:
        return [s for s in self.socks if not s.closed]


class FakeNetlink:
    def __init__(self) -> None:
        self.tunnels: dict[int, tuple[int, int]] = {}
        self.sessions: dict[tuple[int, int], tuple[int, bool]] = {}
        self.fail: str | None = None
        self.closed = False

    def _maybe_fail(self, name: str) -> None:
        if self.fail == name:
            self.fail = None
            raise OSError(errno.EEXIST, f"{name} failed")

    def create_tunnel(
        self, tunnel_id: int, peer_tunnel_id: int, fd: int, local: Any, peer: Any
    ) -> None:
        self._maybe_fail("create_tunnel")
        assert tunnel_id not in self.tunnels
        self.tunnels[tunnel_id] = (peer_tunnel_id, fd)

    def delete_tunnel(self, tunnel_id: int) -> None:
        if self.tunnels.pop(tunnel_id, None) is None:
            raise OSError(errno.ENOENT, "no tunnel")
        for key in [k for k in self.sessions if k[0] == tunnel_id]:
            del self.sessions[key]

    def create_session(
        self, tunnel_id: int, session_id: int, peer_session_id: int, sequencing: bool
    ) -> None:
        self._maybe_fail("create_session")
        assert tunnel_id in self.tunnels
        self.sessions[(tunnel_id, session_id)] = (peer_session_id, sequencing)

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        if self.sessions.pop((tunnel_id, session_id), None) is None:
            raise OSError(errno.ENOENT, "no session")

    def session_stats(self, tunnel_id: int, session_id: int) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self.closed = True


class FakeFallback:
    def __init__(self) -> None:
        self.attached: dict[int, dict[str, Any]] = {}
        self.installed: list[Any] = []
        self.down: list[bytes] = []
        self.peers: list[tuple[str, int] | None] = []
        self.counters: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.attached)

    def attach(self, **kw: Any) -> None:
        self.attached[kw["call_id"]] = kw

    def detach(self, call_id: int) -> dict[str, int]:
        return {"input_octets": 1} if self.attached.pop(call_id, None) else {}

    def counters_for(self, call_id: int) -> dict[str, int] | None:
        return {"input_octets": 1} if call_id in self.attached else None

    def owns(self, interface: str, mac: bytes, sid: int) -> bool:
        return any(
            a["interface"] == interface and a["mac"] == mac and a["pppoe_session_id"] == sid
            for a in self.attached.values()
        )

    def upstream(self, interface: str, mac: bytes, sid: int, ppp: bytes) -> bool:
        return self.owns(interface, mac, sid)

    def downstream(self, data: bytes, peer: tuple[str, int] | None = None) -> bool:
        self.down.append(data)
        self.peers.append(peer)
        return False

    def install(self, raw: Any, l2tp: Any, *, ring: bool = True, l2tp_ring: bool = True) -> None:
        self.installed.append((raw, l2tp, ring, l2tp_ring))

    def uninstall(self) -> None:
        self.installed.clear()


class FakeReactor:
    def __init__(self) -> None:
        self.readers: set[Any] = set()

    def addReader(self, reader: Any) -> None:
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.discard(reader)


def mac(i: int) -> MacAddress:
    return MacAddress(bytes([2, 0, 0, 0, i >> 8, i & 0xFF]))


def make(
    *, fallback: Any = None, installed: bool = True
) -> tuple[KernelSplice, FakeOps, FakeNetlink, FakeReactor, list[Any]]:
    ops, nl, reactor = FakeOps(), FakeNetlink(), FakeReactor()
    received: list[Any] = []
    splice = KernelSplice(
        lambda d, p: None, lambda *a: None, ops=ops, netlink=nl,
        fallback=fallback if fallback is not None else FakeFallback(), log=received.append,
    )  # fmt: skip
    if installed:
        listening = SimpleNamespace(socket=FakeSock("listen"))
        adapter = SimpleNamespace(
            listening=listening,
            reactor=reactor,
            datagramReceived=lambda data, addr: received.append((data, addr)),
        )
        raw_sock = FakeSock("raw")
        raw = SimpleNamespace(
            _readers={
                ("eth1", ETH_P_PPP_SES): SimpleNamespace(sock=raw_sock),
                ("eth1", 0x8863): SimpleNamespace(sock=FakeSock("disc")),
            }
        )
        splice.install(raw, adapter)
    return splice, ops, nl, reactor, received


def attach(splice: KernelSplice, call_id: int, tunnel: int = 10, *, seq: bool = False) -> None:
    splice.attach(
        call_id=call_id, interface="eth1", mac=mac(call_id), pppoe_session_id=call_id,
        tunnel_id=tunnel, session_id=100 + call_id, peer_tunnel_id=tunnel + 1000,
        peer_session_id=200 + call_id, peer=LNS if tunnel == 10 else LNS2, sequencing=seq,
    )  # fmt: skip


def test_first_attach_creates_tunnel_socket_and_bridge() -> None:
    splice, ops, nl, reactor, _ = make()
    attach(splice, 1)
    assert ops.calls[0] == ("tunnel_socket", LOCAL, LNS)
    udp = ops.socks[0]
    assert nl.tunnels == {10: (1010, udp.fd)}
    assert nl.sessions == {(10, 101): (201, False)}
    assert ("pppol2tp_socket", udp.fd, LNS, 10, 101, 1010, 201, False) in ops.calls
    assert ("pppoe_socket", "eth1", bytes(mac(1)), 1) in ops.calls
    (ppp_fd,) = ops.ppp_open
    pppoe = next(s for s in ops.socks if s.kind == "pppoe")
    l2tp = next(s for s in ops.socks if s.kind == "pppol2tp")
    # /dev/ppp attached to the PPPoE channel, bridged to the L2TP channel
    assert ops.bridges[ppp_fd] == (pppoe.info["chan"], l2tp.info["chan"])
    assert len(reactor.readers) == 1 and len(splice) == 1
    assert splice.kernel_calls == [1]


def test_sessions_share_their_tunnel_and_the_last_detach_deletes_it() -> None:
    splice, ops, nl, reactor, _ = make()
    attach(splice, 1)
    attach(splice, 2)
    attach(splice, 3, tunnel=20)
    assert sorted(nl.tunnels) == [10, 20]
    assert sum(1 for c in ops.calls if c[0] == "tunnel_socket") == 2
    splice.detach(1)
    assert 10 in nl.tunnels and (10, 101) not in nl.sessions
    splice.detach(2)
    assert 10 not in nl.tunnels and len(reactor.readers) == 1
    splice.detach(3)
    assert nl.tunnels == {} and nl.sessions == {} and reactor.readers == set()
    assert ops.open_socks() == [] and ops.ppp_open == set() and ops.bridges == {}
    assert len(splice) == 0


def test_sequencing_reaches_session_and_socket() -> None:
    splice, ops, nl, _, _ = make()
    attach(splice, 1, seq=True)
    assert nl.sessions[(10, 101)] == (201, True)
    assert any(c[0] == "pppol2tp_socket" and c[-1] is True for c in ops.calls)


def test_counters_from_the_kernel_without_l2tp_overhead() -> None:
    splice, ops, _, _, _ = make()
    attach(splice, 1)
    attach(splice, 2, seq=True)
    for call_id, over in ((1, L2TP_OVERHEAD), (2, L2TP_OVERHEAD + SEQ_OVERHEAD)):
        sock = next(
            s for s in ops.socks if s.kind == "pppol2tp" and s.info["ids"][1] == 100 + call_id
        )
        ops.stats[sock.fd] = pppox.L2tpStats(
            10, 101, False, 3, 300 + 3 * over, 0, 2, 500 + 2 * L2TP_OVERHEAD, 0, 0, 0
        )
        assert splice.counters_for(call_id) == {
            "input_octets": 300, "input_packets": 3, "output_octets": 500, "output_packets": 2,
        }  # fmt: skip
    ops.fail = "l2tp_stats"  # an error keeps the last reading
    assert splice.counters_for(1) == {
        "input_octets": 300, "input_packets": 3, "output_octets": 500, "output_packets": 2,
    }  # fmt: skip
    assert splice.counters["stats_errors"] == 1
    assert splice.detach(1)["input_octets"] == 300
    assert splice.counters_for(1) is None


@pytest.mark.parametrize(
    "failing",
    ["tunnel_socket", "create_tunnel", "create_session", "pppol2tp_socket", "pppoe_socket",
     "channel", "open_ppp", "attach_channel", "bridge"],
)  # fmt: skip
def test_kernel_refusal_cleans_up_and_falls_back_to_userspace(failing: str) -> None:
    fallback = FakeFallback()
    splice, ops, nl, reactor, logged = make(fallback=fallback)
    if failing in ("create_tunnel", "create_session"):
        nl.fail = failing
    else:
        ops.fail = failing
    attach(splice, 1)
    assert 1 in fallback.attached and splice.kernel_calls == []
    assert splice.counters["attach_errors"] == 1 and splice.counters["fallback_sessions"] == 1
    assert any("kernel splice refused for call 1" in str(m) for m in logged)
    assert ops.open_socks() == [] and ops.ppp_open == set() and ops.bridges == {}
    assert nl.tunnels == {} and nl.sessions == {} and reactor.readers == set()
    assert len(splice) == 1
    assert splice.counters_for(1) == {"input_octets": 1}
    assert splice.detach(1) == {"input_octets": 1} and len(splice) == 0


def test_refused_session_keeps_an_existing_tunnel() -> None:
    splice, ops, nl, _, _ = make()
    attach(splice, 1)
    ops.fail = "pppoe_socket"
    attach(splice, 2)
    assert 10 in nl.tunnels and splice.kernel_calls == [1]


def test_without_fallback_the_refusal_raises() -> None:
    splice, ops, _, _, _ = make(fallback=False)
    ops.fail = "bridge"
    with pytest.raises(OSError):
        attach(splice, 1)
    assert splice.detach(1) == {} and splice.counters_for(1) is None
    assert not splice.upstream("eth1", mac(1), 1, b"\x00\x21") and not splice.downstream(b"x")
    assert splice.counters["unknown_downstream"] == 1


def test_attach_before_install_uses_the_fallback() -> None:
    fallback = FakeFallback()
    splice, _, _, _, _ = make(fallback=fallback, installed=False)
    attach(splice, 1)
    assert 1 in fallback.attached and splice.counters["attach_errors"] == 1


def test_upstream_drops_copies_of_bridged_frames() -> None:
    fallback = FakeFallback()
    splice, _, _, _, _ = make(fallback=fallback)
    attach(splice, 1)
    assert splice.upstream("eth1", mac(1), 1, b"\x00\x21abc") is True
    assert splice.counters["bridged_frames_seen"] == 1
    assert splice.owns("eth1", mac(1), 1)
    assert splice.upstream("eth1", mac(2), 1, b"\x00\x21") is False  # not ours
    splice.downstream(b"\x00\x02data", ("198.51.100.2", 1701))
    assert fallback.down == [b"\x00\x02data"]
    assert fallback.peers == [("198.51.100.2", 1701)]  # the source check is the fallback's


def test_unbridge_failure_after_padt_is_counted_and_detach_completes() -> None:
    splice, ops, nl, _, _ = make()
    attach(splice, 1)
    ops.fail = "unbridge"
    splice.detach(1)
    assert splice.counters["detach_errors"] == 1
    attach(splice, 2)
    ops.unbridge = lambda fd: (_ for _ in ()).throw(OSError(errno.EINVAL, "not bridged"))  # type: ignore[method-assign]
    splice.detach(2)
    assert splice.counters["already_unbridged"] == 1 and splice.counters["detach_errors"] == 1
    assert nl.tunnels == {} and ops.open_socks() == [] and ops.ppp_open == set()


def test_tunnel_socket_hands_control_messages_to_the_adapter() -> None:
    splice, ops, _, reactor, received = make()
    attach(splice, 1)
    (reader,) = reactor.readers
    udp = ops.socks[0]
    assert reader.fileno() == udp.fd and "10" in reader.logPrefix()
    udp.rx.append((b"\xc8\x02control", LNS))
    udp.rx.append((b"\x00\x02stray-data", LNS))
    reader.doRead()
    assert received[-2:] == [(b"\xc8\x02control", LNS), (b"\x00\x02stray-data", LNS)]
    assert splice.counters["tunnel_datagrams"] == 2
    # a StopCCN racing the teardown is still delivered
    udp.rx.append((b"\xc8\x02stopccn", LNS))
    splice.detach(1)
    assert received[-1] == (b"\xc8\x02stopccn", LNS) and udp.closed


def test_install_shares_the_port_and_filters_bridged_data_frames() -> None:
    splice, ops, _, _, _ = make()
    assert ops.socks == []  # tunnel sockets come with the first attach
    raw_sock = splice._filter_socks["eth1"][0]
    attach(splice, 1)
    attach(splice, 2)
    attached = [o for o in raw_sock.opts if o[1] == 26]  # SO_ATTACH_FILTER
    assert len(attached) == 2
    splice.detach(1)
    splice.detach(2)
    assert raw_sock.opts[-1][1] == 27  # SO_DETACH_FILTER once nothing is bridged


def test_uninstall_tears_everything_down() -> None:
    fallback = FakeFallback()
    splice, ops, nl, reactor, _ = make(fallback=fallback)
    attach(splice, 1)
    attach(splice, 2, tunnel=20)
    assert fallback.installed
    assert fallback.installed[0][3] is False  # no L2TP packet ring copying kernel traffic
    splice.uninstall()
    assert nl.tunnels == {} and nl.sessions == {} and nl.closed
    assert ops.open_socks() == [] and ops.ppp_open == set() and reactor.readers == set()
    assert fallback.installed == [] and len(splice) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["attach", "detach"]), st.integers(1, 6), st.sampled_from([10, 20]),
            st.sampled_from([None, "pppoe_socket", "bridge", "create_tunnel"]),
        ),
        max_size=30,
    )
)  # fmt: skip
def test_table_invariants_hold_for_any_sequence(ops_seq: list[tuple[str, int, int, Any]]) -> None:
    fallback = FakeFallback()
    splice, ops, nl, reactor, _ = make(fallback=fallback)
    for op, call_id, tunnel, fail in ops_seq:
        if op == "attach":
            if fail == "create_tunnel":
                nl.fail = fail
            else:
                ops.fail = fail
            attach(splice, call_id, tunnel)
            ops.fail = nl.fail = None
        else:
            splice.detach(call_id)
        kernel = splice.kernel_calls
        # a kernel tunnel exists exactly for the tunnels of bridged calls
        live = {splice._sessions[c].tunnel_id for c in kernel}
        assert set(nl.tunnels) == live == set(splice._tunnels)
        assert len(reactor.readers) == len(live)
        assert len(ops.ppp_open) == len(kernel) == len(ops.bridges)
        assert not set(kernel) & set(fallback.attached)
        assert len(splice) == len(kernel) + len(fallback.attached)
    splice.uninstall()
    assert ops.open_socks() == [] and ops.ppp_open == set() and nl.tunnels == {}


# -- choosing the data plane ------------------------------------------------------------------


def test_choose_dataplane() -> None:
    yes = lambda: (True, "all there")  # noqa: E731
    no = lambda: (False, "no AF_PPPOX")  # noqa: E731
    assert choose_dataplane("userspace", yes) == ("userspace", "configured")
    assert choose_dataplane("auto", yes) == ("kernel", "all there")
    assert choose_dataplane("auto", no) == ("userspace", "auto: no AF_PPPOX")
    assert choose_dataplane("kernel", yes) == ("kernel", "all there")
    with pytest.raises(DataplaneUnavailable) as info:
        choose_dataplane("kernel", no)
    assert "dataplane: kernel is not available" in str(info.value)
    assert "no AF_PPPOX" in str(info.value) and "fix:" in str(info.value)


def test_splice_factory_for_each_dataplane() -> None:
    assert make_splice_factory("userspace") is None
    factory = make_splice_factory("kernel")
    assert factory is not None
    splice = factory(lambda d, p: None, lambda *a: None)
    assert isinstance(splice, KernelSplice) and splice.name == "kernel"


def test_kernel_support_answers_with_a_reason() -> None:
    ok, why = kernel_support()
    assert isinstance(ok, bool) and why
    if not ok:
        assert "module" in why or "load" in why


# -- real sockets on loopback (no PPP/L2TP needed) ----------------------------------------------


def test_tunnel_socket_shares_the_l2tp_port_and_takes_the_lns_datagrams() -> None:
    listening = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listening.bind(("127.0.0.1", 0))
        lns.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        splice = KernelSplice(lambda d, p: None, lambda *a: None, netlink=FakeNetlink())
        adapter = SimpleNamespace(
            listening=SimpleNamespace(socket=listening), reactor=FakeReactor(),
            datagramReceived=lambda data, addr: None,
        )  # fmt: skip
        splice.install(None, adapter)  # SO_REUSEADDR on the listening socket
        local = listening.getsockname()
        tunnel = LinuxKernelOps().tunnel_socket(local, lns.getsockname())
        try:
            assert tunnel.getsockname() == local
            lns.sendto(b"\xc8\x02from-lns", local)
            other.sendto(b"\xc8\x02from-other", local)
            tunnel.settimeout(5)
            listening.settimeout(5)
            assert tunnel.recvfrom(100)[0] == b"\xc8\x02from-lns"
            assert listening.recvfrom(100)[0] == b"\xc8\x02from-other"
        finally:
            tunnel.close()
        splice.uninstall()
    finally:
        for s in (listening, lns, other):
            s.close()


def test_real_ops_without_a_working_kernel_session_fall_back_to_userspace() -> None:
    # The fake netlink creates nothing in the kernel, so connecting the PPPoL2TP socket fails
    # (no AF_PPPOX on this host, or no such tunnel where the modules exist): userspace takes it.
    listening = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: list[tuple[bytes, Any]] = []
    try:
        listening.bind(("127.0.0.1", 0))
        lns.bind(("127.0.0.1", 0))
        nl = FakeNetlink()
        splice = KernelSplice(lambda d, p: sent.append((d, p)), lambda *a: None, netlink=nl)
        assert isinstance(splice.fallback, FastSplice)
        splice._local = listening.getsockname()
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        splice.attach(
            call_id=1, interface="eth1", mac=mac(1), pppoe_session_id=7, tunnel_id=10,
            session_id=101, peer_tunnel_id=1010, peer_session_id=201, peer=lns.getsockname(),
            sequencing=False,
        )  # fmt: skip
        assert splice.kernel_calls == [] and len(splice) == 1
        assert nl.tunnels == {} and nl.sessions == {}
        assert splice.upstream("eth1", mac(1), 7, b"\x00\x21ip") is True
        assert sent and sent[0][0].endswith(b"\xff\x03\x00\x21ip")
        assert splice.detach(1)["input_packets"] == 1
    finally:
        listening.close()
        lns.close()


def test_one_kernel_tunnel_per_lns_endpoint() -> None:
    fallback = FakeFallback()
    splice, _, nl, _, logged = make(fallback=fallback)
    attach(splice, 1, tunnel=10)
    # another tunnel to the same LNS address and port: userspace
    splice.attach(
        call_id=2, interface="eth1", mac=mac(2), pppoe_session_id=2, tunnel_id=11,
        session_id=101, peer_tunnel_id=1011, peer_session_id=202, peer=LNS, sequencing=False,
    )  # fmt: skip
    assert list(nl.tunnels) == [10] and 2 in fallback.attached
    assert splice.counters["fallback_sessions"] == 1
    # same session id as the kernel session of tunnel 10: counted and logged
    assert splice.counters["session_id_collisions"] == 1
    assert any("already has kernel tunnel 10" in str(m) for m in logged)
    splice.detach(1)
    splice.attach(
        call_id=3, interface="eth1", mac=mac(3), pppoe_session_id=3, tunnel_id=11,
        session_id=103, peer_tunnel_id=1011, peer_session_id=203, peer=LNS, sequencing=False,
    )  # fmt: skip
    assert list(nl.tunnels) == [11]  # tunnel 10 left the kernel: 11 may take the endpoint


def test_linux_ops_turn_unpackable_addresses_into_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    fake = SimpleNamespace(fileno=lambda: 99, close=lambda: closed.append(True))
    monkeypatch.setattr("broker.dataplane.kernel.socket.socket", lambda *a: fake)
    ops = LinuxKernelOps()
    with pytest.raises(OSError) as info:
        ops.pppol2tp_socket(5, ("2001:db8::1", 1701), 1, 2, 3, 4, False)  # IPv6 LNS
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        ops.pppoe_socket("an-interface-name-too-long", b"\x02" * 6, 1)
    assert closed == [True, True]
