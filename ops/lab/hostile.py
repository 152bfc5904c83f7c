"""Hostile peers for the lab: floods, forged and truncated PPPoE, L2TP and RADIUS packets.

Every generator builds its packets with the project's own codecs (``broker.pppoe``,
``broker.l2tp``, ``broker.radius``) or, for deliberately broken packets, by hand. The senders
need a socket inside a lab namespace, so they run as a command in that namespace::

    ip netns exec SUB  python -m ops.lab.hostile padi-flood --interface IF --count 20000
    ip netns exec LNS  python -m ops.lab.hostile udp --target 198.51.100.1:1701 --hex ...
    ip netns exec LAC  python -m ops.lab.hostile radius-proxy --listen ... --upstream ...

:class:`HostileLab` is a :class:`~ops.lab.broker_lab.BrokerLab` with the knobs the hostile
input and hardening tests need: secrets in files (mode 0600), debug logging, a RADIUS
server address replaced by the forging proxy, an extra realm whose LNS secret is wrong, and
the broker started as an unprivileged user with only CAP_NET_RAW and CAP_NET_ADMIN.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.l2tp.avps import (
    bytes_avp,
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage, encode_control
from broker.l2tp.constants import AvpType, MessageType
from broker.pppoe.codec import DiscoveryPacket, Tag, encode_discovery
from broker.pppoe.constants import Code as PppoeCode
from broker.pppoe.constants import TagType
from broker.radius.constants import Attr, Code
from broker.radius.packet import encode_request, encode_response
from ops.lab.broker_lab import LAC_ADDR, LNS_B, BrokerLab
from ops.lab.netns import poll, stop_process, venv_python

ROOT = Path(__file__).resolve().parents[2]
ETH_P_PPP_DISC = 0x8863
ETH_P_PPP_SES = 0x8864
BROADCAST = b"\xff" * 6
#: The extra address an "unknown" L2TP peer / RADIUS client sends from (inside lns-a).
STRANGER = "198.51.100.9"
DYNAUTH_SECRET = "lab-dynauth-secret"
COOKIE_SECRET = "lab-cookie-secret-0123456789abcdef"
WRONG_TUNNEL_SECRET = "not-the-lns-secret"
#: A realm routed to LNS B with the wrong tunnel secret (Challenge/Response fails).
WRONG_SECRET_REALM = "wrong-secret.example"


# -- frames and packets ------------------------------------------------------------------------


def random_mac(rng: random.Random) -> bytes:
    """A unicast, locally administered MAC address."""
    first = (rng.randrange(256) & 0xFC) | 0x02
    return bytes([first]) + rng.randbytes(5)


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + payload


def padi(src: bytes, rng: random.Random) -> bytes:
    tags = (Tag(TagType.SERVICE_NAME, b""), Tag(TagType.HOST_UNIQ, rng.randbytes(8)))
    return ethernet(BROADCAST, src, ETH_P_PPP_DISC, encode_discovery(DiscoveryPacket(
        PppoeCode.PADI, 0, tags)))  # fmt: skip


def padr(dst: bytes, src: bytes, rng: random.Random) -> bytes:
    """A PADR whose AC-Cookie the broker never issued."""
    tags = (Tag(TagType.SERVICE_NAME, b""), Tag(TagType.AC_COOKIE, rng.randbytes(24)))
    return ethernet(dst, src, ETH_P_PPP_DISC, encode_discovery(DiscoveryPacket(
        PppoeCode.PADR, 0, tags)))  # fmt: skip


def broken_pppoe_frames(dst: bytes, src: bytes, rng: random.Random) -> list[bytes]:
    """Truncated, oversized-length and otherwise malformed PPPoE discovery and session frames."""
    good = encode_discovery(DiscoveryPacket(PppoeCode.PADI, 0, (Tag(TagType.SERVICE_NAME, b""),)))
    out = [
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, b""),  # no PPPoE header at all
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, good[:3]),  # truncated header
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, good[:4] + b"\xff\xff" + good[6:]),  # LENGTH>
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, good[:6] + b"\x01\x01\x00\x10"),  # tag overrun
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, b"\x22" + good[1:]),  # wrong version/type
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, b"\x11\x99" + good[2:]),  # unknown code
        # a PADI padded to the full Ethernet payload with 400 tags
        ethernet(BROADCAST, src, ETH_P_PPP_DISC, encode_discovery(DiscoveryPacket(
            PppoeCode.PADI, 0, tuple(Tag(TagType.HOST_UNIQ, b"") for _ in range(370))))),
        ethernet(dst, src, ETH_P_PPP_SES, b"\x11\x00"),  # truncated session header
        ethernet(dst, src, ETH_P_PPP_SES, b"\x11\x00\x12\x34\xff\xff\xc0\x21"),  # LENGTH>
        ethernet(dst, src, ETH_P_PPP_SES, b"\x11\x00\x00\x00\x00\x02\xc0\x21"),  # session id 0
        ethernet(dst, src, ETH_P_PPP_SES, b"\x11\x00" + rng.randbytes(2) + b"\x05\xd4"
                 + rng.randbytes(1492)),  # full-size frame for a session nobody has
        ethernet(dst, src, 0x8100, b"\x00\x05\x88\x63" + good),  # VLAN-tagged discovery
    ]  # fmt: skip
    return out


def l2tp_control(
    message_type: MessageType | None,
    tunnel_id: int,
    session_id: int = 0,
    *,
    ns: int = 0,
    nr: int = 0,
    avps: Sequence[Any] = (),
) -> bytes:
    return encode_control(
        ControlMessage(
            tunnel_id=tunnel_id, session_id=session_id, ns=ns, nr=nr,
            message_type=message_type, avps=tuple(avps),
        )
    )  # fmt: skip


def sccrq(assigned_tunnel_id: int, host: str = "stranger") -> bytes:
    return l2tp_control(
        MessageType.SCCRQ,
        0,
        avps=(
            protocol_version_avp(),
            str_avp(AvpType.HOST_NAME, host),
            uint32_avp(AvpType.FRAMING_CAPABILITIES, 3),
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, assigned_tunnel_id),
        ),
    )


def stopccn(tunnel_id: int, assigned_tunnel_id: int, *, ns: int, nr: int) -> bytes:
    return l2tp_control(
        MessageType.StopCCN,
        tunnel_id,
        ns=ns,
        nr=nr,
        avps=(uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, assigned_tunnel_id), result_code_avp(1)),
    )


def cdn(tunnel_id: int, session_id: int, assigned_session_id: int, *, ns: int, nr: int) -> bytes:
    return l2tp_control(
        MessageType.CDN,
        tunnel_id,
        session_id,
        ns=ns,
        nr=nr,
        avps=(result_code_avp(3), uint16_avp(AvpType.ASSIGNED_SESSION_ID, assigned_session_id)),
    )


def l2tp_data(tunnel_id: int, session_id: int, ppp: bytes) -> bytes:
    """A data message without the optional fields (RFC 2661 3.1)."""
    return struct.pack("!HHH", 0x0002, tunnel_id, session_id) + b"\xff\x03" + ppp


def broken_l2tp_datagrams(tunnel_id: int, rng: random.Random) -> list[bytes]:
    """Truncated, oversized and inconsistent L2TP datagrams addressed to ``tunnel_id``."""
    hello = l2tp_control(MessageType.HELLO, tunnel_id, ns=rng.randrange(1 << 16))
    return [
        b"\xc8",  # one octet
        hello[:6],  # truncated control header
        hello[:2] + b"\xff\xff" + hello[4:],  # Length beyond the datagram
        hello[:2] + b"\x00\x08" + hello[4:],  # Length shorter than the header
        hello[:12] + b"\x80\x40\x00\x00\x00\x00",  # AVP length 64 in 6 octets
        hello[:12] + b"\x80\x03\x00\x00\x00\x00",  # AVP length below 6
        b"\xc8\x03" + hello[2:],  # version 3 (L2TPv3) on a v2 port
        struct.pack("!HH", 0x4002, 0xFFFF) + rng.randbytes(8),  # data, Length > datagram
        struct.pack("!HH", 0x0002, tunnel_id),  # data header without session id
        l2tp_data(tunnel_id, rng.randrange(1, 1 << 16), rng.randbytes(60000)),  # oversized
        l2tp_control(MessageType.HELLO, tunnel_id, ns=1, avps=(bytes_avp(
            AvpType.RANDOM_VECTOR, rng.randbytes(1000)),) * 60),  # 60 kB of AVPs
    ]  # fmt: skip


def forged_access_reply(
    identifier: int, request_authenticator: bytes, secret: bytes, kind: str
) -> bytes:
    """An Access-Reject the broker must drop: ``wrong-auth`` (random Response Authenticator)
    or ``no-ma`` (a correct Response Authenticator but no Message-Authenticator)."""
    attrs = [(Attr.REPLY_MESSAGE, b"forged")]
    if kind == "wrong-auth":
        raw = bytearray(
            encode_response(Code.ACCESS_REJECT, identifier, attrs, secret, request_authenticator)
        )
        raw[4:20] = secrets.token_bytes(16)
        return bytes(raw)
    if kind == "no-ma":
        return encode_response(
            Code.ACCESS_REJECT, identifier, attrs, secret, request_authenticator,
            add_message_authenticator=False,
        )  # fmt: skip
    raise ValueError(kind)


def disconnect_request(user: str, secret: bytes, identifier: int = 7) -> bytes:
    return encode_request(
        Code.DISCONNECT_REQUEST,
        identifier,
        [(Attr.USER_NAME, user.encode()), (Attr.NAS_IP_ADDRESS, socket.inet_aton(LAC_ADDR))],
        secret,
        add_message_authenticator=True,
    )


# -- senders (run inside a namespace) -----------------------------------------------------------


def flood(
    interface: str, kind: str, count: int, dst: bytes, seed: int, duration: float = 0.0
) -> dict[str, Any]:
    """Send ``count`` PADI (broadcast) or PADR (to ``dst``) frames from random MACs as fast
    as the socket takes them; with ``duration`` > 0, keep going for that many seconds.
    Up to 65536 distinct source MACs (more than the broker's PADI rate table holds)."""
    rng = random.Random(seed)
    frames = [
        padi(random_mac(rng), rng) if kind == "padi" else padr(dst, random_mac(rng), rng)
        for _ in range(min(count, 65536) if count else 65536)
    ]
    sent = errors = 0
    start = time.monotonic()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        i = 0
        while i < count or (duration > 0 and time.monotonic() - start < duration):
            try:
                s.send(frames[i % len(frames)])
                sent += 1
            except OSError:  # ENOBUFS under load: the frame is lost, go on
                errors += 1
            i += 1
    seconds = time.monotonic() - start
    return {"sent": sent, "errors": errors, "seconds": round(seconds, 3)}


def send_frames(interface: str, frames: Sequence[bytes]) -> int:
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((interface, 0))
        for f in frames:
            with contextlib.suppress(OSError):
                s.send(f)
                sent += 1
    return sent


def send_udp(
    target: tuple[str, int],
    payloads: Sequence[bytes],
    *,
    source: tuple[str, int] = ("0.0.0.0", 0),
    wait: float = 0.0,
) -> list[str]:
    """Send UDP datagrams from ``source`` (spoofed with a raw socket when its port is taken);
    return the hex of every answer received within ``wait`` seconds."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(source)
    except OSError:
        sock.close()
        _send_raw_udp(target, payloads, source)
        return []
    answers = []
    with sock:
        for p in payloads:
            with contextlib.suppress(OSError):
                sock.sendto(p, target)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if ready:
                answers.append(sock.recv(65535).hex())
    return answers


def _send_raw_udp(
    target: tuple[str, int], payloads: Sequence[bytes], source: tuple[str, int]
) -> None:
    """UDP from an address:port another process owns (IP header by the kernel, checksum 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as s:
        s.bind((source[0], 0))
        for p in payloads:
            header = struct.pack("!HHHH", source[1], target[1], 8 + len(p), 0)
            with contextlib.suppress(OSError):
                s.sendto(header + p, (target[0], 0))


# -- the forging RADIUS proxy ------------------------------------------------------------------


@dataclass
class ProxyStats:
    requests: int = 0
    genuine_replies: int = 0
    forged_sent: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str) -> None:
        self.forged_sent[kind] = self.forged_sent.get(kind, 0) + 1


def radius_proxy(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    secret: bytes,
    report: Path,
    replay_user: str = "nobody-here@isp-a.example",
) -> None:
    """Relay Access-Requests to ``upstream``; before each genuine reply, send the broker a
    reply with a wrong Response Authenticator, one without Message-Authenticator, an old
    genuine Access-Reject (obtained at start for ``replay_user``) with the id rewritten, the
    genuine reply truncated to 19 octets and with 4 kB appended; after it, the genuine reply
    again. Writes ``report`` (JSON) after every reply; runs until SIGTERM."""
    stats = ProxyStats()
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(listen)
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind((listen[0], 0))
    # An old genuine reply to replay: an Access-Reject for a user nobody knows.
    old = encode_request(
        Code.ACCESS_REQUEST, 99,
        [(Attr.USER_NAME, replay_user.encode()), (Attr.USER_PASSWORD, b"wrong"),
         (Attr.NAS_IP_ADDRESS, socket.inet_aton(LAC_ADDR))],
        secret,
    )  # fmt: skip
    old_reply = b""
    for _ in range(10):
        back.sendto(old, upstream)
        ready, _, _ = select.select([back], [], [], 1.0)
        if ready:
            old_reply = back.recv(4096)
            break
    pending: dict[int, tuple[tuple[str, int], bytes, bytes]] = {}  # id -> (peer, auth, raw)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)

    def write_report() -> None:
        data = {"requests": stats.requests, "genuine_replies": stats.genuine_replies,
                "forged_sent": stats.forged_sent, "have_old_reply": bool(old_reply)}  # fmt: skip
        tmp = report.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(report)

    write_report()
    while not stopping:
        ready, _, _ = select.select([front, back], [], [], 0.2)
        for s in ready:
            data, peer = s.recvfrom(65535)
            if len(data) < 20:
                continue
            if s is front:
                stats.requests += 1
                pending[data[1]] = (peer, data[4:20], data)
                back.sendto(data, upstream)
                continue
            req = pending.pop(data[1], None)
            if req is None:
                continue
            broker, auth, _raw = req
            for kind in ("wrong-auth", "no-ma"):
                front.sendto(forged_access_reply(data[1], auth, secret, kind), broker)
                stats.note(kind)
            if old_reply:
                front.sendto(old_reply[:1] + data[1:2] + old_reply[2:], broker)
                stats.note("replayed")
            front.sendto(data[:19], broker)
            stats.note("truncated")
            big = len(data) + 4096  # Length beyond RFC 2865's 4096-octet maximum
            front.sendto(data[:2] + big.to_bytes(2, "big") + data[4:] + bytes(4096), broker)
            stats.note("oversized")
            front.sendto(data, broker)
            stats.genuine_replies += 1
            front.sendto(data, broker)  # the genuine reply replayed once the call has it
            stats.note("replayed-genuine")
            write_report()
    write_report()


# -- the lab -------------------------------------------------------------------------------------


def _secret_file(path: Path, value: str, uid: int = 0, gid: int = 0) -> str:
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    os.chown(path, uid, gid)
    return f"file:{path}"


class HostileLab(BrokerLab):
    """BrokerLab with secrets in 0600 files, debug logs, an optional forging RADIUS proxy in
    front of FreeRADIUS, a wrong-secret realm, and an optional unprivileged broker."""

    def __init__(
        self,
        *,
        radius_proxy: bool = False,
        user: tuple[int, int] | None = None,
        caps: str = "+net_raw,+net_admin",
        log_level: str = "info",
        pppoe_extra: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.use_proxy = radius_proxy
        self.proxy: subprocess.Popen[bytes] | None = None
        self.proxy_port = 0
        self.user = user
        self.caps = caps
        self.log_level = log_level
        self.pppoe_extra = pppoe_extra
        self._ready = False
        self.secret_values = {
            "radius": "lab-radius-secret",
            "tunnel": "lab-tunnel-secret",
            "dynauth": DYNAUTH_SECRET,
            "cookie": COOKIE_SECRET,
            "wrong-tunnel": WRONG_TUNNEL_SECRET,
        }

    # -- construction ------------------------------------------------------------------------
    def _write_policies(self) -> None:
        super()._write_policies()
        (self.dir / "policies" / "realms" / f"{WRONG_SECRET_REALM}.yaml").write_text(
            f"realm: {WRONG_SECRET_REALM}\n"
            f"match: {{kind: exact, value: {WRONG_SECRET_REALM}}}\n"
            "tunnel_source: static\nstrip_realm: false\n"
            f"static_pool:\n  - {{name: lns-b-wrong, address: {LNS_B}, secret_ref: wrong}}\n"
        )
        if self.user is not None:
            os.chmod(self.dir, 0o755)
            for p in (self.dir / "policies").rglob("*"):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            os.chmod(self.dir / "policies", 0o755)

    def broker_config(self, i: int) -> Path:
        path = super().broker_config(i)
        node_dir = path.parent
        uid, gid = self.user if self.user is not None else (0, 0)
        if self.user is not None:
            os.chown(node_dir, uid, gid)
            os.chmod(node_dir, 0o700)
        files = {
            name: _secret_file(node_dir / f"{name}.secret", value, uid, gid)
            for name, value in self.secret_values.items()
        }
        text = path.read_text()
        text = text.replace('"env:LAB_RADIUS_SECRET"', files["radius"])
        text = text.replace(
            f"clients: [{{address: {LAC_ADDR}, secret: {files['radius']}}}]",
            f"clients: [{{address: {LAC_ADDR}, secret: {files['dynauth']}}}]",
        )
        text = text.replace(
            'lns_secrets: {lab-tunnel: "env:LAB_TUNNEL_SECRET"}',
            f"lns_secrets: {{lab-tunnel: {files['tunnel']}, wrong: {files['wrong-tunnel']}}}",
        )
        text = text.replace(
            f"pppoe: {{ac_name: lab-lac-{i + 1}}}",
            f"pppoe: {{ac_name: lab-lac-{i + 1}, cookie_secret: {files['cookie']}"
            f"{self.pppoe_extra}}}",
        )
        text = text.replace("level: info", f"level: {self.log_level}")
        if self.use_proxy:
            text = text.replace(
                f"address: {LAC_ADDR}, port: 1812,",
                f"address: {LAC_ADDR}, port: {self.proxy_port},",
            )
        path.write_text(text)
        if self.user is not None:
            os.chown(path, uid, gid)
        return path

    def _build(self) -> None:
        if self.use_proxy:
            from ops.lab.freeradius import free_udp_port

            self.proxy_port = free_udp_port()
        super()._build()  # brokers wait (start_broker is a no-op until _ready)
        assert self.lac is not None and self.lns_ns
        self.lns_ns["lns-a"].run(["ip", "addr", "add", f"{STRANGER}/24", "dev", "eth0"])
        if self.use_proxy:
            self.start_proxy()
        self._ready = True
        for i in range(self.node_count):
            self.start_broker(i)

    def start_proxy(self) -> None:
        assert self.lac is not None
        report = self.dir / "proxy.json"
        self.proxy = self.lac.popen(
            self.hostile_cmd("radius-proxy", "--listen", f"{LAC_ADDR}:{self.proxy_port}",
                             "--upstream", f"{LAC_ADDR}:1812", "--report", str(report)),
            env=self.env(), stdout=subprocess.DEVNULL, stderr=(self.dir / "proxy.log").open("ab"),
        )  # fmt: skip
        if not poll(report.exists, 20):
            raise RuntimeError("the RADIUS proxy did not start")

    def proxy_report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "proxy.json").read_text())
        return data

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            LAB_RADIUS_SECRET=self.secret_values["radius"],
            LAB_TUNNEL_SECRET=self.secret_values["tunnel"],
        )

    def start_broker(self, i: int) -> None:
        if not self._ready:
            return
        if self.user is None:
            super().start_broker(i)
            return
        real_popen = self.lac.popen if self.lac is not None else None
        assert self.lac is not None and real_popen is not None
        uid, gid = self.user
        caps = self.caps

        def popen(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
            return real_popen(unprivileged(list(cmd), uid, gid, caps), **kwargs)

        self.lac.popen = popen  # type: ignore[method-assign]
        try:
            super().start_broker(i)
        finally:
            del self.lac.popen

    def close(self) -> None:
        if self.proxy is not None:
            stop_process(self.proxy)
        super().close()

    # -- attacks -----------------------------------------------------------------------------
    @staticmethod
    def hostile_cmd(*args: str) -> list[str]:
        return [venv_python(), "-m", "ops.lab.hostile", *args]

    def run_in(self, ns_name: str, *args: str, timeout: float = 120) -> Any:
        """Run one hostile command in a lab namespace (sub, lac, lns-a, lns-b); return its
        JSON output."""
        ns = {"sub": self.sub, "lac": self.lac, **self.lns_ns}[ns_name]
        assert ns is not None
        proc = subprocess.run(
            ns.prefix_cmd(self.hostile_cmd(*args)), capture_output=True, text=True,
            timeout=timeout, env=self.env(), cwd=str(ROOT),
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"hostile {args[0]} failed: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout or "null")

    def lac_mac(self, node: int = 0) -> str:
        assert self.lac is not None
        r = self.lac.run(["cat", f"/sys/class/net/{self.access_ifaces[node][1]}/address"])
        return r.stdout.strip()

    def broker_pid(self, node: int = 0) -> int:
        """The broker's own pid (below ip netns exec / setpriv, which exec into it)."""
        return self.brokers[node].pid

    def broker_rss_kib(self, node: int = 0) -> int:
        for line in Path(f"/proc/{self.broker_pid(node)}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def metrics(self, node: int = 0) -> dict[str, float]:
        """``engine_counter{engine=..,name=..}`` and the other samples of /metrics as a dict
        keyed ``engine/name`` (engine counters) or the sample name (the rest)."""
        out: dict[str, float] = {}
        for line in str(self.control("/metrics", node)).splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if "engine_counter{" in name:
                labels = dict(
                    part.split("=", 1) for part in name.split("{", 1)[1].rstrip("}").split(",")
                )
                name = f"{labels['engine'].strip(chr(34))}/{labels['name'].strip(chr(34))}"
            out[name] = float(value)
        return out


def unprivileged(cmd: list[str], uid: int, gid: int, caps: str) -> list[str]:
    """Wrap ``cmd`` (``ip netns exec NS ...``) so that the program runs as ``uid:gid`` with
    only ``caps`` (e.g. ``+net_raw,+net_admin``; empty = none) as ambient capabilities.

    The interpreter may live under a directory the user cannot traverse (a pyenv under
    /root): a private mount namespace then shows that directory through a tmpfs (mode 0755)
    with only the interpreter tree bind-mounted, so nothing on the host changes."""
    split = cmd.index("exec") + 2 if cmd[:3] == ["ip", "netns", "exec"] else 0
    prefix, program = cmd[:split], cmd[split:]
    base = Path(os.path.realpath(sys.base_prefix))
    hidden = next(
        (
            p
            for p in (*reversed(base.parents), base)
            if p != Path("/") and not os.stat(p).st_mode & 0o001
        ),
        None,
    )
    setpriv = [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
        f"--inh-caps=-all{',' + caps if caps else ''}",
        *([f"--ambient-caps=-all,{caps}"] if caps else []),
        f"--bounding-set=-all{',' + caps if caps else ''}",
        *program,
    ]  # fmt: skip
    if hidden is None:
        return prefix + setpriv
    keep = base.relative_to(hidden)
    src, top, dst = (shlex.quote(str(x)) for x in (base, hidden, hidden / keep))
    script = (
        f"set -e; t=$(mktemp -d); mount --bind {src} $t; "
        f"mount -t tmpfs -o mode=0755,size=1m tmpfs {top}; mkdir -p {dst}; "
        f'mount --bind $t {dst}; umount $t; rmdir $t; exec "$@"'
    )
    return [
        *prefix,
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        *setpriv,
    ]


@contextlib.contextmanager
def hostile_lab(**kw: Any) -> Iterator[HostileLab]:
    lab = HostileLab(**kw)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


# -- command line (inside a namespace) ----------------------------------------------------------


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.lab.hostile")
    sub = p.add_subparsers(dest="verb", required=True)
    f = sub.add_parser("flood", help="PADI or PADR flood from random MACs")
    f.add_argument("--interface", required=True)
    f.add_argument("--kind", choices=("padi", "padr"), default="padi")
    f.add_argument("--count", type=int, default=20000)
    f.add_argument("--dst", default="ff:ff:ff:ff:ff:ff")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--duration", type=float, default=0.0, help="keep flooding this long (s)")
    b = sub.add_parser("pppoe-broken", help="malformed PPPoE frames")
    b.add_argument("--interface", required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--seed", type=int, default=2)
    u = sub.add_parser("udp", help="send hex payloads over UDP")
    u.add_argument("--target", required=True)
    u.add_argument("--source", default="0.0.0.0:0")
    u.add_argument("--wait", type=float, default=0.0)
    u.add_argument("payloads", nargs="+")
    r = sub.add_parser("radius-proxy", help="forging RADIUS proxy")
    r.add_argument("--listen", required=True)
    r.add_argument("--upstream", required=True)
    r.add_argument("--report", type=Path, required=True)
    args = p.parse_args(argv)
    if args.verb == "flood":
        dst = bytes.fromhex(args.dst.replace(":", ""))
        report = flood(args.interface, args.kind, args.count, dst, args.seed, args.duration)
        print(json.dumps(report))
    elif args.verb == "pppoe-broken":
        rng = random.Random(args.seed)
        frames = broken_pppoe_frames(bytes.fromhex(args.dst.replace(":", "")), random_mac(rng), rng)
        print(json.dumps({"sent": send_frames(args.interface, frames), "frames": len(frames)}))
    elif args.verb == "udp":
        answers = send_udp(
            _addr(args.target), [bytes.fromhex(x) for x in args.payloads],
            source=_addr(args.source), wait=args.wait,
        )  # fmt: skip
        print(json.dumps({"answers": answers}))
    else:
        secret = os.environ["LAB_RADIUS_SECRET"].encode()
        radius_proxy(_addr(args.listen), _addr(args.upstream), secret, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
