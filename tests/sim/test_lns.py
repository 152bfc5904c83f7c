"""LNS emulator engine against the project's own LAC-role L2TP endpoint, in memory."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.data import encode_data_header, split_data
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import SessionClosed, SessionEstablished, TunnelEstablished
from broker.ppp.codec import decode_control, encode_control, split_frame
from broker.ppp.constants import LcpCode, PppProtocol
from broker.ppp.lcp import RestartConfig, Signal
from broker.sim.lns import LnsConfig, LnsEmulator, LnsIpcpUp
from broker.sim.ppp_client import ClientIpcpUp, IpcpAutomaton, PppClient
from broker.sim.subscriber import build_icmp_echo, parse_icmp_echo

LAC = ("192.0.2.1", 1701)
LNS = ("192.0.2.2", 1701)
SECRET = b"tunnel-secret"
PROXY = CallParams(
    initial_received_confreq=b"\x01\x04\x05\xd4",
    last_sent_confreq=b"\x01\x04\x05\xd4\x03\x05\xc2\x23\x05",
    last_received_confreq=b"\x01\x04\x05\xd4",
    authen_type=2,
    authen_name="user@isp.example",
)


class Rig:
    """A LAC endpoint and the emulator; PPP on the LAC side is a callable sink."""

    def __init__(self, config: LnsConfig | None = None, seed: int = 1) -> None:
        r = random.Random(seed)
        self.lac = L2tpEndpoint(rand_bytes=r.randbytes)
        self.lns = LnsEmulator(
            config or LnsConfig(tunnel=TunnelConfig(host_name="lns", secret=SECRET)),
            rand_bytes=r.randbytes,
        )
        self.now = 0.0
        self.lac_events: list[object] = []
        self.ppp_in: dict[int, list[bytes]] = {}  # LAC session id -> PPP frames from the LNS
        self.sessions: dict[int, SessionEstablished] = {}

    def pump(self) -> None:
        for _ in range(200):
            moved = False
            for data, peer in self.lac.datagrams_to_send(self.now):
                moved = True
                assert peer == LNS
                if data[0] & 0x80:
                    self.lns.receive_datagram(data, LAC, self.now)
                else:
                    self.lns.receive_data(data, LAC, self.now)
            for data, peer in self.lns.datagrams_to_send(self.now):
                moved = True
                assert peer == LAC
                if data[0] & 0x80:
                    self.lac.receive_datagram(data, LNS, self.now)
                else:
                    header, payload = split_data(data)
                    assert payload[:2] == b"\xff\x03"
                    self.ppp_in.setdefault(header.session_id, []).append(payload[2:])
            while (ev := self.lac.next_event()) is not None:
                self.lac_events.append(ev)
                if isinstance(ev, SessionEstablished):
                    self.sessions[ev.session_id] = ev
            if not moved:
                return

    def advance(self, until: float) -> None:
        while True:
            timers = [t for t in (self.lac.get_timer(), self.lns.get_timer()) if t is not None]
            nxt = min(timers, default=None)
            if nxt is None or nxt > until:
                self.now = until
                return
            self.now = max(self.now, nxt)
            self.lac.handle_timer(self.now)
            self.lns.handle_timer(self.now)
            self.pump()

    def call(self, params: CallParams = PROXY) -> int:
        tid = next(iter(self.lac.tunnels), None)
        if tid is None:
            tid = self.lac.open_tunnel(LNS, TunnelConfig(host_name="lac", secret=SECRET), self.now)
        sid = self.lac.open_session(tid, params, self.now)
        self.pump()
        return sid

    def send_ppp(self, sid: int, frame: bytes) -> None:
        est = self.sessions[sid]
        header = encode_data_header(est.peer_tunnel_id, est.peer_session_id)
        self.lns.receive_data(header + b"\xff\x03" + frame, LAC, self.now)
        self.pump()

    def lns_events(self) -> list[object]:
        out = []
        while (ev := self.lns.next_event()) is not None:
            out.append(ev)
        return out


def ipcp_client(rig: Rig, sid: int) -> IpcpAutomaton:
    client = IpcpAutomaton(RestartConfig(), rand_bytes=random.Random(5).randbytes)
    client.up(rig.now)
    client.open(rig.now)
    for _ in range(20):
        for frame in client.frames_to_send():
            rig.send_ppp(sid, frame)
        frames, rig.ppp_in[sid] = rig.ppp_in.get(sid, []), []
        if not frames:
            break
        for frame in frames:
            proto, info = split_frame(frame)
            if proto == PppProtocol.IPCP:
                client.receive(info, rig.now)
    return client


def test_proxy_lcp_call_gets_an_address_and_answers_ping_echo_terminate() -> None:
    rig = Rig()
    sid = rig.call()
    assert sid in rig.sessions
    # the LNS opens IPCP at once (it took the proxy LCP)
    first = rig.ppp_in[sid][0]
    assert split_frame(first)[0] == PppProtocol.IPCP
    client = ipcp_client(rig, sid)
    assert Signal.UP in client.signals
    assert client.address == bytes([198, 51, 100, 2])
    assert client.peer_address == bytes([198, 51, 100, 1])
    ups = [e for e in rig.lns_events() if isinstance(e, LnsIpcpUp)]
    assert [u.address for u in ups] == ["198.51.100.2"]
    # ICMP echo to the LNS's own address is answered; to another address it is not
    ping = build_icmp_echo(client.address, client.peer_address, 7, 1, b"x" * 8)
    rig.send_ppp(sid, b"\x00\x21" + ping)
    rig.send_ppp(sid, b"\x00\x21" + build_icmp_echo(client.address, b"\x01\x02\x03\x04", 7, 2))
    (reply,) = rig.ppp_in.pop(sid)
    echo = parse_icmp_echo(reply[2:])
    assert echo is not None and echo.reply and (echo.ident, echo.seq) == (7, 1)
    assert rig.lns.status()["pings_answered"] == 1
    # LCP echo
    rig.send_ppp(sid, encode_control(PppProtocol.LCP, LcpCode.ECHO_REQUEST, 9, b"\x00" * 4))
    (echo_reply,) = rig.ppp_in.pop(sid)
    pkt = decode_control(split_frame(echo_reply)[1])
    assert (pkt.code, pkt.identifier) == (LcpCode.ECHO_REPLY, 9)
    # LCP terminate -> Terminate-Ack and a CDN
    rig.send_ppp(sid, encode_control(PppProtocol.LCP, LcpCode.TERMINATE_REQUEST, 3))
    (ack,) = rig.ppp_in.pop(sid)
    assert decode_control(split_frame(ack)[1]).code == LcpCode.TERMINATE_ACK
    closed = [e for e in rig.lac_events if isinstance(e, SessionClosed)]
    assert closed and closed[0].by_peer and closed[0].result == 3
    assert rig.lns.status()["sessions"] == 0


def test_without_proxy_lcp_the_lns_renegotiates_and_assigns() -> None:
    rig = Rig()
    sid = rig.call(CallParams())
    client = PppClient("u", "p", ("chap",), rand_bytes=random.Random(3).randbytes)
    client.start(rig.now)
    events = []
    for _ in range(50):
        for frame in client.frames_to_send():
            rig.send_ppp(sid, frame)
        frames, rig.ppp_in[sid] = rig.ppp_in.get(sid, []), []
        for frame in frames:
            client.receive_frame(frame, rig.now)
        while (ev := client.next_event()) is not None:
            events.append(ev)
        if not frames and not client.frames_to_send():
            break
    ups = [e for e in events if isinstance(e, ClientIpcpUp)]
    assert ups == [ClientIpcpUp("198.51.100.2", "198.51.100.1", ())]


def test_refusal_result_codes() -> None:
    for result in (2, 4, 5):
        rig = Rig(
            LnsConfig(
                tunnel=TunnelConfig(host_name="lns", secret=SECRET),
                reject_result=result,
                reject_every=2,
            )
        )
        a = rig.call()
        b = rig.call()
        assert a in rig.sessions and b not in rig.sessions
        closed = [e for e in rig.lac_events if isinstance(e, SessionClosed)]
        assert [(c.session_id, c.result, c.during_setup) for c in closed] == [(b, result, True)]


def test_session_cap_and_pool() -> None:
    cfg = LnsConfig(
        tunnel=TunnelConfig(host_name="lns", secret=SECRET), pool="203.0.113.0/30", max_sessions=5
    )
    rig = Rig(cfg)
    a = rig.call()
    b = rig.call()  # /30: one address for the LNS, one for a subscriber
    assert a in rig.sessions and b not in rig.sessions
    closed = [e for e in rig.lac_events if isinstance(e, SessionClosed)]
    assert [c.result for c in closed] == [4]
    assert rig.lns.counters["refused-pool"] == 1


def test_drop_sccrq_and_die() -> None:
    cfg = LnsConfig(tunnel=TunnelConfig(host_name="lns", secret=SECRET), drop_sccrq=True)
    rig = Rig(cfg)
    rig.lac.open_tunnel(LNS, TunnelConfig(host_name="lac", secret=SECRET), 0.0)
    rig.pump()
    rig.advance(5.0)
    assert not any(isinstance(e, TunnelEstablished) for e in rig.lac_events)
    assert rig.lns.counters["sccrq-dropped"] >= 2  # the first and its retransmissions

    rig2 = Rig()
    sid = rig2.call()
    assert sid in rig2.sessions
    rig2.lns.die()
    rig2.ppp_in.clear()
    rig2.send_ppp(sid, encode_control(PppProtocol.LCP, LcpCode.ECHO_REQUEST, 1, bytes(4)))
    assert rig2.ppp_in.get(sid, []) == []  # no LCP Echo-Reply from a dead LNS
    rig2.ppp_in.clear()
    rig2.advance(30.0)
    assert rig2.ppp_in == {}
    assert rig2.lns.get_timer() is None
    assert rig2.lns.status()["dead"] is True


def test_receive_window_configured() -> None:
    cfg = LnsConfig(tunnel=TunnelConfig(host_name="lns", receive_window=2))
    rig = Rig(cfg)
    assert rig.lns.endpoint.lns_config is not None
    assert rig.lns.endpoint.lns_config.receive_window == 2


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=60), max_size=10))
def test_garbage_data_and_control_never_raise(garbage: list[bytes]) -> None:
    rig = Rig()
    sid = rig.call()
    est = rig.sessions[sid]
    for g in garbage:
        rig.lns.receive_data(g, LAC, 1.0)
        rig.lns.receive_datagram(g, LAC, 1.0)
        header = encode_data_header(est.peer_tunnel_id, est.peer_session_id)
        rig.lns.receive_data(header + g, LAC, 1.0)
        rig.lns.datagrams_to_send(1.0)
    rig.lns.handle_timer(2.0)


def test_reuse_addresses_beyond_the_pool() -> None:
    cfg = LnsConfig(
        tunnel=TunnelConfig(host_name="lns", secret=SECRET),
        pool="203.0.113.0/30",
        reuse_addresses=True,
    )
    rig = Rig(cfg)
    calls = [rig.call() for _ in range(3)]
    assert all(c in rig.sessions for c in calls)
    ups = [e for e in rig.lns_events() if isinstance(e, SessionEstablished)]
    assert len(ups) == 3
    assert len(rig.lns.calls) == 3
    assert {c.address for c in rig.lns.calls.values()} == {bytes([203, 0, 113, 2])}


def test_reply_delay_holds_control_messages() -> None:
    cfg = LnsConfig(tunnel=TunnelConfig(host_name="lns", secret=SECRET), reply_delay=0.5)
    rig = Rig(cfg)
    rig.lac.open_tunnel(LNS, TunnelConfig(host_name="lac", secret=SECRET), 0.0)
    rig.pump()
    assert not any(isinstance(e, TunnelEstablished) for e in rig.lac_events)
    assert rig.lns.get_timer() == 0.5
    rig.advance(0.4)
    assert not any(isinstance(e, TunnelEstablished) for e in rig.lac_events)
    rig.advance(2.0)
    assert any(isinstance(e, TunnelEstablished) for e in rig.lac_events)


def test_lcp_echo_keepalive_clears_a_silent_cpe() -> None:
    cfg = LnsConfig(
        tunnel=TunnelConfig(host_name="lns", secret=SECRET), echo_interval=2.0, echo_failures=2
    )
    rig = Rig(cfg)
    sid = rig.call()
    rig.ppp_in.clear()
    rig.advance(2.5)
    (req,) = [f for f in rig.ppp_in.pop(sid) if split_frame(f)[0] == PppProtocol.LCP]
    pkt = decode_control(split_frame(req)[1])
    assert pkt.code == LcpCode.ECHO_REQUEST
    # an answer resets the count
    rig.send_ppp(sid, encode_control(PppProtocol.LCP, LcpCode.ECHO_REPLY, pkt.identifier, bytes(4)))
    rig.advance(20.0)  # then silence: 2 more requests unanswered, cleared at the third expiry
    closed = [e for e in rig.lac_events if isinstance(e, SessionClosed)]
    assert closed and closed[0].by_peer
    assert rig.lns.counters["lcp-terminated"] == 1
    assert rig.lns.status()["sessions"] == 0


def test_hello_probe_samples_the_peer_acknowledgement() -> None:
    """--hello-probe: a HELLO on every established tunnel every S seconds even while data
    flows; the LAC's acknowledgement time appears in ``status()["ack_ms"]``."""
    cfg = LnsConfig(tunnel=TunnelConfig(host_name="lns", secret=SECRET), hello_probe=2.0)
    rig = Rig(cfg)
    rig.call()
    rig.lns.status()  # drop the set-up samples
    rig.advance(4.5)  # two probes; the LAC acknowledges each after its ZLB delay
    assert rig.lns.counters["hello-probes"] == 2
    ack = rig.lns.status()["ack_ms"]
    assert isinstance(ack, dict) and ack["count"] == 2
    assert ack["max"] is not None and 0.0 <= ack["max"] <= 200.0
    assert rig.lns.status()["ack_ms"] == {"count": 0, "p50": None, "p99": None, "max": None}
