"""LNS emulator on real loopback UDP sockets against the project's LAC endpoint."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.selectreactor import SelectReactor

from broker.adapters.l2tp_udp import L2tpUdpAdapter, Peer
from broker.adapters.lns_emulator import LnsEmulatorService
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.data import encode_data_header, split_data
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import SessionEstablished
from broker.ppp.codec import encode_control, split_frame
from broker.ppp.constants import LcpCode, PppProtocol
from broker.ppp.lcp import RestartConfig, Signal
from broker.sim.lns import LnsConfig, LnsEmulator, LnsIpcpUp
from broker.sim.ppp_client import IpcpAutomaton
from broker.sim.subscriber import build_icmp_echo, parse_icmp_echo

SECRET = b"emulator-secret"
PROXY = CallParams(
    last_sent_confreq=b"\x01\x04\x05\xd4\x03\x05\xc2\x23\x05",
    last_received_confreq=b"\x01\x04\x05\xd4",
    authen_type=2,
    authen_name="user@isp.example",
)


def test_call_ipcp_ping_and_die_over_udp() -> None:
    reactor: Any = SelectReactor()
    engine = LnsEmulator(
        LnsConfig(
            tunnel=TunnelConfig(host_name="sim-lns", secret=SECRET, hide_avps=True),
            pool="203.0.113.0/24",
        ),
        rand_bytes=random.Random(1).randbytes,
    )
    lns_events: list[object] = []
    service = LnsEmulatorService(engine, reactor, "127.0.0.1", 0, on_event=lns_events.append)
    lac_ep = L2tpEndpoint()
    lac_events: list[object] = []
    lac_data: list[bytes] = []
    lac: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        lac_ep, reactor, "127.0.0.1", 0, lac_events.append, lambda d, p: lac_data.append(d)
    )
    service.start()
    lac.start()

    def run_until(predicate: Any, timeout: float = 5.0) -> None:
        deadline = reactor.seconds() + timeout
        while not predicate() and reactor.seconds() < deadline:
            reactor.iterate(0.01)
        assert predicate(), (lac_events, lns_events)

    try:
        lns_peer: Peer = ("127.0.0.1", service.port)
        tid = lac.call(lac_ep.open_tunnel, lns_peer, TunnelConfig(host_name="lac", secret=SECRET))
        lac.call(lac_ep.open_session, tid, PROXY)
        run_until(lambda: any(isinstance(e, SessionEstablished) for e in lac_events))
        est = next(e for e in lac_events if isinstance(e, SessionEstablished))

        def send(frame: bytes) -> None:
            header = encode_data_header(est.peer_tunnel_id, est.peer_session_id)
            lac.send_data(header + b"\xff\x03" + frame, lns_peer)

        def frames() -> list[bytes]:
            out = []
            for d in lac_data:
                header, payload = split_data(d)
                assert header.session_id == est.session_id and payload[:2] == b"\xff\x03"
                out.append(payload[2:])
            lac_data.clear()
            return out

        client = IpcpAutomaton(RestartConfig(), rand_bytes=random.Random(2).randbytes)
        client.up(0.0)
        client.open(0.0)
        for _ in range(10):
            for f in client.frames_to_send():
                send(f)
            reactor.iterate(0.05)
            got = frames()
            for f in got:
                proto, info = split_frame(f)
                if proto == PppProtocol.IPCP:
                    client.receive(info, reactor.seconds())
            if Signal.UP in client.signals and not got:
                break
        assert Signal.UP in client.signals
        assert client.address == bytes([203, 0, 113, 2])
        run_until(lambda: any(isinstance(e, LnsIpcpUp) for e in lns_events))

        send(b"\x00\x21" + build_icmp_echo(client.address, client.peer_address, 5, 1, b"hi"))
        run_until(lambda: bool(lac_data))
        (reply,) = frames()
        echo = parse_icmp_echo(reply[2:])
        assert echo is not None and echo.reply and echo.payload == b"hi"

        service.die()
        send(encode_control(PppProtocol.LCP, LcpCode.ECHO_REQUEST, 1, bytes(4)))
        for _ in range(20):
            reactor.iterate(0.01)
        assert lac_data == []
        assert engine.status()["dead"] is True
        assert service.adapter.counters["engine_errors"] == 0
        assert service.adapter.counters["callback_errors"] == 0
    finally:
        lac.stop()
        service.stop()
        for _ in range(5):
            reactor.iterate(0)
