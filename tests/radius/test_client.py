"""RadiusClient engine: requests, forged replies, retransmission, failover, revival, ids."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.radius import packet as p
from broker.radius.client import (
    AccessAccepted,
    AccessRejected,
    AccessTimedOut,
    AuthRequest,
    ChapCredentials,
    Datagram,
    Event,
    RadiusClient,
    RadiusServer,
    ServerDead,
    ServerRevived,
)
from broker.radius.constants import Attr, Code, TunnelMediumType, TunnelType
from broker.radius.tunnel import TunnelCandidate, encode_tunnel_attributes
from broker.wire import LocalProtocolError

A = RadiusServer("a", "127.0.0.1", 1812, b"secret-a", timeout=(1.0, 2.0), dead_time=30.0)
B = RadiusServer("b", "127.0.0.2", 1812, b"secret-b", timeout=(1.0,), dead_time=30.0)
PAP = AuthRequest(
    "alice@isp.example",
    pap_password=b"wonderland",
    nas_ip="192.0.2.1",
    nas_identifier="lac1",
    nas_port_id="eth0.100:00:11:22:33:44:55",
    calling_station_id="00:11:22:33:44:55",
    extra=(p.attribute("ADSL-Agent-Circuit-Id", b"dslam1 atm 1/1:8.35"),),
)


def client(*servers: RadiusServer, sockets: int = 4, seed: int = 1) -> RadiusClient:
    rnd = random.Random(seed)
    return RadiusClient(
        servers or (A, B), sockets=sockets, nas_identifier="lac1", rand_bytes=rnd.randbytes
    )


def events(c: RadiusClient) -> list[Event]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def reply(
    dg: Datagram,
    code: int,
    attrs: list[tuple[int, bytes]],
    secret: bytes,
    *,
    ma: bool = True,
) -> bytes:
    req = p.decode_packet(dg.payload)
    return p.encode_response(
        code, req.identifier, attrs, secret, req.authenticator, add_message_authenticator=ma
    )


def one(c: RadiusClient, now: float = 0.0) -> Datagram:
    out = c.datagrams_to_send(now)
    assert len(out) == 1
    return out[0]


def test_pap_request_contents_and_accept_with_tunnels() -> None:
    c = client()
    c.authenticate("k1", PAP, 10.0)
    dg = one(c)
    assert dg.server_name == "a" and dg.addr == ("127.0.0.1", 1812)
    req = p.decode_packet(dg.payload)
    assert req.code == Code.ACCESS_REQUEST
    assert req.attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR
    assert p.verify_access_request(dg.payload, A.secret)
    hidden = req.get(Attr.USER_PASSWORD)
    assert hidden is not None
    assert p.unhide_password(hidden, A.secret, req.authenticator) == b"wonderland"
    assert req.value("User-Name") == "alice@isp.example"
    assert req.value("NAS-Port-Type") == 5
    assert req.value("NAS-Port-Id") == "eth0.100:00:11:22:33:44:55"
    assert req.value("ADSL-Agent-Circuit-Id") == b"dslam1 atm 1/1:8.35"
    lns = TunnelCandidate(
        1, TunnelType.L2TP, TunnelMediumType.IPV4, "198.51.100.7", password=b"tunnelpw"
    )
    attrs = encode_tunnel_attributes(lns, A.secret, req.authenticator)
    attrs += [
        (Attr.REPLY_MESSAGE, b"hello"),
        (Attr.SESSION_TIMEOUT, (3600).to_bytes(4, "big")),
        (Attr.CLASS, b"cls"),
    ]
    c.receive_datagram(
        reply(dg, Code.ACCESS_ACCEPT, attrs, A.secret), dg.addr, dg.socket_index, 10.5
    )
    (ev,) = events(c)
    assert isinstance(ev, AccessAccepted)
    assert ev.key == "k1" and ev.server == "a" and ev.latency == 0.5
    assert ev.tunnels == (lns,)
    assert (ev.reply_message, ev.session_timeout, ev.class_attr) == ("hello", 3600, b"cls")
    assert c.in_flight == 0 and c.get_timer() is None


def test_chap_request_and_reject() -> None:
    c = client()
    chap = AuthRequest("bob", chap=ChapCredentials(7, b"C" * 16, b"R" * 16), nas_port_type=16)
    c.authenticate("k", chap, 0.0)
    dg = one(c)
    req = p.decode_packet(dg.payload)
    assert req.get(Attr.CHAP_PASSWORD) == b"\x07" + b"R" * 16
    assert req.get(Attr.CHAP_CHALLENGE) == b"C" * 16
    assert req.get(Attr.USER_PASSWORD) is None
    assert req.value("NAS-Port-Type") == 16
    c.receive_datagram(
        reply(dg, Code.ACCESS_REJECT, [(Attr.REPLY_MESSAGE, b"no")], A.secret),
        dg.addr,
        dg.socket_index,
        1.0,
    )
    assert events(c) == [AccessRejected("k", "no", "a")]


def test_bad_requests_are_local_errors() -> None:
    c = client()
    with pytest.raises(LocalProtocolError):
        c.authenticate("k", AuthRequest("x"), 0.0)
    with pytest.raises(LocalProtocolError):
        c.authenticate(
            "k", AuthRequest("x", pap_password=b"a", chap=ChapCredentials(1, b"", b"R" * 16)), 0.0
        )
    c.authenticate("k", PAP, 0.0)
    with pytest.raises(LocalProtocolError):
        c.authenticate("k", PAP, 0.0)


def forgeries(dg: Datagram) -> list[bytes]:
    genuine = reply(dg, Code.ACCESS_ACCEPT, [], A.secret)
    no_ma = reply(dg, Code.ACCESS_ACCEPT, [], A.secret, ma=False)
    wrong_ma = bytearray(genuine)
    wrong_ma[22] ^= 0xFF  # the Message-Authenticator value (first attribute)
    # Recompute the Response Authenticator so only the MA is wrong.
    req = p.decode_packet(dg.payload)
    import hashlib

    body = bytes(wrong_ma[:4]) + req.authenticator + bytes(wrong_ma[20:])
    wrong_ma[4:20] = hashlib.md5(body + A.secret).digest()
    wrong_resp = bytearray(genuine)
    wrong_resp[4] ^= 1
    proxy = reply(dg, Code.ACCESS_ACCEPT, [(Attr.PROXY_STATE, b"injected")], A.secret)
    wrong_secret = reply(dg, Code.ACCESS_ACCEPT, [], b"guess")
    return [no_ma, bytes(wrong_ma), bytes(wrong_resp), proxy, wrong_secret]


def test_forged_replies_are_dropped_and_counted_then_genuine_completes() -> None:
    c = client()
    c.authenticate("k", PAP, 0.0)
    dg = one(c)
    for forged in forgeries(dg):
        c.receive_datagram(forged, dg.addr, dg.socket_index, 0.1)
    assert events(c) == []
    assert c.counters["forged_replies"] == 5
    assert c.counters["proxy_state_mismatch"] == 1
    c.receive_datagram(reply(dg, Code.ACCESS_ACCEPT, [], A.secret), dg.addr, dg.socket_index, 0.2)
    assert [type(e) for e in events(c)] == [AccessAccepted]


def test_forged_replies_only_end_in_timeout() -> None:
    c = client(A)
    c.authenticate("k", PAP, 0.0)
    dg = one(c)
    for forged in forgeries(dg):
        c.receive_datagram(forged, dg.addr, dg.socket_index, 0.1)
    c.handle_timer(1.0)
    assert one(c, 1.0).payload == dg.payload  # retransmission: same id and authenticator
    c.handle_timer(3.0)
    assert events(c) == [ServerDead("a"), AccessTimedOut("k")]
    assert c.counters["forged_replies"] == 5 and c.counters["retransmits"] == 1


def test_unknown_replies_are_counted() -> None:
    c = client()
    c.authenticate("k", PAP, 0.0)
    dg = one(c)
    good = reply(dg, Code.ACCESS_ACCEPT, [], A.secret)
    c.receive_datagram(good, ("127.0.0.9", 1812), dg.socket_index, 0.1)  # wrong source
    c.receive_datagram(good, dg.addr, (dg.socket_index + 1) % 4, 0.1)  # wrong socket
    bad_id = good[:1] + bytes([(good[1] + 1) & 0xFF]) + good[2:]
    c.receive_datagram(bad_id, dg.addr, dg.socket_index, 0.1)
    c.receive_datagram(b"short", dg.addr, dg.socket_index, 0.1)
    assert c.counters["unknown_reply"] == 3 and c.counters["malformed"] == 1
    accounting = reply(dg, Code.ACCOUNTING_RESPONSE, [], A.secret)
    c.receive_datagram(accounting, dg.addr, dg.socket_index, 0.1)
    assert c.counters["unexpected_code"] == 1
    assert events(c) == []


def test_failover_dead_server_and_status_server_revival() -> None:
    a = RadiusServer(
        "a", "127.0.0.1", 1812, b"sa", timeout=(1.0, 1.0), dead_time=60, probe_interval=5
    )
    c = client(a, B)
    c.authenticate("k", PAP, 0.0)
    first = one(c)
    c.handle_timer(1.0)
    assert one(c, 1.0).payload == first.payload
    c.handle_timer(2.0)
    to_b = one(c, 2.0)
    assert to_b.server_name == "b"
    assert p.verify_access_request(to_b.payload, B.secret)
    assert events(c) == [ServerDead("a")]
    assert not c.server_alive("a")
    c.receive_datagram(
        reply(to_b, Code.ACCESS_ACCEPT, [], B.secret), to_b.addr, to_b.socket_index, 2.5
    )
    (ev,) = events(c)
    assert isinstance(ev, AccessAccepted) and ev.server == "b"
    # New requests skip the dead server.
    c.authenticate("k2", PAP, 3.0)
    assert one(c, 3.0).server_name == "b"
    # A Status-Server probe goes to the dead server after probe_interval.
    assert c.get_timer() is not None
    c.handle_timer(4.0)  # k2 times out on b (timeout 1.0): b dead too
    assert events(c) == [ServerDead("b")]
    assert one(c, 4.0).server_name == "a"  # no alive server left: the dead one is tried
    c.handle_timer(5.0)
    c.handle_timer(6.0)
    assert events(c) == [AccessTimedOut("k2")]
    c.datagrams_to_send(6.0)
    c.handle_timer(7.0)
    probe = one(c, 7.0)
    assert probe.server_name == "a"
    pk = p.decode_packet(probe.payload)
    assert pk.code == Code.STATUS_SERVER
    assert pk.attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR
    assert p.verify_access_request(probe.payload, a.secret)
    c.receive_datagram(
        reply(probe, Code.ACCESS_ACCEPT, [], a.secret), probe.addr, probe.socket_index, 7.1
    )
    assert events(c) == [ServerRevived("a", "status-server")]
    assert c.server_alive("a")
    c.authenticate("k3", PAP, 8.0)
    assert one(c, 8.0).server_name == "a"


def test_forged_status_server_reply_does_not_revive() -> None:
    c = client(A)
    c.authenticate("k", PAP, 0.0)
    c.datagrams_to_send(0.0)
    c.handle_timer(1.0)
    c.handle_timer(3.0)
    assert events(c) == [ServerDead("a"), AccessTimedOut("k")]
    c.datagrams_to_send(3.0)
    c.handle_timer(8.0)
    probe = one(c, 8.0)
    c.receive_datagram(
        reply(probe, Code.ACCESS_ACCEPT, [], b"wrong"), probe.addr, probe.socket_index, 8.1
    )
    assert events(c) == [] and not c.server_alive("a")
    c.handle_timer(33.0)  # dead_time (30 s) expires
    assert ServerRevived("a", "dead-time") in events(c)


def test_all_dead_still_tries_servers_and_reply_revives() -> None:
    c = client(A)
    c.authenticate("k", PAP, 0.0)
    c.datagrams_to_send(0.0)
    c.handle_timer(1.0)
    c.handle_timer(3.0)
    events(c)
    c.datagrams_to_send(3.0)
    c.authenticate("k2", PAP, 4.0)
    dg = one(c, 4.0)
    assert dg.server_name == "a"
    c.receive_datagram(reply(dg, Code.ACCESS_REJECT, [], A.secret), dg.addr, dg.socket_index, 4.1)
    assert events(c) == [ServerRevived("a", "reply"), AccessRejected("k2", None, "a")]


def test_identifiers_per_socket_and_server_queue_when_exhausted() -> None:
    c = client(A, B, sockets=2)
    keys: list[Hashable] = list(range(513))
    for k in keys:
        c.authenticate(k, PAP, 0.0)
    sent = c.datagrams_to_send(0.0)
    assert len(sent) == 512 and c.counters["queued"] == 1
    seen = {(d.socket_index, d.payload[1]) for d in sent}
    assert len(seen) == 512  # every (socket, id) pair used once
    # A reply frees an Identifier: the queued request goes out.
    d0 = sent[0]
    c.receive_datagram(reply(d0, Code.ACCESS_REJECT, [], A.secret), d0.addr, d0.socket_index, 0.5)
    later = c.datagrams_to_send(0.5)
    assert len(later) == 1 and later[0].server_name == "a"
    # Server a dies: everything fails over to b, which has its own Identifiers.
    c.handle_timer(1.0)
    c.handle_timer(1.5)
    c.datagrams_to_send(1.5)
    c.handle_timer(3.0)
    moved = c.datagrams_to_send(3.0)
    # The queued request (sent at 0.5) was retransmitted to a at 1.5, before a was dead.
    assert [d.server_name for d in moved].count("b") == 511  # 512 sent, one answered
    assert [d.server_name for d in moved].count("a") == 0
    # Its last try expires: it moves to b.
    c.handle_timer(3.5)
    assert [d.server_name for d in c.datagrams_to_send(3.5)] == ["b"]
    assert c.counters["timeouts"] == 512 and c.counters["retransmits"] == 512
    assert ServerDead("a") in events(c)


def test_cancel_forgets_request() -> None:
    c = client()
    c.authenticate("k", PAP, 0.0)
    dg = one(c)
    c.cancel("k")
    c.cancel("unknown")
    assert c.get_timer() is None
    c.receive_datagram(reply(dg, Code.ACCESS_ACCEPT, [], A.secret), dg.addr, dg.socket_index, 0.1)
    assert events(c) == [] and c.counters["unknown_reply"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 3))
def test_random_reply_bytes_never_raise(data: bytes, sock: int) -> None:
    c = client()
    c.authenticate("k", PAP, 0.0)
    dg = one(c)
    # Random bytes with the right identifier reach the verification step.
    payload = data[:1] + dg.payload[1:2] + data[2:] if len(data) >= 2 else data
    c.receive_datagram(payload, dg.addr, sock, 0.1)
    assert events(c) == []
    assert sum(c.counters[k] for k in ("forged_replies", "unknown_reply", "malformed")) == 1


def test_call_on_server_found_dead_moves_on_without_more_retries() -> None:
    a = RadiusServer("a", "127.0.0.1", 1812, b"sa", timeout=(1.0, 1.0, 5.0))
    c = client(a, B)
    c.authenticate("k1", PAP, 0.0)
    for now in (1.0, 2.0, 6.5):
        c.handle_timer(now)
    c.authenticate("k2", PAP, 6.5)
    c.datagrams_to_send(6.5)
    c.handle_timer(7.0)  # k1 exhausts its tries: a is dead, k1 moves to b
    assert events(c) == [ServerDead("a")]
    assert [d.server_name for d in c.datagrams_to_send(7.0)] == ["b"]
    c.handle_timer(7.5)  # k2's first expiry: a is dead and b alive, so no retry on a
    assert [d.server_name for d in c.datagrams_to_send(7.5)] == ["b"]
    assert c.counters["timeouts"] == 1 and c.counters["failovers"] == 2
