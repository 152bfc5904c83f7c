"""Processes for tests/dataplane/test_fastpath_netns.py, one per network namespace.

    splice_node.py fwd IFNAME CPE_MAC [direct] [norings]   FastSplice on the broker's adapters
    splice_node.py lns N                         receive N upstream datagrams, send downstream
    splice_node.py cpe IFNAME DST_MAC N M        send N session frames, receive M

Each prints ``ready`` once its sockets are open, then one JSON line with what it saw.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

BRK_IP, LNS_IP, PORT = "198.51.100.1", "198.51.100.2", 1701
#: (pppoe session id, our tunnel id, our session id, peer tunnel id, peer session id, seq)
SESSIONS = [(0x0101, 100, 201, 300, 401, False), (0x0102, 100, 202, 300, 402, True)]
UNSPLICED_SID = 0x0999


def up_payload(i: int) -> bytes:
    return b"\x00\x21" + f"up-{i}".encode() + bytes(range(i % 7))


def down_messages() -> list[bytes]:
    """Downstream data messages: FF 03 or not, L and S bits, both sessions, one unknown."""
    out = []
    for n, (_, tid, sid, _, _, _) in enumerate(SESSIONS):
        ppp = b"\xc0\x21" + f"down-{n}".encode()
        out.append(struct.pack("!HHH", 0x0002, tid, sid) + b"\xff\x03" + ppp)
        out.append(struct.pack("!HHH", 0x0002, tid, sid) + ppp)
        body = struct.pack("!HHHH", tid, sid, 7, 0) + b"\xff\x03" + ppp
        out.append(struct.pack("!HH", 0x4802, 4 + len(body)) + body)
    out.append(struct.pack("!HHH", 0x0002, 100, 999) + b"\xff\x03\x00\x21lost")
    return out


def fwd(ifname: str, cpe_mac: str, direct: bool, rings: bool = True) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor as _reactor

    from broker.adapters.l2tp_udp import L2tpUdpAdapter
    from broker.adapters.rawether import RawEthernetPort
    from broker.dataplane.fastpath import FastSplice
    from broker.wire import MacAddress

    reactor: Any = _reactor
    seen: dict[str, list[str]] = {"control": [], "unspliced": []}

    class Disc:
        def set_local_mac(self, interface: str, mac: Any) -> None:
            pass

        def receive_discovery(self, *args: Any) -> None:
            pass

        def frames_to_send(self) -> list[Any]:
            return []

        def next_event(self) -> None:
            return None

    class Ep:
        def receive_datagram(self, data: bytes, peer: Any, now: float) -> None:
            seen["control"].append(data.hex())

        def datagrams_to_send(self, now: float) -> list[Any]:
            return []

        def get_timer(self) -> None:
            return None

        def handle_timer(self, now: float) -> None:
            pass

        def next_event(self) -> None:
            return None

    holder: dict[str, Any] = {}

    def unspliced(interface: str, mac: Any, sid: int, ppp: bytes) -> None:
        if not splice.upstream(interface, mac, sid, ppp):
            seen["unspliced"].append(f"{sid:04x}:{ppp.hex()}")

    splice = FastSplice(
        lambda d, p: holder["l2tp"].transport.write(d, p),
        lambda i, m, e, f: holder["raw"].send_frame(i, m, e, f),
    )
    raw = RawEthernetPort(Disc(), [ifname], reactor, on_session_frame=unspliced)  # type: ignore[arg-type]
    l2tp = L2tpUdpAdapter(Ep(), reactor, BRK_IP, PORT, on_data=lambda d, p: splice.downstream(d))
    holder["raw"], holder["l2tp"] = raw, l2tp
    mac = MacAddress(bytes.fromhex(cpe_mac.replace(":", "")))
    for call_id, (psid, tid, sid, ptid, pssid, seq) in enumerate(SESSIONS):
        splice.attach(
            call_id=call_id, interface=ifname, mac=mac, pppoe_session_id=psid, tunnel_id=tid,
            session_id=sid, peer_tunnel_id=ptid, peer_session_id=pssid, peer=(LNS_IP, PORT),
            sequencing=seq,
        )  # fmt: skip

    def start() -> None:
        l2tp.start()
        raw.startService()
        # direct: the path to the LNS found by install() itself (linux_egress)
        splice.install(raw, l2tp, tx_ring=rings, l2tp_ring=rings, direct=direct)
        if direct and not splice.features["direct_egress"]:
            print("no egress", flush=True)
            reactor.stop()
            return
        print("ready", flush=True)

    def wait_stdin() -> None:
        sys.stdin.read()
        reactor.callFromThread(lambda: reactor.running and reactor.stop())

    threading.Thread(target=wait_stdin, daemon=True).start()
    reactor.callWhenRunning(start)
    reactor.run()
    features = splice.features
    splice.uninstall()
    report = {
        "features": features,
        "calls": {str(i): splice.counters_for(i) for i in range(len(SESSIONS))},
        "splice": splice.counters,
        **seen,
    }
    print(json.dumps(report), flush=True)


def lns(n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LNS_IP, PORT))
    s.settimeout(0.2)
    print("ready", flush=True)
    got: list[str] = []
    deadline = time.monotonic() + 15
    while len(got) < n and time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(65535)
        except TimeoutError:
            continue
        if addr == (BRK_IP, PORT):
            got.append(data.hex())
    for msg in down_messages():
        s.sendto(msg, (BRK_IP, PORT))
    # one control message (T, L, S bits): must reach the L2TP engine, not the splice
    s.sendto(bytes.fromhex("c802000c0000000000000000"), (BRK_IP, PORT))
    print(json.dumps({"up": got}), flush=True)


def cpe(ifname: str, dst_mac: str, n: int, m: int) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8864))
    s.bind((ifname, 0x8864))
    s.settimeout(0.2)
    src = bytes(s.getsockname()[4])[:6]
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    print("ready", flush=True)
    sids = [sess[0] for sess in SESSIONS]
    for i in range(n):
        ppp = up_payload(i)
        sid = sids[i % len(sids)]
        s.send(dst + src + b"\x88\x64\x11\x00" + struct.pack("!HH", sid, len(ppp)) + ppp)
    ppp = b"\xc0\x21unspliced"
    s.send(dst + src + b"\x88\x64\x11\x00" + struct.pack("!HH", UNSPLICED_SID, len(ppp)) + ppp)
    got: list[str] = []
    deadline = time.monotonic() + 15
    while len(got) < m and time.monotonic() < deadline:
        try:
            frame = s.recv(65535)
        except TimeoutError:
            continue
        got.append(frame.hex())
    print(json.dumps({"down": got, "mac": src.hex()}), flush=True)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "fwd":
        fwd(args[0], args[1], "direct" in args[2:], "norings" not in args[2:])
    elif role == "lns":
        lns(int(args[0]))
    else:
        cpe(args[0], args[1], int(args[2]), int(args[3]))
