"""Kernel data plane: the Linux kernel bridges each PPPoE session (RFC 2516 section 4) to its
L2TP session (RFC 2661 section 3.1) with PPPIOCBRIDGECHAN (Linux 5.11+); Python only sees
discovery, LCP/authentication (done by the call flow before the splice is attached) and L2TP
control messages.

:class:`KernelSplice` has :class:`~broker.dataplane.fastpath.FastSplice`'s interface
(``attach``/``detach``/``counters_for``/``upstream``/``downstream``/``install``/``uninstall``),
so the runtime takes it through ``splice_factory``. Per call, on ``attach``:

1. the first session of a tunnel creates the kernel's L2TPv2 tunnel (UDP encapsulation) over
   generic netlink on a UDP socket of ours. Linux wants that socket *connected* to the LNS (it
   transmits with the socket's route) and refuses a second tunnel on one socket, so each
   tunnel gets its own socket bound to the broker's L2TP address and port (SO_REUSEADDR on
   both) and connected to the LNS: the kernel's UDP lookup prefers it for that LNS. Before
   Linux 6.10 the kernel finds a data message's session by session id within the tunnel of
   the socket that received it, so only one tunnel per LNS endpoint goes to the kernel;
   further tunnels to the same LNS (other Assignment-IDs) are spliced in userspace. The
   kernel takes data messages (T=0) for its sessions; control messages (T=1) and anything it
   does not know come up on that socket and are handed to the L2TP adapter as if they had
   arrived on the listening socket. Control messages are still sent from the listening socket
   (same address and port, so the LNS sees no difference);
2. a PPP pseudowire session is created (netlink, sequencing as negotiated, RFC 2661 5.4), a
   PPPoL2TP socket is connected to it and a PPPoE socket to (session id, subscriber MAC,
   interface); PPPIOCGCHAN gives both channels; /dev/ppp is attached to the PPPoE channel
   (PPPIOCATTCHAN) and bridged to the L2TP one (PPPIOCBRIDGECHAN). The kernel adds FF 03 on
   the way to the LNS and strips it on the way back (DESIGN.md section 3).

``detach`` unbridges (PPPIOCUNBRIDGECHAN), reads the session's counters (PPPIOCGL2TPSTATS),
closes the sockets, deletes the session, and the tunnel with its last session. Session frames
the raw PPPoE socket still sees for a bridged session are dropped (``upstream`` returns True);
with :meth:`KernelSplice.install` a classic BPF filter drops their data frames (PPP protocol
< 0x8000) before they reach Python. When the kernel refuses a session (module missing, ids
taken), the call is spliced in userspace by the ``fallback`` :class:`FastSplice` instead, and
the error is counted and logged through ``log``.

:func:`kernel_support` says whether this host can do it (AF_PPPOX with PPPoE and PPPoL2TP,
/dev/ppp, the ``l2tp`` generic netlink family) and why not.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import inspect
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.dataplane import pppox
from broker.dataplane.fastpath import FastSplice
from broker.dataplane.l2tp_netlink import L2tpControl, PyrouteL2tp, family_available
from broker.dataplane.userspace import ETH_P_PPP_SES, SendEthernet, SendL2tp
from broker.wire import MacAddress, format_mac

__all__ = [
    "KernelOps",
    "KernelSplice",
    "LinuxKernelOps",
    "kernel_support",
    "session_drop_filter",
]

_COUNTER_NAMES = ("input_octets", "input_packets", "output_octets", "output_packets")
#: What the kernel's L2TP byte counters include beyond the PPP frame (PPPoE payload): the
#: L2TPv2 data header (6 octets; +4 with Ns/Nr) and the FF 03 address/control octets.
L2TP_OVERHEAD = 8
SEQ_OVERHEAD = 4
#: linux/filter.h, asm-generic/socket.h
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_BPF_INSN = struct.Struct("=HBBI")
_BPF_LDH_ABS = 0x28  # BPF_LD | BPF_H | BPF_ABS
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_BPF_RET_K = 0x06  # BPF_RET | BPF_K
#: BPF_MAXINSNS is 4096: 5 fixed instructions + 2 per session id.
MAX_FILTERED_SESSIONS = 2000
#: Datagrams read from a tunnel socket per reactor wakeup.
_TUNNEL_BUDGET = 64


def session_drop_filter(session_ids: Iterable[int]) -> bytes:
    """Classic BPF for an ETH_P_PPP_SES packet socket: drop the data frames (PPP protocol
    below 0x8000, RFC 1661 section 2) of the given PPPoE sessions, accept everything else
    (LCP, authentication, NCPs, and every other session)."""
    prog = [
        (_BPF_LDH_ABS, 0, 0, 20),  # PPP protocol (after Ethernet 14 + PPPoE 6)
        (_BPF_JGE_K, 0, 1, 0x8000),
        (_BPF_RET_K, 0, 0, 0x40000),
        (_BPF_LDH_ABS, 0, 0, 16),  # PPPoE SESSION_ID
    ]
    for sid in sorted(set(session_ids)):
        prog.append((_BPF_JEQ_K, 0, 1, sid))
        prog.append((_BPF_RET_K, 0, 0, 0))
    prog.append((_BPF_RET_K, 0, 0, 0x40000))
    return b"".join(_BPF_INSN.pack(*insn) for insn in prog)


def attach_filter(sock: Any, program: bytes) -> None:
    """SO_ATTACH_FILTER with a ``struct sock_fprog`` pointing at ``program``."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // _BPF_INSN.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class KernelOps(Protocol):
    """The system calls of the kernel data plane (fakes in tests)."""

    def tunnel_socket(self, local: tuple[str, int], peer: tuple[str, int]) -> Any: ...

    def pppol2tp_socket(
        self, udp_fd: int, peer: tuple[str, int], tunnel_id: int, session_id: int,
        peer_tunnel_id: int, peer_session_id: int, sequencing: bool,
    ) -> Any: ...  # fmt: skip

    def pppoe_socket(self, interface: str, mac: bytes, session_id: int) -> Any: ...

    def channel(self, sock: Any) -> int: ...

    def open_ppp(self) -> int: ...

    def attach_channel(self, ppp_fd: int, channel: int) -> None: ...

    def bridge(self, ppp_fd: int, channel: int) -> None: ...

    def unbridge(self, ppp_fd: int) -> None: ...

    def close_fd(self, fd: int) -> None: ...

    def l2tp_stats(self, sock: Any) -> pppox.L2tpStats: ...


class LinuxKernelOps:
    """:class:`KernelOps` on the real kernel."""

    def tunnel_socket(self, local: tuple[str, int], peer: tuple[str, int]) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(local)
            sock.connect(peer)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def pppol2tp_socket(
        self, udp_fd: int, peer: tuple[str, int], tunnel_id: int, session_id: int,
        peer_tunnel_id: int, peer_session_id: int, sequencing: bool,
    ) -> socket.socket:  # fmt: skip
        sock = socket.socket(pppox.AF_PPPOX, socket.SOCK_DGRAM, pppox.PxProto.OL2TP)
        try:
            pppox.connect_raw(
                sock.fileno(),
                pppox.pack_sockaddr_pppol2tp(
                    fd=udp_fd, peer=peer, tunnel_id=tunnel_id, session_id=session_id,
                    peer_tunnel_id=peer_tunnel_id, peer_session_id=peer_session_id,
                ),
            )  # fmt: skip
            if sequencing:
                for opt in (pppox.PppolL2tpOption.SENDSEQ, pppox.PppolL2tpOption.RECVSEQ):
                    sock.setsockopt(pppox.SOL_PPPOL2TP, opt, 1)
        except (OSError, ValueError) as exc:
            sock.close()
            if isinstance(exc, ValueError):  # an IPv6 LNS, say: no sockaddr_pppol2tp for it
                raise OSError(errno.EINVAL, str(exc)) from exc
            raise
        return sock

    def pppoe_socket(self, interface: str, mac: bytes, session_id: int) -> socket.socket:
        sock = socket.socket(pppox.AF_PPPOX, socket.SOCK_STREAM, pppox.PxProto.OE)
        try:
            pppox.connect_raw(sock.fileno(), pppox.pack_sockaddr_pppoe(session_id, mac, interface))
        except (OSError, ValueError) as exc:
            sock.close()
            if isinstance(exc, ValueError):
                raise OSError(errno.EINVAL, str(exc)) from exc
            raise
        return sock

    def channel(self, sock: Any) -> int:
        return pppox.get_channel(sock.fileno())

    def open_ppp(self) -> int:
        return os.open("/dev/ppp", os.O_RDWR | os.O_CLOEXEC)

    def attach_channel(self, ppp_fd: int, channel: int) -> None:
        pppox.attach_channel(ppp_fd, channel)

    def bridge(self, ppp_fd: int, channel: int) -> None:
        pppox.bridge_channels(ppp_fd, channel)

    def unbridge(self, ppp_fd: int) -> None:
        pppox.unbridge_channel(ppp_fd)

    def close_fd(self, fd: int) -> None:
        os.close(fd)

    def l2tp_stats(self, sock: Any) -> pppox.L2tpStats:
        return pppox.get_l2tp_stats(sock.fileno())


def kernel_support() -> tuple[bool, str]:
    """(available, reason): AF_PPPOX PPPoE + PPPoL2TP sockets, /dev/ppp, L2TP netlink."""
    for proto, kind, module in (
        (pppox.PxProto.OE, socket.SOCK_STREAM, "pppoe"),
        (pppox.PxProto.OL2TP, socket.SOCK_DGRAM, "l2tp_ppp"),
    ):
        try:
            socket.socket(pppox.AF_PPPOX, kind, proto).close()
        except OSError as exc:
            return False, (
                f"no AF_PPPOX/PX_PROTO_{proto.name} sockets ({exc.strerror}): "
                f"the kernel needs the {module} module"
            )
    try:
        os.close(os.open("/dev/ppp", os.O_RDWR))
    except OSError as exc:
        return False, f"/dev/ppp cannot be opened ({exc.strerror}): load ppp_generic"
    ok, why = family_available()
    if not ok:
        return False, why
    return True, "AF_PPPOX (PPPoE, PPPoL2TP), /dev/ppp and the l2tp netlink family are present"


@dataclass(slots=True)
class _Tunnel:
    tunnel_id: int
    peer_tunnel_id: int
    peer: tuple[str, int]
    sock: Any
    calls: set[int] = field(default_factory=set)
    reader: Any = None


@dataclass(slots=True)
class _Session:
    call_id: int
    interface: str
    mac: MacAddress
    pppoe_session_id: int
    tunnel_id: int
    session_id: int
    sequencing: bool
    l2tp_sock: Any = None
    pppoe_sock: Any = None
    ppp_fd: int = -1
    bridged: bool = False
    last: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTER_NAMES, 0))


class _TunnelReader:
    """A tunnel socket as a reactor read descriptor (duck-typed IReadDescriptor)."""

    def __init__(self, sock: Any, on_read: Callable[[Any], object], tunnel_id: int) -> None:
        self.sock = sock
        self._on_read = on_read
        self._tunnel_id = tunnel_id

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def doRead(self) -> None:  # Twisted's name
        self._on_read(self.sock)

    def connectionLost(self, reason: Any) -> None:  # Twisted's name
        return None

    def logPrefix(self) -> str:  # Twisted's name
        return f"kernel-l2tp-tunnel:{self._tunnel_id}"


class KernelSplice:
    """PPPoE <-> L2TP splices in the kernel; see the module docstring."""

    name = "kernel"

    def __init__(
        self,
        send_l2tp: SendL2tp,
        send_ethernet: SendEthernet,
        *,
        ops: KernelOps | None = None,
        netlink: L2tpControl | Callable[[], L2tpControl] | None = None,
        fallback: Any = True,
        log: Callable[[str], None] | None = None,
        local: tuple[str, int] | None = None,
    ) -> None:
        self.ops: KernelOps = ops if ops is not None else LinuxKernelOps()
        self._netlink_source = netlink if netlink is not None else PyrouteL2tp
        self._nl: L2tpControl | None = None
        if fallback is True:
            fallback = FastSplice(send_l2tp, send_ethernet)
        #: userspace splice for calls the kernel refuses (None: such calls get no data path)
        self.fallback: Any = None if fallback is None or fallback is False else fallback
        self.log = log
        self._local = local
        self._reactor: Any = None
        self._control: Callable[[bytes, tuple[str, int]], None] | None = None
        self._tunnels: dict[int, _Tunnel] = {}
        self._sessions: dict[int, _Session] = {}
        #: (interface, MAC, PPPoE session id) -> call id of the bridged sessions
        self._bridged: dict[tuple[str, bytes, int], int] = {}
        #: interface -> ETH_P_PPP_SES packet sockets that get the drop filter
        self._filter_socks: dict[str, list[Any]] = {}
        self.counters: dict[str, int] = {
            "kernel_sessions": 0,
            "kernel_tunnels": 0,
            "attach_errors": 0,
            "fallback_sessions": 0,
            "detach_errors": 0,
            "stats_errors": 0,
            "bridged_frames_seen": 0,
            "tunnel_datagrams": 0,
            "tunnel_read_errors": 0,
            "callback_errors": 0,
            "filter_errors": 0,
            "unknown_downstream": 0,
            "session_id_collisions": 0,
            "already_unbridged": 0,
        }

    # -- table ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sessions) + (len(self.fallback) if self.fallback is not None else 0)

    @property
    def kernel_calls(self) -> list[int]:
        """Call ids bridged in the kernel."""
        return list(self._sessions)

    def attach(
        self,
        *,
        call_id: int,
        interface: str,
        mac: MacAddress,
        pppoe_session_id: int,
        tunnel_id: int,
        session_id: int,
        peer_tunnel_id: int,
        peer_session_id: int,
        peer: tuple[str, int],
        sequencing: bool,
    ) -> None:
        self.detach(call_id)
        peer = (str(peer[0]), int(peer[1]))
        try:
            self._attach_kernel(
                call_id, interface, mac, pppoe_session_id, tunnel_id, session_id,
                peer_tunnel_id, peer_session_id, peer, sequencing,
            )  # fmt: skip
        except OSError as exc:
            self.counters["attach_errors"] += 1
            self._say(
                f"kernel splice refused for call {call_id} mac={format_mac(mac)} "
                f"tunnel={tunnel_id} session={session_id}: {exc}"
                + ("; spliced in userspace" if self.fallback is not None else "")
            )
            if self.fallback is None:
                raise
            self.counters["fallback_sessions"] += 1
            if any(
                k.session_id == session_id and self._tunnels[k.tunnel_id].peer == peer
                for k in self._sessions.values()
            ):  # its data may reach the kernel session with that id (see _attach_kernel)
                self.counters["session_id_collisions"] += 1
                self._say(f"session id {session_id} to {peer[0]} is also a kernel session's")
            self.fallback.attach(
                call_id=call_id, interface=interface, mac=mac,
                pppoe_session_id=pppoe_session_id, tunnel_id=tunnel_id, session_id=session_id,
                peer_tunnel_id=peer_tunnel_id, peer_session_id=peer_session_id, peer=peer,
                sequencing=sequencing,
            )  # fmt: skip

    def _attach_kernel(
        self, call_id: int, interface: str, mac: MacAddress, pppoe_session_id: int,
        tunnel_id: int, session_id: int, peer_tunnel_id: int, peer_session_id: int,
        peer: tuple[str, int], sequencing: bool,
    ) -> None:  # fmt: skip
        nl = self._netlink()
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is None:
            for other in self._tunnels.values():
                if other.peer == peer:
                    # Linux before 6.10 looks data up by session id in the tunnel of the
                    # socket the 4-tuple selects: one kernel tunnel per LNS endpoint.
                    raise OSError(
                        errno.EADDRINUSE,
                        f"LNS {peer[0]}:{peer[1]} already has kernel tunnel {other.tunnel_id}",
                    )
            tunnel = self._open_tunnel(nl, tunnel_id, peer_tunnel_id, peer)
        s = _Session(
            call_id=call_id, interface=interface, mac=mac, pppoe_session_id=pppoe_session_id,
            tunnel_id=tunnel_id, session_id=session_id, sequencing=sequencing,
        )  # fmt: skip
        ops = self.ops
        created = False
        try:
            nl.create_session(tunnel_id, session_id, peer_session_id, sequencing)
            created = True
            s.l2tp_sock = ops.pppol2tp_socket(
                tunnel.sock.fileno(), peer, tunnel_id, session_id, peer_tunnel_id,
                peer_session_id, sequencing,
            )  # fmt: skip
            s.pppoe_sock = ops.pppoe_socket(interface, bytes(mac), pppoe_session_id)
            chan_l2tp = ops.channel(s.l2tp_sock)
            chan_pppoe = ops.channel(s.pppoe_sock)
            s.ppp_fd = ops.open_ppp()
            ops.attach_channel(s.ppp_fd, chan_pppoe)
            ops.bridge(s.ppp_fd, chan_l2tp)
            s.bridged = True
        except OSError:
            self._release(s, nl if created else None)
            if not tunnel.calls:
                self._close_tunnel(tunnel)
            raise
        tunnel.calls.add(call_id)
        self._sessions[call_id] = s
        self._bridged[(interface, bytes(mac), pppoe_session_id)] = call_id
        self.counters["kernel_sessions"] += 1
        self._refilter(interface)

    def detach(self, call_id: int) -> dict[str, int]:
        s = self._sessions.pop(call_id, None)
        if s is None:
            return self.fallback.detach(call_id) if self.fallback is not None else {}
        counters = self._read(s)
        self._bridged.pop((s.interface, bytes(s.mac), s.pppoe_session_id), None)
        self._release(s, self._nl)
        tunnel = self._tunnels.get(s.tunnel_id)
        if tunnel is not None:
            tunnel.calls.discard(call_id)
            if not tunnel.calls:
                self._close_tunnel(tunnel)
        self._refilter(s.interface)
        return counters

    def counters_for(self, call_id: int) -> dict[str, int] | None:
        s = self._sessions.get(call_id)
        if s is None:
            return self.fallback.counters_for(call_id) if self.fallback is not None else None
        return self._read(s)

    def owns(self, interface: str, mac: bytes, pppoe_session_id: int) -> bool:
        if (interface, bytes(mac), pppoe_session_id) in self._bridged:
            return True
        return self.fallback is not None and bool(
            self.fallback.owns(interface, mac, pppoe_session_id)
        )

    # -- frames the sockets still see ------------------------------------------------------------
    def upstream(self, interface: str, mac: bytes, pppoe_session_id: int, ppp: bytes) -> bool:
        """A session frame from the raw socket: bridged sessions' copies are dropped (True)."""
        if (interface, bytes(mac), pppoe_session_id) in self._bridged:
            self.counters["bridged_frames_seen"] += 1
            return True
        if self.fallback is not None:
            return bool(self.fallback.upstream(interface, mac, pppoe_session_id, ppp))
        return False

    def downstream(self, data: bytes, peer: tuple[str, int] | None = None) -> bool:
        """An L2TP data message the kernel did not take: userspace splices only (which drop
        it unless it comes from the session's LNS)."""
        if self.fallback is not None:
            return bool(self.fallback.downstream(data, peer))
        self.counters["unknown_downstream"] += 1
        return False

    # -- kernel objects --------------------------------------------------------------------------
    def _netlink(self) -> L2tpControl:
        if self._nl is None:
            source = self._netlink_source
            self._nl = source() if callable(source) else source
        return self._nl

    def _open_tunnel(
        self, nl: L2tpControl, tunnel_id: int, peer_tunnel_id: int, peer: tuple[str, int]
    ) -> _Tunnel:
        if self._local is None:
            raise OSError(errno.ENOTCONN, "no L2TP socket installed (local address unknown)")
        sock = self.ops.tunnel_socket(self._local, peer)
        try:
            nl.create_tunnel(tunnel_id, peer_tunnel_id, sock.fileno(), self._local, peer)
        except OSError:
            sock.close()
            raise
        tunnel = _Tunnel(tunnel_id, peer_tunnel_id, peer, sock)
        if self._reactor is not None:
            tunnel.reader = _TunnelReader(sock, self._read_tunnel, tunnel_id)
            self._reactor.addReader(tunnel.reader)
        self._tunnels[tunnel_id] = tunnel
        self.counters["kernel_tunnels"] += 1
        return tunnel

    def _close_tunnel(self, tunnel: _Tunnel) -> None:
        self._tunnels.pop(tunnel.tunnel_id, None)
        if tunnel.reader is not None and self._reactor is not None:
            self._reactor.removeReader(tunnel.reader)
            tunnel.reader = None
        if self._nl is not None:
            try:
                self._nl.delete_tunnel(tunnel.tunnel_id)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.counters["detach_errors"] += 1
        # control messages that raced the teardown still belong to the adapter
        self._read_tunnel(tunnel.sock, budget=1 << 16)
        with contextlib.suppress(OSError):
            tunnel.sock.close()

    def _release(self, s: _Session, nl: L2tpControl | None) -> None:
        ops = self.ops
        if s.bridged:
            try:
                ops.unbridge(s.ppp_fd)
            except OSError as exc:
                # EINVAL: not bridged any more (a PADT the kernel saw unregistered the channel)
                self.counters[
                    "already_unbridged" if exc.errno == errno.EINVAL else "detach_errors"
                ] += 1
            s.bridged = False
        if s.ppp_fd >= 0:
            with contextlib.suppress(OSError):
                ops.close_fd(s.ppp_fd)
            s.ppp_fd = -1
        for sock in (s.pppoe_sock, s.l2tp_sock):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        s.pppoe_sock = s.l2tp_sock = None
        if nl is not None:
            try:  # closing the PPPoL2TP socket usually deleted it already
                nl.delete_session(s.tunnel_id, s.session_id)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    self.counters["detach_errors"] += 1

    def _read(self, s: _Session) -> dict[str, int]:
        """The session's counters from the kernel (PPP octets: L2TP overhead removed)."""
        if s.l2tp_sock is None:
            return dict(s.last)
        try:
            st = self.ops.l2tp_stats(s.l2tp_sock)
        except OSError:
            self.counters["stats_errors"] += 1
            return dict(s.last)
        tx_over = L2TP_OVERHEAD + (SEQ_OVERHEAD if s.sequencing else 0)
        s.last = {
            "input_octets": max(0, st.tx_bytes - st.tx_packets * tx_over),
            "input_packets": st.tx_packets,
            "output_octets": max(0, st.rx_bytes - st.rx_packets * L2TP_OVERHEAD),
            "output_packets": st.rx_packets,
        }
        return dict(s.last)

    # -- control messages on the tunnel sockets --------------------------------------------------
    def _read_tunnel(self, sock: Any, budget: int = _TUNNEL_BUDGET) -> int:
        read = 0
        while read < budget:
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    break
                self.counters["tunnel_read_errors"] += 1  # ICMP errors: keep reading
                read += 1
                continue
            read += 1
            self.counters["tunnel_datagrams"] += 1
            if self._control is None:
                continue
            try:
                self._control(data, (str(addr[0]), int(addr[1])))
            except Exception:  # the adapter's bug must not stop the data plane
                self.counters["callback_errors"] += 1
        return read

    # -- BPF drop filter on the raw session sockets ----------------------------------------------
    def _refilter(self, interface: str) -> None:
        socks = self._filter_socks.get(interface)
        if not socks:
            return
        sids = [sid for (ifname, _, sid) in self._bridged if ifname == interface]
        for sock in socks:
            try:
                if not sids or len(sids) > MAX_FILTERED_SESSIONS:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
                else:
                    attach_filter(sock, session_drop_filter(sids))
            except OSError:
                self.counters["filter_errors"] += 1

    # -- wiring ----------------------------------------------------------------------------------
    def install(self, raw_port: Any, l2tp_adapter: Any, *, ring: bool = True) -> None:
        """Hook into the started adapters: the L2TP socket's address (shared by the tunnel
        sockets, SO_REUSEADDR), control messages of tunnel sockets to the adapter, the drop
        filter on the raw session sockets, and the userspace fallback's own loops."""
        if l2tp_adapter is not None and getattr(l2tp_adapter, "listening", None) is not None:
            usock = l2tp_adapter.listening.socket
            usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            host, port = usock.getsockname()[:2]
            self._local = (str(host), int(port))
            self._reactor = getattr(l2tp_adapter, "reactor", None)

            def control(data: bytes, addr: tuple[str, int]) -> None:
                l2tp_adapter.datagramReceived(data, addr)

            self._control = control
        if raw_port is not None:
            for (ifname, ethertype), reader in list(raw_port._readers.items()):
                if ethertype == ETH_P_PPP_SES:
                    self._filter_socks.setdefault(ifname, []).append(reader.sock)
        if self.fallback is not None:
            options: dict[str, Any] = {"ring": ring}
            if "l2tp_ring" in inspect.signature(self.fallback.install).parameters:
                # FastSplice's AF_PACKET ring on the L2TP port would copy every data message
                # the kernel takes into Python: the fallback reads its own from the UDP socket
                options["l2tp_ring"] = False
            self.fallback.install(raw_port, l2tp_adapter, **options)

    def uninstall(self) -> None:
        """Tear down what is left in the kernel, give the adapters back, drop the filters."""
        for call_id in list(self._sessions):
            self.detach(call_id)
        for tunnel in list(self._tunnels.values()):
            self._close_tunnel(tunnel)
        for socks in self._filter_socks.values():
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        self._filter_socks.clear()
        if self.fallback is not None:
            self.fallback.uninstall()
        self._control = None
        self._reactor = None
        if self._nl is not None:
            self._nl.close()
            self._nl = None

    def _say(self, message: str) -> None:
        if self.log is not None:
            with contextlib.suppress(Exception):
                self.log(message)
