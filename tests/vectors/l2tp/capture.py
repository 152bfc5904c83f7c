"""Capture golden vectors from real L2TP peers (root; run by hand, not collected by pytest).

    .venv/bin/python tests/vectors/l2tp/capture.py [RUN ...]     # default: every run

Each run starts a real implementation (xl2tpd 1.3.18 or l2tpns 2.4.1, Debian packages) in
one network namespace and our minimal peer (this file in ``peer`` mode, speaking through
broker.l2tp.codec) in another, joined by a veth pair on 192.0.2.0/24. tcpdump records the
exchange: SCCRQ/SCCRP/SCCCN, ICRQ/ICRP/ICCN, HELLO, StopCCN and whatever the real peer
answers (xl2tpd sends a CDN when it cannot start pppd on this kernel; l2tpns starts LCP in
data messages). Every message the real peer sent is saved as ``<run>_<type>.hex``: tshark's
verbose decode as ``#`` comments, the fields tshark reported as ``#!`` lines (compared with
our decoder by tests/l2tp/test_vectors.py) and the hex.

"secure" runs use a tunnel secret, challenge authentication in both directions and hidden
AVPs from our side (Assigned Session ID, Calling Number); our peer exits non-zero unless the
real peer answered on the session id we hid, i.e. it revealed our hidden AVP correctly.
xl2tpd cannot reveal hidden AVPs in an SCCRQ (it looks up the secret only after parsing it),
so our hidden AVPs start with the ICRQ. Neither xl2tpd nor l2tpns hides AVPs itself.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broker.l2tp import codec  # noqa: E402
from broker.l2tp.constants import AvpType, MessageType  # noqa: E402
from ops.lab.netns import Netns, namespaces, poll, stop_process, veth  # noqa: E402

HERE = Path(__file__).resolve().parent
LAC_ADDR, LNS_ADDR = "192.0.2.1", "192.0.2.2"
SECRET = b"vector-secret"
CHALLENGE = b"0123456789abcdef"
OUR_SESSION_LAC, OUR_SESSION_LNS = 0x0042, 0x0077

#: run name -> (implementation, its role, secure). Our peer takes the other role.
RUNS: dict[str, tuple[str, str, bool]] = {
    "xl2tpd_lns_plain": ("xl2tpd", "lns", False),
    "xl2tpd_lns_secure": ("xl2tpd", "lns", True),
    "xl2tpd_lac_plain": ("xl2tpd", "lac", False),
    "xl2tpd_lac_secure": ("xl2tpd", "lac", True),
    "l2tpns_lns_plain": ("l2tpns", "lns", False),
    "l2tpns_lns_secure": ("l2tpns", "lns", True),
}
VERSIONS = {"xl2tpd": "xl2tpd 1.3.18", "l2tpns": "l2tpns 2.4.1"}

TSHARK_FIELDS = (
    "l2tp.type",
    "l2tp.length_bit",
    "l2tp.seq_bit",
    "l2tp.offset_bit",
    "l2tp.priority",
    "l2tp.tunnel",
    "l2tp.session",
    "l2tp.Ns",
    "l2tp.Nr",
    "l2tp.length",
    "l2tp.avp.message_type",
    "l2tp.avp.type",
    "l2tp.avp.mandatory",
    "l2tp.avp.hidden",
    "l2tp.avp.length",
    "l2tp.avp.assigned_tunnel_id",
    "l2tp.avp.assigned_session_id",
    "l2tp.avp.host_name",
    "l2tp.avp.vendor_name",
    "l2tp.avp.firmware_revision",
    "l2tp.avp.receive_window_size",
    "l2tp.avp.protocol_version",
    "l2tp.avp.protocol_revision",
    "l2tp.tie_breaker",
    "l2tp.result_code",
    "l2tp.avp.error_code",
    "l2tp.avp.error_message",
    "l2tp.avp.chap_challenge",
    "l2tp.avp.chap_challenge_response",
    "l2tp.avp.random_vector",
    "l2tp.avp.cause_code",
    "l2tp.avp.cause_msg",
    "l2tp.avp.advisory_msg",
    "ppp.code",
)


# -- our side of the exchange (runs inside a namespace) ---------------------------------------


class Peer:
    """A minimal L2TP peer on a UDP socket: enough state to walk a real peer through a call."""

    def __init__(self, local: str, remote: str, secret: bytes | None, hidden: bool) -> None:
        self.secret = secret
        self.hidden = hidden
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local, 1701))
        self.remote = remote
        self.ns = 0
        self.nr = 0
        self.peer_tunnel = 0
        self.peer_session = 0

    def send(self, mt: MessageType | None, avps: tuple[codec.Avp, ...], session: int = 0) -> None:
        msg = codec.ControlMessage(self.peer_tunnel, session, self.ns, self.nr, mt, avps)
        self.sock.sendto(codec.encode_control(msg, self.secret), (self.remote, 1701))
        if mt is not None:
            self.ns = (self.ns + 1) & 0xFFFF

    def recv(self, want: MessageType | None, timeout: float = 10.0) -> codec.ControlMessage | None:
        """Receive until a message of type ``want`` (None: drain for ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            if not codec.peek_header(data)[0]:
                continue  # a data message (l2tpns starts LCP): not ours to answer
            msg = codec.decode_control(data, self.secret)
            if msg.message_type is None:
                continue
            if msg.ns == self.nr:
                self.nr = (self.nr + 1) & 0xFFFF
            self.send(None, ())  # ZLB ack
            if want is not None and msg.message_type == want:
                return msg
        if want is not None:
            raise SystemExit(f"no {want.name} from the real peer")
        return None

    def challenge_avps(self, request: codec.ControlMessage, reply: MessageType) -> list[codec.Avp]:
        if self.secret is None:
            return []
        their = request.get(AvpType.CHALLENGE)
        if their is None:
            return []
        resp = codec.challenge_response(reply, self.secret, their.value)
        return [codec.bytes_avp(AvpType.CHALLENGE_RESPONSE, resp)]

    def check_response(self, msg: codec.ControlMessage) -> None:
        if self.secret is None:
            return
        resp = msg.get(AvpType.CHALLENGE_RESPONSE)
        assert msg.message_type is not None
        expected = codec.challenge_response(msg.message_type, self.secret, CHALLENGE)
        if resp is None or resp.value != expected:
            raise SystemExit(f"bad Challenge Response in {msg.message_type.name}")


def common_avps(host: str, secret: bytes | None) -> list[codec.Avp]:
    avps = [
        codec.protocol_version_avp(),
        codec.str_avp(AvpType.HOST_NAME, host),
        codec.uint32_avp(AvpType.FRAMING_CAPABILITIES, 3),
        codec.uint32_avp(AvpType.BEARER_CAPABILITIES, 3),
        codec.uint16_avp(AvpType.FIRMWARE_REVISION, 0x0100),
        codec.str_avp(AvpType.VENDOR_NAME, "l2tp-broker"),
        codec.uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 0x1234),
        codec.uint16_avp(AvpType.RECEIVE_WINDOW_SIZE, 4),
    ]
    if secret is not None:
        avps.append(codec.bytes_avp(AvpType.CHALLENGE, CHALLENGE))
    return avps


def run_lac(secret: bytes | None, hidden: bool, quick: bool) -> None:
    """Our LAC against a real LNS."""
    p = Peer(LAC_ADDR, LNS_ADDR, secret, hidden)
    p.send(MessageType.SCCRQ, tuple(common_avps("broker-lac", secret)))
    sccrp = p.recv(MessageType.SCCRP)
    assert sccrp is not None
    p.check_response(sccrp)
    tid = sccrp.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert tid is not None
    p.peer_tunnel = codec.parse_uint16(tid.value)
    p.send(MessageType.SCCCN, tuple(p.challenge_avps(sccrp, MessageType.SCCCN)))
    p.send(
        MessageType.ICRQ,
        (
            codec.uint16_avp(AvpType.ASSIGNED_SESSION_ID, OUR_SESSION_LAC, hidden=hidden),
            codec.uint32_avp(AvpType.CALL_SERIAL_NUMBER, 1),
            codec.uint32_avp(AvpType.BEARER_TYPE, 2),
            codec.str_avp(AvpType.CALLING_NUMBER, "subscriber", hidden=hidden),
        ),
    )
    icrp = p.recv(MessageType.ICRP)
    assert icrp is not None
    if icrp.session_id != OUR_SESSION_LAC:
        raise SystemExit(f"ICRP to session {icrp.session_id}: hidden AVP not revealed right")
    sid = icrp.get(AvpType.ASSIGNED_SESSION_ID)
    assert sid is not None
    p.peer_session = codec.parse_uint16(sid.value)
    p.send(
        MessageType.ICCN,
        (
            codec.uint32_avp(AvpType.TX_CONNECT_SPEED, 100_000_000),
            codec.uint32_avp(AvpType.FRAMING_TYPE, 1),
        ),
        p.peer_session,
    )
    if not quick:
        p.recv(None, 3.0)  # xl2tpd cannot start pppd here: expect a CDN
        p.send(MessageType.HELLO, ())
        p.recv(None, 1.5)
    p.send(
        MessageType.StopCCN,
        (codec.uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 0x1234), codec.result_code_avp(1)),
    )
    if not quick:
        p.recv(None, 1.5)


def run_lns(secret: bytes | None, hidden: bool, quick: bool) -> None:
    """Our LNS answering a real LAC (xl2tpd autodial): SCCRP, ICRP, then what it sends."""
    p = Peer(LNS_ADDR, LAC_ADDR, secret, hidden)
    sccrq = p.recv(MessageType.SCCRQ, 20.0)
    assert sccrq is not None
    tid = sccrq.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert tid is not None
    p.peer_tunnel = codec.parse_uint16(tid.value)
    avps = common_avps("broker-lns", secret) + p.challenge_avps(sccrq, MessageType.SCCRP)
    p.send(MessageType.SCCRP, tuple(avps))
    scccn = p.recv(MessageType.SCCCN)
    assert scccn is not None
    p.check_response(scccn)
    icrq = p.recv(MessageType.ICRQ)
    assert icrq is not None
    sid = icrq.get(AvpType.ASSIGNED_SESSION_ID)
    assert sid is not None
    p.peer_session = codec.parse_uint16(sid.value)
    p.send(
        MessageType.ICRP,
        (codec.uint16_avp(AvpType.ASSIGNED_SESSION_ID, OUR_SESSION_LNS, hidden=hidden),),
        p.peer_session,
    )
    iccn = p.recv(MessageType.ICCN)
    assert iccn is not None
    if iccn.session_id != OUR_SESSION_LNS:
        raise SystemExit(f"ICCN to session {iccn.session_id}: hidden AVP not revealed right")
    if not quick:
        p.recv(None, 3.0)  # a CDN/StopCCN when pppd fails


# -- orchestration (host side) ---------------------------------------------------------------


def _xl2tpd_cmd(tmp: Path, role: str, secure: bool) -> list[str]:
    (tmp / "l2tp-secrets").write_text(f"* * {SECRET.decode()}\n")
    (tmp / "l2tp-secrets").chmod(0o600)
    (tmp / "options").write_text("noauth\n")
    lines = [
        "[global]",
        f"listen-addr = {LNS_ADDR if role == 'lns' else LAC_ADDR}",
        "port = 1701",
        f"auth file = {tmp / 'l2tp-secrets'}",
    ]
    if role == "lns":
        lines += [
            "[lns default]",
            "ip range = 198.51.100.10-198.51.100.20",
            "local ip = 198.51.100.1",
            "hostname = xl2tpd-lns",
            "require authentication = no",
        ]
    else:
        lines += [
            "[lac broker]",
            f"lns = {LNS_ADDR}",
            "autodial = yes",
            "redial = no",
            "hostname = xl2tpd-lac",
        ]
    lines += [
        "length bit = yes",
        f"pppoptfile = {tmp / 'options'}",
        f"challenge = {'yes' if secure else 'no'}",
        f"hidden bit = {'yes' if secure else 'no'}",
    ]
    (tmp / "xl2tpd.conf").write_text("\n".join(lines) + "\n")
    return [
        "xl2tpd", "-D", "-c", str(tmp / "xl2tpd.conf"), "-p", str(tmp / "pid"),
        "-C", str(tmp / "ctl"),
    ]  # fmt: skip


def _l2tpns_cmd(tmp: Path, secure: bool) -> list[str]:
    """l2tpns reads its pool from the fixed /etc/l2tpns/ip_pool: give it a private mount
    namespace with a pool in the lab range bind-mounted over that path."""
    (tmp / "ip_pool").write_text("198.51.100.0/28\n")
    lines = [
        "set debug 3",
        f'set log_file "{tmp / "log"}"',
        f'set pid_file "{tmp / "pid"}"',
        f"set bind_address {LNS_ADDR}",
        "set cli_bind_address 127.0.0.1",
        "set primary_radius 203.0.113.9",
        'set radius_secret "unused"',
        'set hostname "l2tpns-lns"',
        "set cluster_hb_interval 1",
        "set cluster_hb_timeout 5",
        "set disable_lac_func yes",
    ]
    if secure:
        lines.append(f'set l2tp_secret "{SECRET.decode()}"')
    (tmp / "startup-config").write_text("\n".join(lines) + "\n")
    script = (
        f"mount --bind {tmp / 'ip_pool'} /etc/l2tpns/ip_pool && "
        f"exec l2tpns -c {tmp / 'startup-config'}"
    )
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]


def _ready(ns: Netns, impl: str, tmp: Path) -> bool:
    if impl == "l2tpns":  # it answers only once it has elected itself cluster master
        log = tmp / "log"
        return log.exists() and "declaring myself the master" in log.read_text()
    return "1701" in ns.run(["ss", "-uln"]).stdout


def exchange(run: str, pcap: Path | None = None, *, quick: bool = False) -> None:
    """Run ``run`` once in fresh namespaces; raise RuntimeError if our peer failed."""
    impl, role, secure = RUNS[run]
    with (
        tempfile.TemporaryDirectory(prefix="l2tpvec-") as tmp_name,
        namespaces("vlns", "vlac") as (lns, lac),
    ):
        tmp = Path(tmp_name)
        _, lns_if = veth(lac, lns, f"{LAC_ADDR}/24", None)
        if impl == "l2tpns":  # l2tpns looks its interface up by the name eth0
            lns.run(["ip", "link", "set", lns_if, "name", "eth0"])
            lns_if = "eth0"
        lns.add_address(lns_if, f"{LNS_ADDR}/24")
        procs = []
        if pcap is not None:
            dump_err = tmp / "tcpdump.err"
            procs.append(
                lns.popen(
                    ["tcpdump", "-n", "-U", "-i", lns_if, "-w", str(pcap), "udp port 1701"],
                    stderr=dump_err.open("w"),
                )
            )
            if not poll(lambda: "listening on" in dump_err.read_text(), 10):
                raise RuntimeError("tcpdump did not start")
        cmd = _l2tpns_cmd(tmp, secure) if impl == "l2tpns" else _xl2tpd_cmd(tmp, role, secure)
        real_ns, our_ns = (lns, lac) if role == "lns" else (lac, lns)
        ours = [sys.executable, __file__, "peer", run] + (["quick"] if quick else [])
        log = (tmp / "out").open("w")
        try:
            if role == "lns":
                procs.append(real_ns.popen(cmd, stdout=log, stderr=subprocess.STDOUT))
                if not poll(lambda: _ready(real_ns, impl, tmp), 30, 0.1):
                    raise RuntimeError(f"{impl} did not start")
                done = our_ns.run(ours, timeout=60, check=False)
                rc, err = done.returncode, done.stderr
            else:
                peer = our_ns.popen(ours, stderr=subprocess.PIPE, text=True)
                procs.append(peer)
                if not poll(lambda: _ready(our_ns, "ours", tmp), 30, 0.05):
                    raise RuntimeError("our peer did not bind its socket")
                procs.append(real_ns.popen(cmd, stdout=log, stderr=subprocess.STDOUT))
                _, err = peer.communicate(timeout=60)
                rc = peer.returncode
        finally:
            for proc in reversed(procs):
                stop_process(proc)
            log.close()
        if rc != 0:
            logs = (tmp / "out").read_text()
            if (tmp / "log").exists():
                logs += (tmp / "log").read_text()[-4000:]
            raise RuntimeError(f"{run}: our peer failed: {err}\n{impl} output:\n{logs}")


def _tshark(pcap: Path, secure: bool, *args: str) -> str:
    secret_opts = ["-o", f"l2tp.shared_secret:{SECRET.decode()}"] if secure else []
    cmd = ["tshark", "-r", str(pcap), "-d", "udp.port==1701,l2tp", *secret_opts, *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def save_vectors(pcap: Path, run: str) -> list[Path]:
    impl, role, secure = RUNS[run]
    real_addr = LNS_ADDR if role == "lns" else LAC_ADDR
    fields_args = [a for f in TSHARK_FIELDS for a in ("-e", f)]
    rows = _tshark(
        pcap, secure, "-Y", f"ip.src == {real_addr} && l2tp", "-T", "fields",
        "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
        "-e", "frame.number", "-e", "udp.payload", *fields_args,
    ).splitlines()  # fmt: skip
    written = []
    counts: dict[str, int] = {}
    for row in rows:
        cols = row.split("\t")
        frame, payload, values = cols[0], cols[1], cols[2:]
        fields = dict(zip(TSHARK_FIELDS, values, strict=True))
        mt = fields["l2tp.avp.message_type"]
        if fields["l2tp.type"] == "0":
            name = "data"
        else:
            name = MessageType(int(mt.split("|")[0])).name if mt else "ZLB"
        counts[name] = counts.get(name, 0) + 1
        if name in ("ZLB", "data") and counts[name] > 1:
            continue
        verbose = _tshark(pcap, secure, "-V", "-O", "l2tp", "-Y", f"frame.number == {frame}")
        body = verbose[verbose.index("Layer 2 Tunneling Protocol") :]
        suffix = "" if counts[name] == 1 else f"_{counts[name]}"
        path = HERE / f"{run}_{name.lower()}{suffix}.hex"
        extra = " (tunnel secret, challenge, hidden AVPs on)" if secure else ""
        lines = [
            f"# {VERSIONS[impl]} (Debian) as {role.upper()}, sent by {real_addr}:1701{extra}",
            "# captured with tests/vectors/l2tp/capture.py; decoded by "
            "`tshark -V -r file -d udp.port==1701,l2tp` (TShark 4.0.17):",
        ]
        lines += [f"#   {ln}" for ln in body.rstrip().splitlines()]
        if secure:
            lines.append(f"#! secret={SECRET.decode()}")
        lines += [f"#! {k}={v}" for k, v in fields.items() if v]
        lines.append(payload)
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "peer":
        _, role, secure = RUNS[sys.argv[2]]
        quick = sys.argv[3:] == ["quick"]
        (run_lac if role == "lns" else run_lns)(SECRET if secure else None, secure, quick)
        return
    for run in sys.argv[1:] or RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            pcap = Path(tmp) / "x.pcap"
            exchange(run, pcap)
            for p in save_vectors(pcap, run):
                print(p)


if __name__ == "__main__":
    main()
