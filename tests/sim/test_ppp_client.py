"""The simulator's PPP client: through LCP and authentication to IPCP with a fake LNS."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp import LinkConfig, PppLink
from broker.ppp.auth import ChapAuthenticator
from broker.ppp.codec import decode_control, split_frame
from broker.ppp.constants import PppProtocol
from broker.ppp.lcp import LcpAutomaton, RestartConfig, Signal
from broker.sim.ppp_client import (
    ClientAuthenticated,
    ClientAuthFailed,
    ClientConfig,
    ClientEvent,
    ClientIpcpUp,
    ClientLcpOpened,
    ClientTerminated,
    IpcpAutomaton,
    PppClient,
)

ADDR = bytes([192, 0, 2, 10])
GW = bytes([192, 0, 2, 1])
DNS1 = bytes([198, 51, 100, 53])
DNS2 = bytes([198, 51, 100, 54])


class FakeLns:
    """LAC PppLink until accept + hand-over, then an IPCP server (like the LNS)."""

    def __init__(self, seed: int) -> None:
        r = random.Random(seed)
        self.link = PppLink(LinkConfig(echo_interval=0.0), rand_bytes=r.randbytes)
        self.ipcp = IpcpAutomaton(
            RestartConfig(), address=GW, assign=ADDR, dns=(DNS1, DNS2), rand_bytes=r.randbytes
        )
        self.handed_over = False

    def receive(self, frame: bytes, now: float) -> None:
        if not self.handed_over:
            self.link.receive_frame(frame, now)
            return
        proto, info = split_frame(frame)
        if proto == PppProtocol.IPCP:
            self.ipcp.receive(info, now)

    def frames(self) -> list[bytes]:
        return self.link.frames_to_send() + self.ipcp.frames_to_send()


def converse(lns: FakeLns, client: PppClient, now: float = 0.0) -> list[ClientEvent]:
    for _ in range(100):
        a, b = lns.frames(), client.frames_to_send()
        if not a and not b:
            break
        for f in a:
            client.receive_frame(f, now)
        for f in b:
            lns.receive(f, now)
    events = []
    while (e := client.next_event()) is not None:
        events.append(e)
    return events


def test_client_reaches_ipcp_with_nakd_address_and_dns() -> None:
    r = random.Random(7)
    lns = FakeLns(8)
    client = PppClient(
        "bob@example.org", "pw", ("chap",), ClientConfig(request_dns=True), rand_bytes=r.randbytes
    )
    lns.link.start(0.0)
    client.start(0.0)
    events = converse(lns, client)
    assert events == [ClientLcpOpened()]
    lns.link.accept("hi", 0.0)
    lns.link.hand_over()
    lns.handed_over = True
    lns.ipcp.up(0.0)
    lns.ipcp.open(0.0)
    events = converse(lns, client)
    assert events == [
        ClientAuthenticated("hi"),
        ClientIpcpUp("192.0.2.10", "192.0.2.1", ("198.51.100.53", "198.51.100.54")),
    ]
    assert lns.ipcp.opened and lns.ipcp.peer_address == ADDR
    # The client answers LCP Echo-Requests from the LNS with its magic number.
    client.receive_frame(b"\xc0\x21\x09\x33\x00\x0c\x00\x00\x00\x00abcd", 1.0)
    (reply,) = client.frames_to_send()
    pkt = decode_control(split_frame(reply)[1])
    assert (pkt.code, pkt.identifier, pkt.data[4:]) == (10, 0x33, b"abcd")
    assert int.from_bytes(pkt.data[:4], "big") == client.lcp.magic != 0


def test_client_without_auth_goes_straight_to_ipcp() -> None:
    r = random.Random(1)
    lns = FakeLns(2)
    lns.link = PppLink(LinkConfig(auth=(), echo_interval=0.0), rand_bytes=r.randbytes)
    client = PppClient("x", "y", rand_bytes=r.randbytes)
    lns.link.start(0.0)
    client.start(0.0)
    assert converse(lns, client) == [ClientLcpOpened()]
    lns.handed_over = True  # the client's first IPCP request went to the LAC (dropped)
    lns.ipcp.up(0.0)
    lns.ipcp.open(0.0)
    assert converse(lns, client) == []
    client.handle_timer(3.0)  # IPCP retransmits on the restart timer
    assert converse(lns, client, 3.0) == [ClientIpcpUp("192.0.2.10", "192.0.2.1")]


def test_pap_gives_up_without_answer() -> None:
    r = random.Random(3)
    lns = FakeLns(4)
    lns.link = PppLink(LinkConfig(auth=("pap",), echo_interval=0.0), rand_bytes=r.randbytes)
    client = PppClient("x", "y", ("pap",), ClientConfig(max_configure=3), rand_bytes=r.randbytes)
    lns.link.start(0.0)
    client.start(0.0)
    converse(lns, client)
    requests = 0
    now = 0.0
    events: list[ClientEvent] = []
    while (t := client.get_timer()) is not None and now < 100:
        now = t
        client.handle_timer(now)
        frames = client.frames_to_send()
        requests += sum(split_frame(f)[0] == PppProtocol.PAP for f in frames)
        while (e := client.next_event()) is not None:
            events.append(e)
    assert requests == 2  # after the first: 3 in all
    assert events[0] == ClientAuthFailed("no answer to Authenticate-Request")


def test_silent_client_ignores_everything() -> None:
    client = PppClient("x", "y", silent=True)
    client.start(0.0)
    client.frames_to_send()
    client.receive_frame(b"\xc0\x21\x05\x01\x00\x04", 0.0)
    assert client.frames_to_send() == []
    assert client.counters["ignored"] == 1


def test_client_terminate_before_open() -> None:
    client = PppClient("x", "y")
    client.start(0.0)
    client.frames_to_send()
    client.terminate(0.0)
    (frame,) = client.frames_to_send()
    assert decode_control(split_frame(frame)[1]).code == 5
    now = 0.0
    while (t := client.get_timer()) is not None:
        now = t
        client.handle_timer(now)
    assert client.next_event() == ClientTerminated("local")
    assert now == 6.0  # Max-Terminate 2 x restart 3 s


def test_lns_renegotiates_lcp_and_rechallenges() -> None:
    """After hand-over many LNSs renegotiate LCP and run CHAP again: the client follows."""
    r = random.Random(11)
    lns = FakeLns(12)
    client = PppClient("dave@example.org", "pw2", ("chap",), rand_bytes=r.randbytes)
    lns.link.start(0.0)
    client.start(0.0)
    converse(lns, client)
    lns.link.accept("ok", 0.0)
    lns.link.hand_over()
    lns.handed_over = True
    lns.ipcp.up(0.0)
    lns.ipcp.open(0.0)
    assert ClientIpcpUp("192.0.2.10", "192.0.2.1") in converse(lns, client)

    # The LNS's own LCP and CHAP take over the session.
    counters: dict[str, int] = {}
    lcp = LcpAutomaton(RestartConfig(), mru=1492, auth_request=("chap",), rand_bytes=r.randbytes)
    out: list[bytes] = lcp.out
    chap = ChapAuthenticator(
        out.append,
        counters,
        algorithm=5,
        name=b"lns",
        restart_timer=3.0,
        max_challenges=3,
        rand_bytes=r.randbytes,
    )
    lcp.up(1.0)
    lcp.open(1.0)
    responses = []
    for _ in range(30):
        a = lcp.frames_to_send() + lns.ipcp.frames_to_send()
        b = client.frames_to_send()
        if not a and not b:
            break
        for f in a:
            client.receive_frame(f, 1.0)
        for f in b:
            proto, info = split_frame(f)
            if proto == PppProtocol.LCP:
                lcp.receive(info, 1.0)
            elif proto == PppProtocol.CHAP:
                value = chap.receive(info, 1.0)
                if value is not None:
                    responses.append(value)
                    chap.accept(b"again")
            elif proto == PppProtocol.IPCP:
                lns.ipcp.receive(info, 1.0)
        if Signal.UP in lcp.signals:
            lcp.signals.clear()
            chap.start(1.0)
            lns.ipcp.down(1.0)
            lns.ipcp.up(1.0)
    assert lcp.opened and client.lcp.opened
    (response,) = responses
    assert response.name == b"dave@example.org"
    expected = hashlib.md5(bytes((chap.ident,)) + b"pw2" + chap.challenge).digest()
    assert response.value == expected
    events = []
    while (e := client.next_event()) is not None:
        events.append(e)
    assert events[:2] == [ClientLcpOpened(), ClientAuthenticated("again")]
    assert client.phase == "network"

    # A re-challenge in the network phase is answered; Success changes nothing.
    chap2 = ChapAuthenticator(
        out.append, counters, algorithm=5, name=b"lns", restart_timer=3.0, max_challenges=1
    )
    chap2.start(2.0)
    for f in lcp.frames_to_send():
        client.receive_frame(f, 2.0)
    (resp_frame,) = client.frames_to_send()
    assert chap2.receive(split_frame(resp_frame)[1], 2.0) is not None
    chap2.accept(b"still you")
    for f in lcp.frames_to_send():
        client.receive_frame(f, 2.0)
    assert client.counters["chap-rechallenge-success"] == 1
    assert client.next_event() is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=30),
            st.sampled_from([b"\xc0\x21", b"\xc2\x23", b"\xc0\x23", b"\x80\x21"]).flatmap(
                lambda p: st.binary(max_size=30).map(lambda b: p + b)
            ),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_client_never_raises_on_garbage(garbage: list[bytes], opened: bool) -> None:
    r = random.Random(5)
    lns = FakeLns(6)
    client = PppClient("x", "y", rand_bytes=r.randbytes)
    client.start(0.0)
    if opened:
        lns.link.start(0.0)
        converse(lns, client)
        lns.link.accept("ok", 0.0)
        converse(lns, client)
    for g in garbage:
        client.receive_frame(g, 0.0)
        client.frames_to_send()
    client.handle_timer(100.0)
