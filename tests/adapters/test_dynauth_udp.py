"""Disconnect/CoA listener: in-memory transport, and radclient against the real listener."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from twisted.internet import task
from twisted.internet.protocol import DatagramProtocol

from broker.adapters.dynauth_udp import DynAuthListener
from broker.radius.constants import Attr, Code
from broker.radius.dynauth import (
    DisconnectOutcome,
    DynAuthClient,
    DynAuthServer,
    SessionCriteria,
)
from broker.radius.packet import decode_packet, encode_request
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]


class FakeHost:
    port = 3799


class FakePort:
    def __init__(self, proto: DatagramProtocol) -> None:
        self.proto = proto
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def stopListening(self) -> None:
        pass

    def getHost(self) -> FakeHost:
        return FakeHost()


class FakeReactor(task.Clock):
    port: FakePort

    def listenUDP(self, port: int, proto: DatagramProtocol, interface: str = "") -> FakePort:
        self.port = FakePort(proto)
        return self.port


def test_listener_answers_and_survives_garbage() -> None:
    calls: list[SessionCriteria] = []

    def cb(c: SessionCriteria) -> DisconnectOutcome:
        calls.append(c)
        return DisconnectOutcome.DISCONNECTED

    engine = DynAuthServer(
        [DynAuthClient("das", "127.0.0.1", b"s")],
        nas_ip=None,
        nas_identifier="lac",
        find_and_disconnect=cb,
    )
    r = FakeReactor()
    r.advance(1_700_000_000)
    listener = DynAuthListener(engine, reactor=r)
    listener.startService()
    assert listener.port == 3799
    proto = r.port.proto
    proto.datagramReceived(b"\x28garbage", ("127.0.0.1", 5000))
    req = encode_request(Code.DISCONNECT_REQUEST, 7, [(Attr.USER_NAME, b"bob")], b"s")
    proto.datagramReceived(req, ("127.0.0.1", 5000))
    ((reply, addr),) = r.port.sent
    assert addr == ("127.0.0.1", 5000)
    assert decode_packet(reply).code == Code.DISCONNECT_ACK
    assert calls == [SessionCriteria(user_name="bob")]
    assert engine.counters["malformed"] == 1
    listener.stopService()


def _radclient(port: int, secret: str, kind: str, attrs: str, tries: int = 3) -> str:
    res = subprocess.run(
        ["radclient", "-x", "-r", str(tries), "-t", "1", f"127.0.0.1:{port}", kind, secret],
        input=attrs,
        capture_output=True,
        text=True,
        timeout=20,
    )
    return res.stdout + res.stderr


@pytest.mark.integration
def test_radclient_disconnect_ack_and_nak() -> None:
    require_binary("radclient")
    secret = "das-" + os.urandom(4).hex()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ops.lab.acct_driver",
            "dynauth",
            "--port",
            "0",
            "--secret",
            secret,
            "--session",
            "alice@isp.example=n1-1=203.0.113.5",
            "--session",
            "bob@isp.example=n1-2=203.0.113.6",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while not line.startswith("READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "listener exited"
        port = int(line.split()[1])
        out = _radclient(port, secret, "disconnect", 'User-Name = "alice@isp.example"\n')
        assert "Received Disconnect-ACK" in out, out
        assert proc.stdout.readline().strip() == "DISCONNECTED n1-1"
        out = _radclient(port, secret, "disconnect", 'User-Name = "alice@isp.example"\n')
        assert "Received Disconnect-NAK" in out, out
        assert "Session-Context-Not-Found" in out, out
        out = _radclient(port, secret, "disconnect", "Framed-IP-Address = 203.0.113.6\n")
        assert "Received Disconnect-ACK" in out, out
        assert proc.stdout.readline().strip() == "DISCONNECTED n1-2"
        out = _radclient(port, secret, "coa", 'User-Name = "bob@isp.example"\n')
        assert "Received CoA-NAK" in out and "Unsupported-Service" in out, out
        out = _radclient(port, "wrong-secret", "disconnect", 'User-Name = "x"\n', tries=1)
        assert "No reply from server" in out or "Received" not in out, out
    finally:
        proc.kill()
        proc.wait(timeout=10)
