"""Raw Ethernet adapter + DiscoveryServer + PppLink on a veth pair in two namespaces, against an
independent client built from scapy's PPPoE/PPP layers: discovery, LCP and CHAP-MD5 (RFC 2516,
RFC 1661, RFC 1994).

The AC side is ``ops/lab/pppoe_ppp_runner.py`` (it checks CHAP-MD5 against one password). The
client side is this file run as a script inside the other namespace (``main`` at the bottom):
it builds every frame with scapy, decodes every answer with scapy, asserts on the decoded
layers and prints what it saw as JSON lines for the test to check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
USER = "alice@isp-a.example"
SECRET = "correct horse"
HOST_UNIQ = b"scapy-chap-1"
CLIENT_MAGIC = 0x5CA9C11E
CLIENT_TIMEOUT = 20.0


# -- the scapy client (runs in the client namespace) --------------------------------------
def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class ScapyPppoeClient:
    """A PPPoE client made of scapy layers, driven step by step with deadlines."""

    def __init__(self, iface: str, deadline: float) -> None:
        from scapy.arch import get_if_hwaddr
        from scapy.config import conf

        self.mac: str = get_if_hwaddr(iface)
        self.sock: Any = conf.L2socket(iface=iface)
        self.deadline = deadline
        self.backlog: list[Any] = []
        self.ac: str = "ff:ff:ff:ff:ff:ff"
        self.sid = 0

    def close(self) -> None:
        self.sock.close()

    # receiving ---------------------------------------------------------------------------
    def _next_frame(self) -> Any:
        from scapy.layers.l2 import Ether

        while (left := self.deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            p = self.sock.recv()
            if p is None or Ether not in p or p[Ether].src == self.mac:
                continue
            if p[Ether].type in (0x8863, 0x8864):
                return p
        raise TimeoutError("client deadline passed")

    def recv(self, match: Callable[[Any], bool], what: str) -> Any:
        for i, p in enumerate(self.backlog):
            if match(p):
                return self.backlog.pop(i)
        while True:
            try:
                p = self._next_frame()
            except TimeoutError:
                raise SystemExit(f"timeout waiting for {what}; backlog {self.backlog}") from None
            if match(p):
                return p
            if not self._answer_echo(p):
                self.backlog.append(p)

    def ppp_of(self, p: Any) -> Any:
        """The PPP layer of a session frame in our session (PPPoE padding cut off), or None."""
        from scapy.layers.l2 import Ether
        from scapy.layers.ppp import PPP, PPPoE

        if p[Ether].type != 0x8864 or PPPoE not in p or p[PPPoE].sessionid != self.sid:
            return None
        return PPP(bytes(p[PPPoE].payload)[: p[PPPoE].len])

    def recv_ppp(self, proto: int, codes: tuple[int, ...], what: str) -> Any:
        def match(p: Any) -> bool:
            ppp = self.ppp_of(p)
            return ppp is not None and ppp.proto == proto and ppp.payload.code in codes

        ppp = self.ppp_of(self.recv(match, what))
        assert ppp is not None
        return ppp

    def recv_discovery(self, code: int, what: str) -> Any:
        from scapy.layers.l2 import Ether
        from scapy.layers.ppp import PPPoED

        def match(p: Any) -> bool:
            return p[Ether].type == 0x8863 and PPPoED in p and p[PPPoED].code == code

        return self.recv(match, what)

    def _answer_echo(self, p: Any) -> bool:
        from scapy.layers.ppp import PPP_LCP_Echo

        ppp = self.ppp_of(p)
        if ppp is None or ppp.proto != 0xC021 or ppp.payload.code != 9:
            return False
        self.send_ppp(PPP_LCP_Echo(code=10, id=ppp.payload.id, magic_number=CLIENT_MAGIC))
        return True

    # sending -----------------------------------------------------------------------------
    def send_discovery(self, code: int, tags: list[tuple[int, bytes]], sid: int = 0) -> None:
        from scapy.layers.l2 import Ether
        from scapy.layers.ppp import PPPoED, PPPoED_Tags, PPPoETag

        tag_list = [PPPoETag(tag_type=t, tag_value=v) for t, v in tags]
        frame = Ether(src=self.mac, dst=self.ac, type=0x8863) / PPPoED(code=code, sessionid=sid)
        self.sock.send(frame / PPPoED_Tags(tag_list=tag_list))

    def send_ppp(self, layer: Any) -> None:
        from scapy.layers.l2 import Ether
        from scapy.layers.ppp import PPP, PPPoE

        frame = Ether(src=self.mac, dst=self.ac, type=0x8864) / PPPoE(sessionid=self.sid)
        self.sock.send(frame / PPP() / layer)


def tags_of(p: Any) -> dict[int, bytes]:
    from scapy.layers.ppp import PPPoED_Tags

    return {int(t.tag_type): bytes(t.tag_value) for t in p[PPPoED_Tags].tag_list}


def lcp_options(conf_layer: Any) -> dict[str, int]:
    from scapy.layers.ppp import (
        PPP_LCP_Auth_Protocol_Option,
        PPP_LCP_Magic_Number_Option,
        PPP_LCP_MRU_Option,
    )

    seen: dict[str, int] = {}
    for opt in conf_layer.options:
        if isinstance(opt, PPP_LCP_MRU_Option):
            seen["mru"] = int(opt.max_recv_unit)
        elif isinstance(opt, PPP_LCP_Auth_Protocol_Option):
            seen["auth_protocol"] = int(opt.auth_protocol)
            seen["algorithm"] = int(opt.algorithm)
        elif isinstance(opt, PPP_LCP_Magic_Number_Option):
            seen["magic"] = int(opt.magic_number)
        else:
            seen[f"type{int(opt.type)}"] = 1
    return seen


def run_client(iface: str, user: str, secret: str) -> None:
    from scapy.layers.l2 import Ether
    from scapy.layers.ppp import (
        PPP_CHAP,
        PPP_CHAP_ChallengeResponse,
        PPP_LCP_Configure,
        PPP_LCP_Magic_Number_Option,
        PPP_LCP_MRU_Option,
        PPP_LCP_Terminate,
        PPPoED,
    )

    c = ScapyPppoeClient(iface, time.monotonic() + CLIENT_TIMEOUT)
    try:
        # Discovery (RFC 2516 section 5)
        c.send_discovery(0x09, [(0x0101, b""), (0x0103, HOST_UNIQ)])
        pado = c.recv_discovery(0x07, "PADO")
        offered = tags_of(pado)
        assert offered[0x0103] == HOST_UNIQ and 0x0104 in offered, offered
        c.ac = pado[Ether].src
        emit({"client": "pado", "ac_name": offered[0x0102].decode(), "ac": c.ac})
        cookie = offered[0x0104]
        c.send_discovery(0x19, [(0x0101, b""), (0x0103, HOST_UNIQ), (0x0104, cookie)])
        pads = c.recv_discovery(0x65, "PADS")
        c.sid = int(pads[PPPoED].sessionid)
        assert c.sid != 0 and tags_of(pads)[0x0103] == HOST_UNIQ
        emit({"client": "pads", "sid": c.sid})

        # LCP (RFC 1661 section 5.1-5.2): ack theirs, get ours acked
        ours = [
            PPP_LCP_MRU_Option(max_recv_unit=1492),
            PPP_LCP_Magic_Number_Option(magic_number=CLIENT_MAGIC),
        ]
        c.send_ppp(PPP_LCP_Configure(code=1, id=0x41, options=ours))
        acked_ours = acked_theirs = False
        while not (acked_ours and acked_theirs):
            ppp = c.recv_ppp(0xC021, (1, 2, 3, 4), "LCP Configure-*")
            lcp = ppp[PPP_LCP_Configure]
            if lcp.code == 1:
                emit({"client": "lcp_request", "id": int(lcp.id), "options": lcp_options(lcp)})
                c.send_ppp(PPP_LCP_Configure(code=2, id=lcp.id, options=lcp.options))
                acked_theirs = True
            elif lcp.code == 2 and lcp.id == 0x41:
                assert lcp_options(lcp) == {"mru": 1492, "magic": CLIENT_MAGIC}
                emit({"client": "lcp_ack", "id": int(lcp.id)})
                acked_ours = True
            else:
                raise SystemExit(f"unexpected LCP {lcp.code} for our request: {lcp!r}")

        # CHAP-MD5 (RFC 1994 section 4.1)
        result = None
        while result is None:
            ppp = c.recv_ppp(0xC223, (1, 3, 4), "CHAP")
            if ppp.payload.code == 1:
                ch = ppp[PPP_CHAP_ChallengeResponse]
                value = bytes(ch.value)
                assert ch.value_size == len(value) >= 1
                emit(
                    {
                        "client": "chap_challenge",
                        "id": int(ch.id),
                        "size": len(value),
                        "name": bytes(ch.optional_name).decode(),
                    }
                )
                digest = hashlib.md5(bytes([ch.id]) + secret.encode() + value).digest()
                c.send_ppp(
                    PPP_CHAP_ChallengeResponse(
                        code=2, id=ch.id, value=digest, optional_name=user.encode()
                    )
                )
            else:
                result = ppp[PPP_CHAP]
        emit(
            {
                "client": "chap_result",
                "code": int(result.code),
                "id": int(result.id),
                "message": bytes(result.data).decode(),
            }
        )

        if result.code == 3:
            # Success: we end the link (Terminate-Request), the AC acks and sends a PADT.
            c.send_ppp(PPP_LCP_Terminate(code=5, id=0x42))
            ack = c.recv_ppp(0xC021, (6,), "LCP Terminate-Ack")
            emit({"client": "lcp_terminate_ack", "id": int(ack.payload.id)})
        else:
            # Failure: the AC terminates LCP; we ack, then the PADT follows.
            req = c.recv_ppp(0xC021, (5,), "LCP Terminate-Request")
            emit({"client": "lcp_terminate_request", "id": int(req.payload.id)})
            c.send_ppp(PPP_LCP_Terminate(code=6, id=req.payload.id))
        padt = c.recv_discovery(0xA7, "PADT")
        assert padt[Ether].src == c.ac
        emit({"client": "padt", "sid": int(padt[PPPoED].sessionid)})
    finally:
        c.close()


# -- the test (host side) -----------------------------------------------------------------
class JsonLines:
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

    def wait_for(self, key: str, want: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                obj = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if obj is None:
                break
            self.seen.append(obj)
            if obj.get(key) == want:
                return obj
        raise AssertionError(f"never saw {key}={want!r}; got {self.seen}")


def _python() -> str:
    return str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


@pytest.mark.integration
@pytest.mark.parametrize("password", [SECRET, "wrong password"], ids=["accept", "reject"])
def test_scapy_client_discovery_lcp_chap(tmp_path: Path, password: str) -> None:
    from tests.support import require_root

    require_root()
    from ops.lab.netns import Netns, veth

    good = password == SECRET
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    client_err = tmp_path / "client.err"
    with Netns("chac") as ac_ns, Netns("chcl") as cl_ns:
        ac_if, cl_if = veth(ac_ns, cl_ns, prefix="c")
        runner = ["-m", "ops.lab.pppoe_ppp_runner", "--interface", ac_if, "--password", SECRET]
        ac = ac_ns.popen(
            [_python(), *runner, "--timeout", "40"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        ac_out = JsonLines(ac)
        ac_mac = ac_out.wait_for("event", "ready")["mac"]
        with client_err.open("w") as err:
            cl = cl_ns.popen(
                [_python(), str(Path(__file__)), cl_if, USER, password],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        cl_out = JsonLines(cl)

        pado = cl_out.wait_for("client", "pado")
        assert pado["ac_name"] == "broker-ac" and pado["ac"].replace(":", "") == ac_mac
        sid = cl_out.wait_for("client", "pads")["sid"]
        opened = ac_out.wait_for("event", "SessionOpened")
        assert opened["sid"] == sid and opened["interface"] == ac_if
        assert opened["host_uniq"] == HOST_UNIQ.hex()

        request = cl_out.wait_for("client", "lcp_request")
        # our Configure-Request asks for CHAP with MD5 (RFC 1994 section 3) and MRU 1492
        assert request["options"]["auth_protocol"] == 0xC223
        assert request["options"]["algorithm"] == 5
        assert request["options"]["mru"] == 1492
        assert request["options"]["magic"] != 0
        cl_out.wait_for("client", "lcp_ack")
        assert ac_out.wait_for("event", "LcpOpened")["peer_mru"] == 1492

        challenge = cl_out.wait_for("client", "chap_challenge")
        assert challenge["name"] == "l2tp-broker" and challenge["size"] >= 16
        creds = ac_out.wait_for("event", "CredentialsReceived")
        assert creds["username"] == USER and creds["kind"] == "ChapCredentials"
        assert creds["ident"] == challenge["id"] and creds["algorithm"] == 5
        assert creds["verdict"] == ("accept" if good else "reject")

        result = cl_out.wait_for("client", "chap_result")
        assert result["id"] == challenge["id"]
        if good:
            assert result["code"] == 3  # Success
            cl_out.wait_for("client", "lcp_terminate_ack")
            ended = ac_out.wait_for("event", "LinkTerminated")
            assert ended["reason"] == "peer-terminate" and ended["by_peer"] is True
        else:
            assert result["code"] == 4  # Failure
            cl_out.wait_for("client", "lcp_terminate_request")
            ended = ac_out.wait_for("event", "LinkTerminated")
            assert ended["reason"] == "auth-rejected" and ended["by_peer"] is False
        assert ended["sid"] == sid
        assert cl_out.wait_for("client", "padt")["sid"] == sid
        try:
            code = cl.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, client_err.read_text()


if __name__ == "__main__":
    run_client(sys.argv[1], sys.argv[2], sys.argv[3])
