"""PppLink against the simulator's PppClient, in memory with a fake clock."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp import (
    ChapCredentials,
    CredentialsReceived,
    LcpOpened,
    LinkConfig,
    LinkTerminated,
    MschapV2Credentials,
    PapCredentials,
    PppLink,
)
from broker.ppp.codec import decode_control, encode_control, split_frame
from broker.ppp.constants import LcpCode, PppProtocol, ProxyAuthenType
from broker.sim.ppp_client import (
    ClientAuthenticated,
    ClientAuthFailed,
    ClientConfig,
    ClientEvent,
    ClientLcpOpened,
    ClientTerminated,
    PppClient,
)


class Pair:
    """A link and a client wired back to back; records every frame with its direction."""

    def __init__(
        self,
        config: LinkConfig | None = None,
        auth: tuple[str, ...] = ("chap", "pap", "mschapv2"),
        client_config: ClientConfig | None = None,
        max_payload: int | None = None,
        seed: int = 1,
    ) -> None:
        r = random.Random(seed)
        self.link = PppLink(config or LinkConfig(), max_payload=max_payload, rand_bytes=r.randbytes)
        self.client = PppClient(
            "alice@example.net", "s3cret", auth, client_config, rand_bytes=r.randbytes
        )
        self.now = 0.0
        self.wire: list[tuple[str, bytes]] = []
        self.link_events: list[object] = []
        self.client_events: list[ClientEvent] = []

    def start(self) -> None:
        self.link.start(self.now)
        self.client.start(self.now)
        self.pump()

    def pump(self) -> None:
        for _ in range(1000):
            a = self.link.frames_to_send()
            b = self.client.frames_to_send()
            if not a and not b:
                break
            for f in a:
                self.wire.append(("L", f))
                self.client.receive_frame(f, self.now)
            for f in b:
                self.wire.append(("C", f))
                self.link.receive_frame(f, self.now)
        while (e := self.link.next_event()) is not None:
            self.link_events.append(e)
        while (c := self.client.next_event()) is not None:
            self.client_events.append(c)

    def advance(self, until: float) -> None:
        while True:
            timers = [t for t in (self.link.get_timer(), self.client.get_timer()) if t is not None]
            if not timers or min(timers) > until:
                break
            self.now = max(self.now, min(timers))
            self.link.handle_timer(self.now)
            self.client.handle_timer(self.now)
            self.pump()
        self.now = until

    def credentials(self) -> CredentialsReceived:
        found = [e for e in self.link_events if isinstance(e, CredentialsReceived)]
        assert len(found) == 1, self.link_events
        return found[0]

    def terminated(self) -> list[LinkTerminated]:
        return [e for e in self.link_events if isinstance(e, LinkTerminated)]

    def packets(self, side: str, protocol: int, code: int | None = None) -> list[bytes]:
        out = []
        for who, frame in self.wire:
            proto, info = split_frame(frame)
            if (
                who == side
                and proto == protocol
                and (code is None or decode_control(info).code == code)
            ):
                out.append(info)
        return out


def confreq_options(info: bytes) -> bytes:
    return decode_control(info).data


def test_chap_accept_and_proxy_material_equals_wire() -> None:
    p = Pair()
    p.start()
    assert isinstance(p.link_events[0], LcpOpened)
    assert p.link_events[0].peer_mru == 1492
    creds = p.credentials()
    assert creds.username == "alice@example.net"
    auth = creds.auth
    assert isinstance(auth, ChapCredentials)
    assert auth.algorithm == 5
    assert auth.response == hashlib.md5(bytes((auth.ident,)) + b"s3cret" + auth.challenge).digest()
    p.link.accept("welcome", p.now)
    p.pump()
    assert ClientAuthenticated("welcome") in p.client_events
    # The client starts IPCP at once; the LAC leaves it to the LNS (silently discarded).
    assert p.link.counters.get("dropped-ncp-before-handover", 0) >= 1
    assert not p.packets("L", PppProtocol.LCP, LcpCode.PROTOCOL_REJECT)

    proxy = p.link.hand_over()
    client_reqs = p.packets("C", PppProtocol.LCP, LcpCode.CONFIGURE_REQUEST)
    link_reqs = p.packets("L", PppProtocol.LCP, LcpCode.CONFIGURE_REQUEST)
    assert proxy.initial_received_confreq == confreq_options(client_reqs[0])
    assert proxy.last_received_confreq == confreq_options(client_reqs[-1])
    assert proxy.last_sent_confreq == confreq_options(link_reqs[-1])
    challenge = decode_control(p.packets("L", PppProtocol.CHAP, 1)[0])
    response = decode_control(p.packets("C", PppProtocol.CHAP, 2)[0])
    assert proxy.authen_type is ProxyAuthenType.CHAP
    assert proxy.authen_id == challenge.identifier == response.identifier
    assert proxy.authen_challenge == challenge.data[1:17]
    assert proxy.authen_response == response.data[1:17]
    assert proxy.authen_name == b"alice@example.net"
    assert creds.proxy == proxy
    # After hand-over the link is inert: no timers, frames dropped.
    assert p.link.get_timer() is None
    p.link.receive_frame(b"\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00", p.now)
    assert p.link.frames_to_send() == []


def test_chap_reject_terminates() -> None:
    p = Pair()
    p.start()
    p.credentials()
    p.link.reject("bad password", p.now)
    p.pump()
    assert ClientAuthFailed("bad password") in p.client_events
    assert p.terminated() == [LinkTerminated("auth-rejected", False)]
    assert ClientTerminated("peer-terminate") in p.client_events
    # Failure goes out before the Terminate-Request.
    kinds = [split_frame(f)[0] for who, f in p.wire if who == "L"]
    assert kinds.index(PppProtocol.CHAP) < len(kinds) - 1


@pytest.mark.parametrize("server_auth", [("pap",), ("chap", "pap")])
def test_pap_accept(server_auth: tuple[str, ...]) -> None:
    p = Pair(LinkConfig(auth=server_auth), auth=("pap",))
    p.start()
    creds = p.credentials()
    assert creds.auth == PapCredentials(b"s3cret")
    assert creds.proxy.authen_type is ProxyAuthenType.PAP
    assert creds.proxy.authen_response == b"s3cret"
    req = decode_control(p.packets("C", PppProtocol.PAP)[0])
    assert creds.proxy.authen_id == req.identifier
    p.link.accept("ok", p.now)
    p.pump()
    assert ClientAuthenticated("ok") in p.client_events


def test_pap_reject() -> None:
    p = Pair(LinkConfig(auth=("pap",)), auth=("pap",))
    p.start()
    p.link.reject("no such user", p.now)
    p.pump()
    assert ClientAuthFailed("no such user") in p.client_events
    assert p.terminated() == [LinkTerminated("auth-rejected", False)]
    assert ClientTerminated("peer-terminate") in p.client_events


def test_pap_repeated_request_gets_same_verdict() -> None:
    p = Pair(LinkConfig(auth=("pap",)), auth=("pap",))
    p.start()
    p.link.accept("hello", p.now)
    p.pump()
    req = p.packets("C", PppProtocol.PAP)[0]
    p.link.receive_frame(b"\xc0\x23" + req, p.now)
    again = p.link.frames_to_send()
    assert len(again) == 1
    pkt = decode_control(split_frame(again[0])[1])
    assert (pkt.code, pkt.identifier, pkt.data) == (2, decode_control(req).identifier, b"\x05hello")


def test_mschapv2_carried() -> None:
    p = Pair(LinkConfig(auth=("mschapv2", "chap")), auth=("mschapv2",))
    p.start()
    creds = p.credentials()
    assert isinstance(creds.auth, MschapV2Credentials)
    assert len(creds.auth.challenge) == 16
    assert len(creds.auth.response) == 49
    response = decode_control(p.packets("C", PppProtocol.CHAP, 2)[0])
    assert response.data[1:50] == creds.auth.response
    assert creds.proxy.authen_type is None
    p.link.accept("S=" + "0" * 40 + " M=welcome", p.now)
    p.pump()
    assert ClientAuthenticated("S=" + "0" * 40 + " M=welcome") in p.client_events


def test_chap_nak_to_pap_only_if_allowed() -> None:
    p = Pair(LinkConfig(auth=("chap",)), auth=("pap",))
    p.start()
    p.advance(60.0)
    assert p.terminated() == [LinkTerminated("lcp-failed", False)]
    assert not any(isinstance(e, CredentialsReceived) for e in p.link_events)


def test_echo_loss_is_detected_after_configured_count() -> None:
    cfg = LinkConfig(echo_interval=5.0, echo_failures=3)
    p = Pair(cfg)
    p.start()
    p.link.accept("ok", p.now)
    p.pump()
    p.advance(12.0)  # a live client answers
    assert p.terminated() == []
    assert len(p.packets("C", PppProtocol.LCP, LcpCode.ECHO_REPLY)) == 2
    p.client.silent = True
    sent_before = len(p.packets("L", PppProtocol.LCP, LcpCode.ECHO_REQUEST))
    p.advance(29.9)
    assert p.terminated() == []
    p.advance(30.0)  # requests at 15, 20, 25 unanswered; dead at 30
    assert p.terminated() == [LinkTerminated("echo-timeout", False)]
    assert len(p.packets("L", PppProtocol.LCP, LcpCode.ECHO_REQUEST)) - sent_before == 3
    p.advance(100.0)
    assert len(p.terminated()) == 1
    assert p.link.get_timer() is None


def test_terminate_by_link() -> None:
    p = Pair()
    p.start()
    p.link.accept("ok", p.now)
    p.pump()
    p.link.terminate("admin", p.now)
    p.pump()
    assert p.terminated() == [LinkTerminated("admin", False)]
    assert ClientTerminated("peer-terminate") in p.client_events
    assert p.link.get_timer() is None


def test_terminate_by_client() -> None:
    p = Pair()
    p.start()
    p.client.terminate(p.now)
    p.pump()
    assert p.terminated() == [LinkTerminated("peer-terminate", True)]
    p.advance(10.0)
    assert p.terminated() == [LinkTerminated("peer-terminate", True)]
    assert ClientTerminated("local") in p.client_events


def test_challenge_retransmitted_and_repeated_response_answered() -> None:
    p = Pair(LinkConfig(restart_timer=2.0))
    p.link.start(p.now)
    p.client.start(p.now)
    # Deliver everything except the first CHAP Challenge.
    for _ in range(20):
        a = p.link.frames_to_send()
        b = p.client.frames_to_send()
        for f in a:
            if split_frame(f)[0] != PppProtocol.CHAP:
                p.client.receive_frame(f, p.now)
        for f in b:
            p.link.receive_frame(f, p.now)
    p.pump()
    assert not any(isinstance(e, CredentialsReceived) for e in p.link_events)
    p.advance(2.0)
    challenges = p.packets("L", PppProtocol.CHAP, 1)
    assert len(challenges) == 1  # the retransmission (the first was dropped above)
    creds = p.credentials()
    assert isinstance(creds.auth, ChapCredentials)
    assert creds.auth.ident == decode_control(challenges[0]).identifier
    p.link.accept("ok", p.now)
    p.pump()
    response = p.packets("C", PppProtocol.CHAP, 2)[0]
    p.link.receive_frame(b"\xc2\x23" + response, p.now)
    again = p.link.frames_to_send()
    assert [decode_control(split_frame(f)[1]).code for f in again] == [3]


def test_auth_timeout_when_client_never_answers() -> None:
    p = Pair(LinkConfig(auth_timeout=20.0))
    p.link.start(p.now)
    p.client.start(p.now)
    for _ in range(20):
        for f in p.link.frames_to_send():
            if split_frame(f)[0] == PppProtocol.LCP:
                p.client.receive_frame(f, p.now)
        for f in p.client.frames_to_send():
            if split_frame(f)[0] == PppProtocol.LCP:
                p.link.receive_frame(f, p.now)
    p.client.silent = True
    p.pump()
    p.advance(19.0)
    assert p.terminated() == []
    p.advance(40.0)
    assert p.terminated() == [LinkTerminated("auth-timeout", False)]


def test_unknown_protocol_rejected_ncp_discarded_unknown_code_rejected() -> None:
    p = Pair()
    p.start()
    p.link.receive_frame(b"\xc0\x25" + b"\x01\x02\x03", p.now)  # LQR: not ours
    p.link.receive_frame(b"\x80\x57" + b"\x01\x01\x00\x04", p.now)  # IPV6CP: the LNS's job
    p.link.receive_frame(b"\xc0\x21" + b"\x0c\x07\x00\x06ab", p.now)  # LCP code 12
    frames = [decode_control(split_frame(f)[1]) for f in p.link.frames_to_send()]
    assert [f.code for f in frames] == [LcpCode.PROTOCOL_REJECT, LcpCode.CODE_REJECT]
    assert frames[0].data == b"\xc0\x25\x01\x02\x03"
    assert frames[1].data == b"\x0c\x07\x00\x06ab"
    assert p.link.counters["dropped-ncp-before-handover"] == 1


def test_looped_back_request_is_detected() -> None:
    link = PppLink(LinkConfig(), rand_bytes=random.Random(3).randbytes)
    link.start(0.0)
    own = link.frames_to_send()[0]
    link.receive_frame(own, 0.0)
    nak = decode_control(split_frame(link.frames_to_send()[0])[1])
    assert nak.code == LcpCode.CONFIGURE_REJECT  # our Auth-Protocol is not for us to answer
    stripped = encode_control(PppProtocol.LCP, 1, 9, bytes.fromhex("010405d4") + own[-6:])
    link.receive_frame(stripped, 0.0)
    nak = decode_control(split_frame(link.frames_to_send()[0])[1])
    assert nak.code == LcpCode.CONFIGURE_NAK
    assert nak.data[:2] == b"\x05\x06" and nak.data[2:] != own[-4:]
    assert link.counters["magic-loop"] == 2  # both looped requests carried our magic


@pytest.mark.parametrize(("max_payload", "expected"), [(None, 1492), (1500, 1500)])
def test_mru_honours_max_payload(max_payload: int | None, expected: int) -> None:
    p = Pair(client_config=ClientConfig(mru=1500), max_payload=max_payload)
    p.start()
    assert p.link_events[0] == LcpOpened(expected)


def test_rejects_accm_pfc_acfc() -> None:
    from broker.ppp.codec import Option

    extra = (Option(2, b"\x00\x00\x00\x00"), Option(7), Option(8))
    p = Pair(client_config=ClientConfig(extra_options=extra))
    p.start()
    rej = decode_control(p.packets("L", PppProtocol.LCP, LcpCode.CONFIGURE_REJECT)[0])
    assert rej.data == b"\x02\x06\x00\x00\x00\x00\x07\x02\x08\x02"
    assert isinstance(p.link_events[0], LcpOpened)
    assert ClientLcpOpened() in p.client_events


frames = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=30).map(lambda b: b"\xc0\x21" + b),
    st.binary(max_size=30).map(lambda b: b"\xc2\x23" + b),
    st.binary(max_size=30).map(lambda b: b"\xc0\x23" + b),
    st.binary(max_size=8).map(lambda b: b"\xc0\x21\x01\x01\x00" + bytes((4 + len(b),)) + b),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(frames, max_size=6), st.integers(0, 3))
def test_garbage_never_raises(garbage: list[bytes], phase: int) -> None:
    p = Pair(LinkConfig(auth=("pap", "chap")), auth=("pap",) if phase == 2 else ("chap",))
    if phase >= 1:
        p.start()
    else:
        p.link.start(0.0)
    if phase == 3:
        p.link.accept("ok", p.now)
        p.pump()
    for g in garbage:
        p.link.receive_frame(g, p.now)
        p.link.frames_to_send()
    p.link.handle_timer(p.now + 100)
    p.link.frames_to_send()


@pytest.mark.parametrize(
    "options", [b"\x01\x00", b"\x05\x01", b"\x01\x04\x05", b"\x01\x05\x05\xd4\x00\x00"]
)
def test_malformed_confreq_counted(options: bytes) -> None:
    link = PppLink(LinkConfig())
    link.start(0.0)
    link.frames_to_send()
    link.receive_frame(encode_control(PppProtocol.LCP, 1, 1, options), 0.0)
    assert link.counters["malformed"] == 1
    assert link.frames_to_send() == []


def test_catastrophic_code_reject_fails_the_link() -> None:
    p = Pair()
    p.start()
    # The peer Code-Rejects our Configure-Request code: RXJ- in Opened (tld, irc, str / 5).
    p.link.receive_frame(encode_control(PppProtocol.LCP, 7, 1, b"\x01\x01\x00\x04"), p.now)
    p.pump()
    p.advance(20.0)
    assert p.terminated() == [LinkTerminated("lcp-failed", False)]


def test_echo_reply_with_own_magic_counts_loopback() -> None:
    p = Pair()
    p.start()
    magic = p.link.lcp.magic.to_bytes(4, "big")
    p.link.receive_frame(encode_control(PppProtocol.LCP, 10, 1, magic), p.now)
    assert p.link.counters["echo-loopback"] == 1
    # An Echo-Request is answered with our magic and the same data.
    p.link.receive_frame(encode_control(PppProtocol.LCP, 9, 77, b"\x00\x00\x00\x01zz"), p.now)
    reply = decode_control(split_frame(p.link.frames_to_send()[-1])[1])
    assert (reply.code, reply.identifier, reply.data) == (10, 77, magic + b"zz")


def test_long_pap_message_is_cut_not_raised() -> None:
    p = Pair(LinkConfig(auth=("pap",)), auth=("pap",))
    p.start()
    p.link.accept("x" * 400, p.now)
    p.pump()
    assert ClientAuthenticated("x" * 255) in p.client_events
