"""Raw Ethernet adapter: unit tests on fake sockets (no root) and, as root, a veth pair in
namespaces with an independent scapy client and the rp-pppoe client."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from broker.adapters.rawether import PACKET_OTHERHOST, PACKET_OUTGOING, RawEthernetPort, RawSocket
from broker.pppoe import (
    Code,
    DiscoveryConfig,
    DiscoveryPacket,
    DiscoveryServer,
    SessionOpened,
    SessionTerminated,
    Tag,
    TagType,
    decode_discovery,
    decode_session_frame,
    encode_discovery,
    encode_session_frame,
)
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.wire import MacAddress

AC_MAC = MacAddress(bytes.fromhex("020000000001"))
CLIENT = MacAddress(bytes.fromhex("020000000abc"))
BCAST = MacAddress(b"\xff" * 6)
ROOT = Path(__file__).resolve().parent.parent.parent


# -- fakes -------------------------------------------------------------------------------
class FakeSocket:
    def __init__(self, interface: str, ethertype: int, fd: int) -> None:
        self.interface, self.ethertype, self.fd = interface, ethertype, fd
        self.inbox: deque[tuple[bytes, Any] | OSError] = deque()
        self.sent: list[bytes] = []
        self.closed = False
        self.send_error: OSError | None = None

    def fileno(self) -> int:
        return self.fd

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        if not self.inbox:
            raise BlockingIOError
        item = self.inbox.popleft()
        if isinstance(item, OSError):
            raise item
        return item

    def send(self, data: bytes, /) -> int:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(data)
        return len(data)

    def close(self) -> None:
        self.closed = True

    def feed(self, frame: bytes, pkttype: int = 0) -> None:
        self.inbox.append((frame, (self.interface, self.ethertype, pkttype, 1, frame[6:12])))


class FakeSockets:
    def __init__(self) -> None:
        self.opened: dict[tuple[str, int], FakeSocket] = {}

    def open(self, interface: str, ethertype: int) -> RawSocket:
        sock = FakeSocket(interface, ethertype, 100 + len(self.opened))
        self.opened[(interface, ethertype)] = sock
        return sock

    def mac_address(self, interface: str) -> MacAddress:
        return AC_MAC


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + payload


def make_port(**kw: Any) -> tuple[RawEthernetPort, FakeSockets, FakeReactor, list[Any]]:
    engine = DiscoveryServer(DiscoveryConfig(ac_name="ac", cookie_secret=b"k" * 16))
    sockets, reactor, events = FakeSockets(), FakeReactor(), []
    port = RawEthernetPort(
        engine, ["eth1", "eth1.100"], reactor, sockets=sockets, on_event=events.append, **kw
    )
    port.startService()
    return port, sockets, reactor, events


def reader_for(reactor: FakeReactor, interface: str, ethertype: int) -> Any:
    return next(r for r in reactor.readers if r.interface == interface and r.ethertype == ethertype)


def padi() -> bytes:
    p = DiscoveryPacket(Code.PADI, 0, (Tag(TagType.SERVICE_NAME), Tag(TagType.HOST_UNIQ, b"hu")))
    return encode_discovery(p)


# -- unit tests --------------------------------------------------------------------------
def test_start_registers_two_sockets_per_interface_and_stop_closes() -> None:
    port, sockets, reactor, _ = make_port()
    assert sorted(sockets.opened) == [
        ("eth1", ETH_P_PPP_DISC),
        ("eth1", ETH_P_PPP_SES),
        ("eth1.100", ETH_P_PPP_DISC),
        ("eth1.100", ETH_P_PPP_SES),
    ]
    assert len(reactor.readers) == 4 and port.running
    assert reader_for(reactor, "eth1", ETH_P_PPP_DISC).fileno() == 100
    port.stopService()
    assert reactor.readers == [] and all(s.closed for s in sockets.opened.values())


def test_discovery_through_fake_sockets_then_session_frames_and_padt() -> None:
    frames: list[tuple[str, bytes, int, bytes]] = []
    port, sockets, reactor, events = make_port(
        on_session_frame=lambda i, m, s, p: frames.append((i, m, s, p))
    )
    disc = sockets.opened[("eth1.100", ETH_P_PPP_DISC)]
    disc.feed(eth(BCAST, CLIENT, ETH_P_PPP_DISC, padi() + b"\x00" * 10))
    reader_for(reactor, "eth1.100", ETH_P_PPP_DISC).doRead()
    (out,) = disc.sent
    assert out[:6] == CLIENT and out[6:12] == AC_MAC and out[12:14] == b"\x88\x63"
    pado = decode_discovery(out[14:])
    assert pado.code is Code.PADO and pado.host_uniq == b"hu"
    assert pado.ac_cookie is not None
    padr = DiscoveryPacket(
        Code.PADR,
        0,
        (
            Tag(TagType.SERVICE_NAME),
            Tag(TagType.HOST_UNIQ, b"hu"),
            Tag(TagType.AC_COOKIE, pado.ac_cookie),
        ),
    )
    reactor.advance(1.0)
    disc.feed(eth(AC_MAC, CLIENT, ETH_P_PPP_DISC, encode_discovery(padr)))
    reader_for(reactor, "eth1.100", ETH_P_PPP_DISC).doRead()
    pads = decode_discovery(disc.sent[1][14:])
    assert pads.code is Code.PADS and pads.session_id != 0
    (opened,) = events
    assert isinstance(opened, SessionOpened) and opened.key.interface == "eth1.100"

    ses = sockets.opened[("eth1.100", ETH_P_PPP_SES)]
    lcp = b"\xc0\x21\x01\x01\x00\x04"
    ses.feed(eth(AC_MAC, CLIENT, ETH_P_PPP_SES, encode_session_frame(pads.session_id, lcp)))
    ses.feed(eth(BCAST, CLIENT, ETH_P_PPP_SES, encode_session_frame(pads.session_id, lcp)))
    ses.feed(eth(AC_MAC, CLIENT, ETH_P_PPP_SES, b"\x11\x00\x00\x00\x00\x02\xc0\x21"))  # sid 0
    reader_for(reactor, "eth1.100", ETH_P_PPP_SES).doRead()
    assert frames == [("eth1.100", CLIENT, pads.session_id, lcp)]
    assert port.counters["session_not_for_us"] == 1 and port.counters["malformed_session"] == 1

    port.send_session_frame("eth1.100", CLIENT, pads.session_id, b"\xc0\x21\x02\x01\x00\x04")
    assert decode_session_frame(ses.sent[0][14:]) == (pads.session_id, b"\xc0\x21\x02\x01\x00\x04")
    assert ses.sent[0][:14] == CLIENT + AC_MAC + b"\x88\x64"

    port.terminate(opened.key, "bye")
    padt = decode_discovery(disc.sent[2][14:])
    assert padt.code is Code.PADT and padt.session_id == pads.session_id
    assert isinstance(events[1], SessionTerminated) and not events[1].by_peer


def test_outgoing_runts_wrong_type_and_malformed_are_dropped() -> None:
    port, sockets, reactor, events = make_port()
    disc = sockets.opened[("eth1", ETH_P_PPP_DISC)]
    disc.feed(eth(BCAST, CLIENT, ETH_P_PPP_DISC, padi()), pkttype=PACKET_OUTGOING)
    disc.feed(eth(BCAST, CLIENT, ETH_P_PPP_DISC, padi()), pkttype=PACKET_OTHERHOST)
    disc.feed(b"\x01\x02")
    disc.feed(eth(BCAST, CLIENT, 0x8100, b"\x00\x64\x88\x63" + padi()))
    disc.feed(eth(BCAST, CLIENT, ETH_P_PPP_DISC, b"\x11\x09\x00\x00\x00\xff"))
    reader_for(reactor, "eth1", ETH_P_PPP_DISC).doRead()
    assert disc.sent == [] and events == []
    assert port.counters["runts"] == 1 and port.counters["wrong_ethertype"] == 1
    assert port.counters["other_host"] == 1
    assert port.counters["rx_frames"] == 3
    assert port.engine.counters["malformed"] == 1


def test_reads_at_most_max_reads_per_wakeup() -> None:
    _port, sockets, reactor, _ = make_port(max_reads=3)
    disc = sockets.opened[("eth1", ETH_P_PPP_DISC)]
    for i in range(5):
        disc.feed(eth(BCAST, bytes([2, 0, 0, 0, 0, i + 1]), ETH_P_PPP_DISC, padi()))
    reader = reader_for(reactor, "eth1", ETH_P_PPP_DISC)
    reader.doRead()
    assert len(disc.sent) == 3 and len(disc.inbox) == 2
    reader.doRead()
    assert len(disc.sent) == 5


def test_callback_and_socket_errors_never_escape() -> None:
    def boom(*_: Any) -> None:
        raise ValueError("call flow bug")

    port, sockets, reactor, _ = make_port(on_session_frame=boom)
    port.on_event = boom
    ses = sockets.opened[("eth1", ETH_P_PPP_SES)]
    ses.feed(eth(AC_MAC, CLIENT, ETH_P_PPP_SES, encode_session_frame(7, b"\xc0\x21\x09")))
    ses.inbox.append(OSError(100, "Network is down"))
    reader_for(reactor, "eth1", ETH_P_PPP_SES).doRead()
    assert port.counters["frame_errors"] == 1 and port.counters["read_errors"] == 1
    disc = sockets.opened[("eth1", ETH_P_PPP_DISC)]
    disc.send_error = OSError(105, "No buffer space available")
    disc.feed(eth(BCAST, CLIENT, ETH_P_PPP_DISC, padi()))
    reader_for(reactor, "eth1", ETH_P_PPP_DISC).doRead()
    assert port.counters["tx_errors"] == 1
    # events raised in on_event are counted too
    disc.send_error = None
    port.engine._events.append(SessionTerminated(_key(), by_peer=True, reason="x"))
    port.flush()
    assert port.counters["event_callback_errors"] == 1


def _key() -> Any:
    from broker.pppoe import PppoeSessionKey

    return PppoeSessionKey("eth1", CLIENT, 9)


def test_unhandled_session_frames_counted_and_tap_sees_all() -> None:
    seen: list[tuple[str, str, bytes]] = []
    port, sockets, reactor, _ = make_port(tap=lambda d, i, f: seen.append((d, i, f)))
    ses = sockets.opened[("eth1", ETH_P_PPP_SES)]
    ses.feed(eth(AC_MAC, CLIENT, ETH_P_PPP_SES, encode_session_frame(7, b"\xc0\x21\x09")))
    reader_for(reactor, "eth1", ETH_P_PPP_SES).doRead()
    assert port.counters["session_unhandled"] == 1
    port.send_session_frame("eth2", CLIENT, 7, b"\xc0\x21")
    assert port.counters["tx_no_socket"] == 1
    assert [d for d, _, _ in seen] == ["rx"]


# -- integration: veth pair in namespaces --------------------------------------------------
AC_RUNNER = textwrap.dedent(
    """
    import json, sys
    from twisted.internet import reactor
    from broker.adapters.rawether import RawEthernetPort
    from broker.pppoe import DiscoveryConfig, DiscoveryServer, PppoeSessionKey

    mode, trace, ifaces = sys.argv[1], sys.argv[2], sys.argv[3:]
    engine = DiscoveryServer(DiscoveryConfig(ac_name="broker-ac", cookie_secret=b"x" * 32))
    frames = []

    def out(obj):
        print(json.dumps(obj), flush=True)

    def tap(direction, interface, frame):
        frames.append((reactor.seconds(), frame))
        with open(trace, "a") as f:
            f.write(json.dumps([direction, frame.hex(), interface]) + "\\n")

    def on_event(ev):
        out({"event": type(ev).__name__, "sid": ev.key.session_id, "if": ev.key.interface,
             "mac": ev.key.mac.hex(), "by_peer": getattr(ev, "by_peer", None),
             "host_uniq": (getattr(ev, "host_uniq", None) or b"").hex()})
    def on_session_frame(interface, mac, sid, ppp):
        out({"event": "session_frame", "sid": sid, "ppp": ppp.hex()})
        port.send_session_frame(interface, mac, sid, ppp[:2] + b"\\x0a" + ppp[3:])
        if mode == "terminate":  # after the echo reply: the PADT follows it on the wire
            key = PppoeSessionKey(interface, mac, sid)
            reactor.callLater(0.1, port.terminate, key, "test over")

    port = RawEthernetPort(engine, ifaces, reactor, on_event=on_event,
                           on_session_frame=on_session_frame, tap=tap)
    port.startService()
    out({"event": "ready", "mac": port.local_mac[ifaces[0]].hex()})
    reactor.run()
    """
)

CLIENT_SCRIPT = textwrap.dedent(
    """
    # An independent PPPoE client built from scapy's layers.
    import json, select, sys, time
    from scapy.all import Ether, PPPoED, PPPoED_Tags, PPPoETag, PPPoE, PPP, conf, Raw

    iface, mode = sys.argv[1], sys.argv[2]
    mac = open(f"/sys/class/net/{iface}/address").read().strip()
    sock = conf.L2socket(iface=iface)
    hu = b"scapy-hu-1"

    early = []

    def recv(code, timeout=10.0):
        for p in early:
            if p[PPPoED].code == code:
                return p
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                continue
            p = sock.recv()
            if p is None or PPPoED not in p or p[Ether].src == mac:
                continue
            if p[PPPoED].code == code:
                return p
        raise SystemExit(f"timeout waiting for code {code:#x}")

    def tags(p):
        return {t.tag_type: bytes(t.tag_value) for t in p[PPPoED_Tags].tag_list}

    base = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff", type=0x8863)
    sock.send(base / PPPoED(code=0x09) / PPPoED_Tags(tag_list=[
        PPPoETag(tag_type=0x0101, tag_value=b""), PPPoETag(tag_type=0x0103, tag_value=hu)]))
    pado = recv(0x07)
    t = tags(pado)
    assert t[0x0103] == hu and t[0x0102] == b"broker-ac"
    ac = pado[Ether].src
    padr = Ether(src=mac, dst=ac, type=0x8863) / PPPoED(code=0x19) / PPPoED_Tags(tag_list=[
        PPPoETag(tag_type=0x0101, tag_value=b""), PPPoETag(tag_type=0x0103, tag_value=hu),
        PPPoETag(tag_type=0x0104, tag_value=t[0x0104])])
    sock.send(padr)
    pads = recv(0x65)
    sid = pads[PPPoED].sessionid
    assert sid != 0 and tags(pads)[0x0103] == hu
    print(json.dumps({"client": "pads", "sid": sid}), flush=True)
    # one LCP Echo-Request in the session; the AC runner answers with an Echo-Reply
    lcp = bytes.fromhex("c021") + bytes([9, 1, 0, 8]) + b"\\x00\\x00\\x00\\x01"
    sock.send(Ether(src=mac, dst=ac, type=0x8864) / PPPoE(sessionid=sid) / Raw(lcp))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            continue
        p = sock.recv()
        if p is not None and PPPoED in p:
            early.append(p)
        if p is not None and p[Ether].type == 0x8864 and p[Ether].src == ac:
            reply = bytes(p[PPPoE].payload)[: p[PPPoE].len]
            assert reply[:3] == bytes.fromhex("c0210a"), reply.hex()
            print(json.dumps({"client": "echo_reply"}), flush=True)
            break
    else:
        raise SystemExit("no echo reply")
    if mode == "terminate":
        padt = recv(0xA7)
        assert padt[PPPoED].sessionid == sid
        print(json.dumps({"client": "padt", "sid": sid}), flush=True)
    else:
        sock.send(Ether(src=mac, dst=ac, type=0x8863) / PPPoED(code=0xA7, sessionid=sid) /
                  PPPoED_Tags(tag_list=[]))
        print(json.dumps({"client": "sent_padt", "sid": sid}), flush=True)
    """
)


class _JsonLines:
    """JSON lines from a child's stdout, read by a thread (no lost buffered lines)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                with contextlib.suppress(ValueError):
                    self.queue.put(json.loads(line))
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, want: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                obj = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if obj is None:
                break
            self.seen.append(obj)
            if want in (obj.get("event"), obj.get("client")):
                return obj
        raise AssertionError(f"never saw {want!r}; got {self.seen}")


def _python() -> str:
    return str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["terminate", "client_padt"])
def test_veth_scapy_client_completes_discovery(tmp_path: Path, mode: str) -> None:
    """A scapy client completes discovery, exchanges a session frame and sees the session end
    (PADT from the AC, or its own PADT). (No VLAN variant: this host kernel has no 8021q; the
    adapter treats a sub-interface as any interface, see the unit tests.)"""
    from tests.support import require_root

    require_root()
    from ops.lab.netns import Netns, veth

    runner, client, trace = tmp_path / "ac.py", tmp_path / "client.py", tmp_path / "trace.jsonl"
    runner.write_text(AC_RUNNER)
    client.write_text(CLIENT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Netns("pac") as ac_ns, Netns("pcl") as cl_ns:
        ac_if, cl_if = veth(ac_ns, cl_ns, prefix="p")
        ac = ac_ns.popen(
            [_python(), str(runner), mode, str(trace), ac_if],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ac_out = _JsonLines(ac)
        ac_out.wait_for("ready")
        cl = cl_ns.popen(
            [_python(), str(client), cl_if, mode], stdout=subprocess.PIPE, text=True, env=env
        )
        cl_out = _JsonLines(cl)
        opened = ac_out.wait_for("SessionOpened")
        assert opened["host_uniq"] == b"scapy-hu-1".hex()
        assert opened["if"] == ac_if
        ac_out.wait_for("session_frame")
        cl_out.wait_for("echo_reply")
        if mode == "terminate":
            ended = ac_out.wait_for("SessionTerminated")
            assert ended["by_peer"] is False
            assert cl_out.wait_for("padt")["sid"] == opened["sid"]
        else:
            cl_out.wait_for("sent_padt")
            ended = ac_out.wait_for("SessionTerminated")
            assert ended["by_peer"] is True and ended["sid"] == opened["sid"]
        assert cl.wait(10) == 0
    sent = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {entry[2] for entry in sent if entry[0] == "tx"} == {ac_if}
    assert [
        decode_discovery(bytes.fromhex(e[1])[14:]).code
        for e in sent
        if e[0] == "tx" and bytes.fromhex(e[1])[12:14] == b"\x88\x63"
    ] == [Code.PADO, Code.PADS, Code.PADT][: 3 if mode == "terminate" else 2]


def _tshark_fields(payload: bytes) -> list[str]:
    p = decode_discovery(payload)
    return [
        f"0x{p.code:02x}",
        f"0x{p.session_id:04x}",
        str(len(encode_discovery(p)) - 6),
        ",".join(v.decode() for v in p.all(TagType.SERVICE_NAME)),
        ",".join(v.decode() for v in p.all(TagType.AC_NAME)),
        ",".join(v.hex() for v in p.all(TagType.HOST_UNIQ)),
        ",".join(v.hex() for v in p.all(TagType.AC_COOKIE)),
        ",".join(v.decode() for v in p.all(TagType.GENERIC_ERROR)),
    ]


@pytest.mark.integration
def test_veth_rp_pppoe_client_and_tshark_agree(tmp_path: Path) -> None:
    """The rp-pppoe client (`pppoe -A`, `-U -d`, `-k`) against our AC; tshark decodes the
    frames the adapter saw exactly as our codec does."""
    from tests.support import require_binary, require_root
    from tests.support.pcap import write_pcap

    require_root()
    pppoe = require_binary("pppoe")
    tshark = require_binary("tshark")
    from ops.lab.netns import Netns, veth

    runner, trace = tmp_path / "ac.py", tmp_path / "trace.jsonl"
    runner.write_text(AC_RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Netns("pac") as ac_ns, Netns("pcl") as cl_ns:
        ac_if, cl_if = veth(ac_ns, cl_ns, prefix="p")
        ac = ac_ns.popen(
            [_python(), str(runner), "none", str(trace), ac_if],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ac_out = _JsonLines(ac)
        ac_mac = ac_out.wait_for("ready")["mac"]
        names = cl_ns.run([pppoe, "-I", cl_if, "-t", "2", "-A"], timeout=30).stdout
        assert "Access-Concentrator: broker-ac" in names
        found = cl_ns.run([pppoe, "-I", cl_if, "-t", "2", "-U", "-d"], timeout=30).stdout
        session = found.strip().splitlines()[-1]  # "<sid>:<ac mac>"
        sid, mac = session.split(":", 1)
        assert mac.replace(":", "") == ac_mac
        opened = ac_out.wait_for("SessionOpened")
        assert opened["sid"] == int(sid)
        cl_ns.run([pppoe, "-I", cl_if, "-e", session, "-k"], timeout=30)
        ended = ac_out.wait_for("SessionTerminated")
        assert ended["by_peer"] is True and ended["sid"] == int(sid)

    frames = [bytes.fromhex(json.loads(line)[1]) for line in trace.read_text().splitlines()]
    codes = [decode_discovery(f[14:]).code for f in frames]
    # (the client may retransmit under load: check the kinds, not an exact count)
    assert set(codes) == {Code.PADI, Code.PADO, Code.PADR, Code.PADS, Code.PADT}
    assert codes[-1] is Code.PADT
    pcap = tmp_path / "trace.pcap"
    write_pcap(pcap, [(float(i), f) for i, f in enumerate(frames)])
    fields = ["pppoe.code", "pppoe.session_id", "pppoe.payload_length"] + [
        f"pppoed.tags.{t}"
        for t in ("service_name", "ac_name", "host_uniq", "ac_cookie", "generic_error")
    ]
    cmd = [tshark, "-r", str(pcap), "-T", "fields", "-E", "separator=/t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [row.split("\t") for row in out.splitlines()]
    assert rows == [_tshark_fields(f[14:]) for f in frames]


def test_send_frame_writes_prebuilt_pppoe_payload() -> None:
    port, sockets, _reactor, _ = make_port()
    payload = encode_session_frame(3, b"\xc0\x21\x09\x01\x00\x04")
    port.send_frame("eth1", CLIENT, ETH_P_PPP_SES, payload)
    assert sockets.opened[("eth1", ETH_P_PPP_SES)].sent == [CLIENT + AC_MAC + b"\x88\x64" + payload]
