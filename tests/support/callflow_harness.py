"""An in-memory world around the pure call flow: CPEs, a RADIUS server, LNSs, the state store
and the userspace splice, all driven synchronously by a fake clock.

CPE side: PPPoE discovery written with the codec + :class:`broker.sim.ppp_client.PppClient`.
RADIUS: answers Access-Requests from a users table with RFC 2868 tunnel groups (signed replies).
LNS: our :class:`L2tpEndpoint` in the LNS role (optionally refusing calls or never answering).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.callflow.commands import (
    AccountStart,
    AccountStop,
    AccountTunnel,
    AttachSplice,
    CallEnded,
    CallUp,
    DetachSplice,
    LockOut,
    ProbeResult,
    QueryLoad,
    Release,
    Reserve,
    SendEthernet,
    SendL2tp,
    SendRadius,
)
from broker.callflow.orchestrator import CallFlow, CallFlowConfig
from broker.callflow.wiring import CallFlowEngines
from broker.dataplane.fastpath import FastSplice
from broker.l2tp.config import TunnelConfig
from broker.l2tp.endpoint import L2tpEndpoint
from broker.policy.loader import load_policies
from broker.ppp.link import LinkConfig
from broker.pppoe.codec import (
    DiscoveryPacket,
    Tag,
    decode_discovery,
    decode_session_frame,
    encode_discovery,
    encode_session_frame,
)
from broker.pppoe.constants import Code, TagType
from broker.pppoe.discovery import DiscoveryConfig, DiscoveryServer
from broker.radius import packet as rp
from broker.radius.client import RadiusClient, RadiusServer
from broker.radius.constants import Attr
from broker.radius.tunnel import TunnelCandidate, encode_tunnel_attributes
from broker.sim.ppp_client import ClientAuthenticated, ClientAuthFailed, PppClient
from broker.state.base import Caps
from broker.state.memory import MemoryStateCore
from broker.wire import MacAddress

AC_MAC = MacAddress(bytes.fromhex("02aa00000001"))
RADIUS_ADDR = ("127.0.0.1", 1812)
RADIUS_SECRET = b"radsecret"
TUNNEL_SECRET = b"tunnelsecret"
IFACE = "acc0"


def lns_tunnel(tag: int, address: str, preference: int = 0) -> TunnelCandidate:
    return TunnelCandidate(
        tag=tag, tunnel_type=3, medium_type=1, server_endpoint=address,
        password=TUNNEL_SECRET, preference=preference, assignment_id=b"grp-" + address.encode(),
    )  # fmt: skip


POLICY_DEFAULTS = """\
policy:
  tunnel_source: radius
  strategy: weighted-random
  lockout_hold: 300
"""
POLICY_STATIC = """\
realm: static.example
match: {kind: exact, value: static.example}
tunnel_source: static
strip_realm: true
static_pool:
  - {name: lns-s, address: 203.0.113.30, secret_ref: tunnel}
"""


def write_policies(root: Path) -> Path:
    (root / "realms").mkdir(parents=True, exist_ok=True)
    (root / "defaults.yaml").write_text(POLICY_DEFAULTS)
    (root / "realms" / "static.example.yaml").write_text(POLICY_STATIC)
    return root


@dataclass
class Cpe:
    mac: MacAddress
    client: PppClient
    state: str = "padi"
    session_id: int = 0
    host_uniq: bytes = b""
    padt_received: bool = False
    events: list[Any] = field(default_factory=list)


class World:
    def __init__(
        self,
        policies_dir: Path,
        *,
        users: dict[str, tuple[str, list[TunnelCandidate] | None]],
        lns_addresses: tuple[str, ...] = ("198.51.100.2", "198.51.100.3", "203.0.113.30"),
        seed: int = 1,
        retransmit: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 8.0),
    ) -> None:
        self.now = 1000.0
        self.rng = random.Random(seed)
        rb = self.rng.randbytes
        self.users = users
        self.radius_down = False
        self.discovery = DiscoveryServer(
            DiscoveryConfig(ac_name="test-ac", cookie_secret=b"k" * 32), rand_bytes=rb
        )
        self.discovery.set_local_mac(IFACE, AC_MAC)
        radius = RadiusClient(
            [RadiusServer("r1", *RADIUS_ADDR, secret=RADIUS_SECRET, timeout=(1.0, 1.0))],
            sockets=2, rand_bytes=rb,
        )  # fmt: skip
        self.l2tp = L2tpEndpoint(rand_bytes=rb)
        engines = CallFlowEngines(
            discovery=self.discovery,
            radius=radius,
            l2tp=self.l2tp,
            link_config=LinkConfig(echo_interval=10.0, echo_failures=3),
            resolve_secret=lambda ref: TUNNEL_SECRET,
            rand_bytes=rb,
        )
        self.flow = CallFlow(
            CallFlowConfig(retransmit=retransmit), engines, load_policies(policies_dir),
            rng=self.rng, rand_bytes=rb,
        )  # fmt: skip
        self.store = MemoryStateCore("node-1", clock=lambda: self.now)
        self.lns: dict[tuple[str, int], L2tpEndpoint] = {}
        self.lns_silent: set[str] = set()
        self.lns_data: dict[str, list[bytes]] = {}
        for addr in lns_addresses:
            self.lns[(addr, 1701)] = L2tpEndpoint(
                rand_bytes=rb, lns_config=TunnelConfig(host_name="lns", secret=TUNNEL_SECRET)
            )
            self.lns_data[addr] = []
        self.splice = FastSplice(self._splice_to_lns, self._to_cpe_eth)  # the runtime's splice
        self.cpes: dict[bytes, Cpe] = {}
        self.log: list[Any] = []
        self.reservations_open: set[str] = set()

    # -- subscribers -----------------------------------------------------------------------
    def add_cpe(self, username: str, password: str, auth: tuple[str, ...] = ("chap",)) -> Cpe:
        mac = MacAddress(bytes([2, 0]) + self.rng.randbytes(4))
        cpe = Cpe(mac, PppClient(username, password, auth, rand_bytes=self.rng.randbytes))
        cpe.host_uniq = self.rng.randbytes(4)
        self.cpes[mac] = cpe
        padi = DiscoveryPacket(
            Code.PADI, 0, (Tag(TagType.SERVICE_NAME, b""), Tag(TagType.HOST_UNIQ, cpe.host_uniq))
        )
        self.flow.receive_discovery(
            IFACE, mac, MacAddress(b"\xff" * 6), encode_discovery(padi), self.now
        )
        self.pump()
        return cpe

    def cpe_send(self, cpe: Cpe, ppp: bytes) -> None:
        if self.splice.owns(IFACE, cpe.mac, cpe.session_id):
            self.splice.upstream(IFACE, cpe.mac, cpe.session_id, ppp)
        else:
            self.flow.receive_session_frame(IFACE, cpe.mac, cpe.session_id, ppp, self.now)

    def cpe_padt(self, cpe: Cpe) -> None:
        padt = DiscoveryPacket(Code.PADT, cpe.session_id, ())
        self.flow.receive_discovery(IFACE, cpe.mac, AC_MAC, encode_discovery(padt), self.now)
        cpe.state = "gone"
        self.pump()

    def _to_cpe_eth(self, iface: str, dst: MacAddress, ethertype: int, payload: bytes) -> None:
        cpe = self.cpes.get(dst)
        if cpe is None:
            return
        if ethertype == 0x8863:
            pkt = decode_discovery(payload)
            if pkt.code == Code.PADO and cpe.state == "padi":
                cookie = pkt.first(TagType.AC_COOKIE) or b""
                cpe.state = "padr"
                padr = DiscoveryPacket(Code.PADR, 0, (
                    Tag(TagType.SERVICE_NAME, b""), Tag(TagType.HOST_UNIQ, cpe.host_uniq),
                    Tag(TagType.AC_COOKIE, cookie)))  # fmt: skip
                self.flow.receive_discovery(
                    IFACE, cpe.mac, AC_MAC, encode_discovery(padr), self.now
                )
            elif pkt.code == Code.PADS and cpe.state == "padr":
                cpe.session_id = pkt.session_id
                cpe.state = "ppp"
                cpe.client.start(self.now)
            elif pkt.code == Code.PADT:
                cpe.padt_received = True
                cpe.state = "gone"
        elif ethertype == 0x8864 and cpe.state == "ppp":
            _sid, ppp = decode_session_frame(payload)
            cpe.client.receive_frame(ppp, self.now)

    def _splice_to_lns(self, data: bytes, peer: tuple[str, int]) -> None:
        self.lns_data[peer[0]].append(data)

    # -- the loop --------------------------------------------------------------------------
    def pump(self) -> None:
        for _ in range(1000):
            busy = False
            for cmd in self.flow.commands():
                busy = True
                self.execute(cmd)
            for cpe in self.cpes.values():
                for ppp in cpe.client.frames_to_send():
                    busy = True
                    if cpe.state == "ppp":
                        self.cpe_send(cpe, ppp)
                while (ev := cpe.client.next_event()) is not None:
                    cpe.events.append(ev)
            for peer, ep in self.lns.items():
                for data, to in ep.datagrams_to_send(self.now):
                    busy = True
                    if peer[0] not in self.lns_silent:
                        self.flow.receive_l2tp(data, peer, self.now)
                    del to
                while ep.next_event() is not None:
                    pass
            if not busy:
                return
        raise AssertionError("world did not settle")

    def execute(self, cmd: Any) -> None:
        self.log.append(cmd)
        if isinstance(cmd, SendEthernet):
            self._to_cpe_eth(cmd.interface, cmd.dst, cmd.ethertype, cmd.payload)
        elif isinstance(cmd, SendRadius):
            self._radius(cmd.datagram)
        elif isinstance(cmd, SendL2tp):
            if cmd.peer[0] in self.lns_silent:
                return
            ep = self.lns.get(cmd.peer)
            if ep is not None:
                ep.receive_datagram(cmd.payload, ("192.0.2.1", 1701), self.now)
        elif isinstance(cmd, QueryLoad):
            view = self.store.load_view(cmd.lns_ids, cmd.realm, cmd.tunnel_keys)
            self.flow.view_ready(cmd.call_id, view, self.now)
        elif isinstance(cmd, Reserve):
            res = self.store.reserve(
                cmd.lns_id,
                cmd.tunnel_key,
                cmd.realm,
                Caps(cmd.lns_max, cmd.tunnel_max, cmd.realm_max),
            )
            if res is not None:
                self.reservations_open.add(res.id)
            self.flow.reserved(cmd.call_id, res, self.now)
        elif isinstance(cmd, Release):
            assert cmd.reservation.id in self.reservations_open, "released twice"
            self.reservations_open.discard(cmd.reservation.id)
            self.store.release(cmd.reservation)
        elif isinstance(cmd, LockOut):
            self.store.lock_out(cmd.lns_id, cmd.hold)
        elif isinstance(cmd, ProbeResult):
            self.store.probe_result(cmd.lns_id, cmd.ok, cmd.hold)
        elif isinstance(cmd, AttachSplice):
            c = cmd.call
            assert c.tunnel_id and c.session_id and c.peer_tunnel_id and c.peer_session_id
            self.splice.attach(
                call_id=c.call_id, interface=c.interface, mac=c.mac,
                pppoe_session_id=c.pppoe_session_id, tunnel_id=c.tunnel_id,
                session_id=c.session_id, peer_tunnel_id=c.peer_tunnel_id,
                peer_session_id=c.peer_session_id, peer=cmd.peer, sequencing=cmd.sequencing,
            )  # fmt: skip
        elif isinstance(cmd, DetachSplice):
            self.flow.detached(cmd.call_id, self.splice.detach(cmd.call_id), self.now)
        elif not isinstance(cmd, AccountStart | AccountStop | AccountTunnel | CallEnded | CallUp):
            raise AssertionError(f"unexpected command {cmd!r}")

    def _radius(self, dgram: Any) -> None:
        if self.radius_down:
            return
        req = rp.decode_packet(dgram.payload)
        attrs = dict(req.attributes)
        if req.code == 12:  # Status-Server (RFC 5997): alive
            reply = rp.encode_response(2, req.identifier, [], RADIUS_SECRET, req.authenticator)
            self.flow.receive_radius(reply, dgram.addr, dgram.socket_index, self.now)
            return
        user = attrs[Attr.USER_NAME].decode()
        entry = self.users.get(user)
        if entry is None:
            code, out = 3, [(Attr.REPLY_MESSAGE, b"unknown user")]
        else:
            password, tunnels = entry
            ok = False
            if Attr.USER_PASSWORD in attrs:
                ok = (
                    rp.unhide_password(attrs[Attr.USER_PASSWORD], RADIUS_SECRET, req.authenticator)
                    == password.encode()
                )
            elif Attr.CHAP_PASSWORD in attrs:
                import hashlib

                chap = attrs[Attr.CHAP_PASSWORD]
                expect = hashlib.md5(chap[:1] + password.encode() + attrs[Attr.CHAP_CHALLENGE])
                ok = chap[1:] == expect.digest()
            if not ok:
                code, out = 3, [(Attr.REPLY_MESSAGE, b"bad password")]
            else:
                code, out = 2, []
                for t in tunnels or []:
                    out += encode_tunnel_attributes(
                        t, RADIUS_SECRET, req.authenticator, rand_bytes=self.rng.randbytes
                    )
                out.append((Attr.CLASS, b"bill-" + user.encode()))
        reply = rp.encode_response(code, req.identifier, out, RADIUS_SECRET, req.authenticator)
        self.flow.receive_radius(reply, dgram.addr, dgram.socket_index, self.now)

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for cpe in self.cpes.values():
                t = cpe.client.get_timer()
                if t is not None and t <= self.now:
                    cpe.client.handle_timer(self.now)
            for ep in self.lns.values():
                t = ep.get_timer()
                if t is not None and t <= self.now:
                    ep.handle_timer(self.now)
            t = self.flow.get_timer()
            if t is not None and t <= self.now:
                self.flow.handle_timer(self.now)
            self.pump()

    def commands_of(self, kind: type) -> list[Any]:
        return [c for c in self.log if isinstance(c, kind)]

    @staticmethod
    def authenticated(cpe: Cpe) -> bool:
        return any(isinstance(e, ClientAuthenticated) for e in cpe.events)

    @staticmethod
    def auth_failed(cpe: Cpe) -> str | None:
        for e in cpe.events:
            if isinstance(e, ClientAuthFailed):
                return str(e.message)
        return None


def session_frame(session_id: int, ppp: bytes) -> bytes:
    return encode_session_frame(session_id, ppp)
