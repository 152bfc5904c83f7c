"""Against a real FreeRADIUS (Debian 3.2) on loopback, through the Twisted UDP adapter:
PAP and CHAP accept/reject, RFC 2868 tunnel candidates as ops/radius/users says, failover
between two servers when one is stopped, revival detected by Status-Server."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.selectreactor import SelectReactor

from broker.adapters.radius_udp import AuthResult, RadiusUdpAdapter
from broker.radius import packet as p
from broker.radius.client import (
    AccessAccepted,
    AccessRejected,
    AuthRequest,
    ChapCredentials,
    Event,
    RadiusClient,
    RadiusServer,
    ServerDead,
    ServerRevived,
)
from broker.radius.constants import Code, TunnelMediumType, TunnelType
from broker.radius.tunnel import SkippedTunnel, TunnelCandidate
from ops.lab.freeradius import FreeRadius, LabClient, free_udp_ports
from ops.lab.netns import Netns, poll, veth
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

SECRET = "lab-secret-1"
ALICE_TUNNELS = (
    TunnelCandidate(
        tag=1,
        tunnel_type=TunnelType.L2TP,
        medium_type=TunnelMediumType.IPV4,
        server_endpoint="198.51.100.10",
        client_endpoint="192.0.2.1",
        password=b"lns-a-secret",
        preference=10,
        assignment_id=b"lns-a",
        client_auth_id=b"lac1",
        server_auth_id=b"lns-a.example",
    ),
    TunnelCandidate(
        tag=2,
        tunnel_type=TunnelType.L2TP,
        medium_type=TunnelMediumType.IPV4,
        server_endpoint="198.51.100.11",
        password=b"lns-b-secret",
        preference=10,
        assignment_id=b"lns-b",
        client_auth_id=b"lac1",
    ),
    TunnelCandidate(
        tag=3,
        tunnel_type=TunnelType.L2TP,
        medium_type=TunnelMediumType.IPV6,
        server_endpoint="2001:db8::12",
        password=b"a-rather-longer-tunnel-password-for-lns-c",
        preference=20,
        private_group_id=b"retail-c",
    ),
)


def start_radius(directory: Path) -> FreeRadius:
    """A FreeRADIUS on two fresh loopback ports (new ports if another process took them)."""
    for attempt in range(3):
        auth_port, acct_port = free_udp_ports(2)
        radius = FreeRadius(
            directory,
            auth_port=auth_port,
            acct_port=acct_port,
            clients=[LabClient("loopback", "127.0.0.1", SECRET)],
        )
        try:
            radius.start()
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        return radius
    raise AssertionError("unreachable")


@pytest.fixture
def radius(tmp_path: Path) -> Iterator[FreeRadius]:
    require_binary("freeradius")
    server = start_radius(tmp_path / "radius")
    try:
        yield server
    finally:
        server.stop()


class Harness:
    def __init__(self, servers: list[RadiusServer]) -> None:
        self.reactor = SelectReactor()
        self.events: list[Event] = []
        self.adapter = RadiusUdpAdapter(
            RadiusClient(servers, sockets=4, nas_identifier="lac-test"),
            self.reactor,
            "127.0.0.1",
            self.events.append,
        )
        self.adapter.start()

    def run_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = self.reactor.seconds() + timeout
        while not done() and self.reactor.seconds() < deadline:
            self.reactor.iterate(0.01)
        assert done(), "timed out waiting for RADIUS"

    def auth(self, request: AuthRequest) -> AuthResult:
        box: list[Any] = []
        d: Deferred[AuthResult] = self.adapter.authenticate(request)
        d.addBoth(box.append)
        self.run_until(lambda: bool(box))
        result: AuthResult = box[0]
        return result

    def close(self) -> None:
        self.adapter.stop()
        for _ in range(5):
            self.reactor.iterate(0)


def server_config(radius: FreeRadius, name: str = "r1", **kw: Any) -> RadiusServer:
    return RadiusServer(name, "127.0.0.1", radius.auth_port, SECRET.encode(), **kw)


def pap(user: str, password: bytes) -> AuthRequest:
    return AuthRequest(
        user,
        pap_password=password,
        nas_ip="192.0.2.1",
        nas_identifier="lac-test",
        nas_port_id="eth1.100",
        calling_station_id="02:00:00:00:00:01",
    )


def chap(user: str, password: bytes, ident: int = 42) -> AuthRequest:
    challenge = bytes(range(16))
    response = hashlib.md5(bytes([ident]) + password + challenge).digest()
    return AuthRequest(user, chap=ChapCredentials(ident, challenge, response), nas_port_type=16)


def test_pap_and_chap_accept_with_three_tagged_tunnels(radius: FreeRadius) -> None:
    h = Harness([server_config(radius)])
    try:
        for request in (
            pap("alice@wholesale.example", b"wonderland"),
            chap("alice@wholesale.example", b"wonderland"),
        ):
            res = h.auth(request)
            assert isinstance(res, AccessAccepted), res
            assert res.tunnels == ALICE_TUNNELS
            assert res.skipped == ()
            assert res.reply_message == "welcome alice"
            assert res.session_timeout == 86400
            assert res.class_attr == b"billing-1"
        assert h.adapter.engine.counters["forged_replies"] == 0
    finally:
        h.close()


def test_untagged_tunnel_and_unusable_tunnel_type(radius: FreeRadius) -> None:
    h = Harness([server_config(radius)])
    try:
        bob = h.auth(pap("bob@retail.example", b"builder"))
        assert isinstance(bob, AccessAccepted)
        assert bob.tunnels == (
            TunnelCandidate(
                0, TunnelType.L2TP, TunnelMediumType.IPV4, "203.0.113.20", password=b"bobs-lns"
            ),
        )
        carol = h.auth(pap("carol@pptp.example", b"pptp"))
        assert isinstance(carol, AccessAccepted)
        assert carol.tunnels == ()
        assert carol.skipped == (SkippedTunnel(1, "Tunnel-Type 1 is not L2TP"),)
    finally:
        h.close()


def test_pap_and_chap_rejects(radius: FreeRadius) -> None:
    h = Harness([server_config(radius)])
    try:
        for request in (
            pap("alice@wholesale.example", b"wrong"),
            chap("alice@wholesale.example", b"wrong"),
            pap("nobody@nowhere.example", b"x"),
        ):
            res = h.auth(request)
            assert isinstance(res, AccessRejected), res
            assert res.server == "r1"
        mallory = h.auth(pap("mallory@wholesale.example", b"anything"))
        assert isinstance(mallory, AccessRejected)
        assert mallory.reply_message == "account disabled"
    finally:
        h.close()


def test_failover_when_one_server_stops_and_status_server_revival(tmp_path: Path) -> None:
    require_binary("freeradius")
    first = start_radius(tmp_path / "r1")
    second = start_radius(tmp_path / "r2")
    h = Harness(
        [
            server_config(first, "r1", timeout=(1.0, 1.0), dead_time=60.0, probe_interval=0.2),
            server_config(second, "r2", timeout=(2.0, 2.0), dead_time=60.0),
        ]
    )
    try:
        assert isinstance(h.auth(pap("bob@retail.example", b"builder")), AccessAccepted)
        first.stop()
        res = h.auth(pap("bob@retail.example", b"builder"))
        assert isinstance(res, AccessAccepted) and res.server == "r2"
        assert ServerDead("r1") in h.events
        # While r1 is dead new requests go straight to r2.
        res = h.auth(pap("alice@wholesale.example", b"wonderland"))
        assert isinstance(res, AccessAccepted) and res.server == "r2"
        first.start()
        h.run_until(lambda: ServerRevived("r1", "status-server") in h.events)
        res = h.auth(pap("bob@retail.example", b"builder"))
        assert isinstance(res, AccessAccepted) and res.server == "r1"
        assert h.adapter.engine.counters["forged_replies"] == 0
    finally:
        h.close()
        first.stop()
        second.stop()


def test_accounting_request_is_answered_and_logged_in_detail_file(radius: FreeRadius) -> None:
    secret = SECRET.encode()
    request = p.encode_request(
        Code.ACCOUNTING_REQUEST,
        7,
        [
            p.attribute("Acct-Status-Type", "Start"),
            p.attribute("Acct-Session-Id", "lab-0001"),
            p.attribute("User-Name", "alice@wholesale.example"),
            p.attribute("NAS-IP-Address", "192.0.2.1"),
        ],
        secret,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5.0)
        s.sendto(request, ("127.0.0.1", radius.acct_port))
        reply = s.recv(4096)
    assert p.verify_response(reply, request[4:20], secret, require_message_authenticator=False)
    assert p.decode_packet(reply).code == Code.ACCOUNTING_RESPONSE
    records = poll(radius.records, timeout=5.0)
    assert [(r["Acct-Status-Type"], r["Acct-Session-Id"]) for r in records] == [
        ("Start", "lab-0001")
    ]


def test_server_inside_a_namespace(tmp_path: Path) -> None:
    require_root()
    radclient = require_binary("radclient")
    require_binary("freeradius")
    with Netns("rsrv") as srv, Netns("rcli") as cli:
        veth(srv, cli, "192.0.2.1/24", "192.0.2.2/24", prefix="r")
        radius = FreeRadius(
            tmp_path / "ns-radius",
            auth_port=18120,
            acct_port=18130,
            clients=[LabClient("peer", "192.0.2.2", SECRET)],
            address="192.0.2.1",
            netns=srv.name,
        )
        radius.start()
        try:
            request = tmp_path / "req.txt"
            request.write_text(
                'User-Name = "bob@retail.example", User-Password = "builder", '
                "Message-Authenticator = 0x00\n"
            )
            out = cli.run(
                [
                    radclient,
                    "-x",
                    "-r",
                    "3",
                    "-t",
                    "2",
                    "-f",
                    str(request),
                    "192.0.2.1:18120",
                    "auth",
                    SECRET,
                ]
            )
            assert "Received Access-Accept" in out.stdout
            assert 'Tunnel-Server-Endpoint:0 = "203.0.113.20"' in out.stdout or (
                'Tunnel-Server-Endpoint = "203.0.113.20"' in out.stdout
            )
        finally:
            radius.stop()
