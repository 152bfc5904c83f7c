"""Regenerate the xl2tpd golden vectors in this directory (root; run by hand, not by pytest).

    .venv/bin/python tests/vectors/l2tp/capture.py            # writes xl2tpd_*.hex

Starts xl2tpd as an LNS in one network namespace and a small client (this file, ``client``
mode, speaking through broker.l2tp.codec) in another, joined by a veth pair on
192.0.2.0/24. tcpdump records the exchange (SCCRQ, SCCRP, SCCCN, ICRQ, ICRP, ICCN, HELLO,
StopCCN and whatever xl2tpd answers, including the CDN it sends when it cannot start pppd
on a kernel without PPP). Every message xl2tpd sent is saved as ``<name>.hex`` with
tshark's verbose decode as ``#`` comments and the fields tshark reported as ``#!`` lines
that tests/l2tp/test_vectors.py compares with our decoder. Two runs: plain, and with a
tunnel secret, challenge authentication and hidden AVPs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from broker.l2tp import codec  # noqa: E402
from broker.l2tp.constants import AvpType, MessageType  # noqa: E402

HERE = Path(__file__).resolve().parent
LAC_ADDR, LNS_ADDR = "192.0.2.1", "192.0.2.2"
SECRET = b"vector-secret"

TSHARK_FIELDS = (
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
    "l2tp.result_code",
    "l2tp.avp.error_code",
    "l2tp.avp.error_message",
    "l2tp.avp.chap_challenge",
    "l2tp.avp.chap_challenge_response",
    "l2tp.avp.random_vector",
    "l2tp.avp.cause_code",
    "l2tp.avp.cause_msg",
    "l2tp.avp.advisory_msg",
)


# -- our side of the exchange (runs inside a namespace) ---------------------------------------


class Peer:
    """A minimal L2TP peer on a UDP socket: enough state to walk xl2tpd through a call."""

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

    def recv(self, want: MessageType | None, timeout: float = 5.0) -> codec.ControlMessage | None:
        """Receive until a message of type ``want`` (None: drain for ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            msg = codec.decode_control(data, self.secret)
            if msg.message_type is None:
                continue
            if msg.ns == self.nr:
                self.nr = (self.nr + 1) & 0xFFFF
            self.send(None, ())  # ZLB ack
            if want is not None and msg.message_type == want:
                return msg
        if want is not None:
            raise SystemExit(f"no {want.name} from xl2tpd")
        return None

    def challenge_avps(self, request: codec.ControlMessage, reply: MessageType) -> list[codec.Avp]:
        if self.secret is None:
            return []
        their = request.get(AvpType.CHALLENGE)
        if their is None:
            return []
        resp = codec.challenge_response(reply, self.secret, their.value)
        return [codec.bytes_avp(AvpType.CHALLENGE_RESPONSE, resp)]


CHALLENGE = b"0123456789abcdef"


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


def run_lac(secret: bytes | None, hidden: bool) -> None:
    """Our LAC against xl2tpd as LNS. xl2tpd cannot read hidden AVPs in an SCCRQ (it looks
    up the secret only after parsing it), so hidden AVPs start with the ICRQ."""
    p = Peer(LAC_ADDR, LNS_ADDR, secret, hidden)
    p.send(MessageType.SCCRQ, tuple(common_avps("broker-lac", secret)))
    sccrp = p.recv(MessageType.SCCRP)
    assert sccrp is not None
    tid = sccrp.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert tid is not None
    p.peer_tunnel = codec.parse_uint16(tid.value)
    p.send(MessageType.SCCCN, tuple(p.challenge_avps(sccrp, MessageType.SCCCN)))
    p.recv(None, 1.5)
    p.send(
        MessageType.ICRQ,
        (
            codec.uint16_avp(AvpType.ASSIGNED_SESSION_ID, 0x0042, hidden=hidden),
            codec.uint32_avp(AvpType.CALL_SERIAL_NUMBER, 1),
            codec.uint32_avp(AvpType.BEARER_TYPE, 2),
            codec.str_avp(AvpType.CALLING_NUMBER, "subscriber", hidden=hidden),
        ),
    )
    icrp = p.recv(MessageType.ICRP)
    assert icrp is not None
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
    p.recv(None, 3.0)  # xl2tpd cannot start pppd here: expect a CDN
    p.send(MessageType.HELLO, ())
    p.recv(None, 1.5)
    p.send(
        MessageType.StopCCN,
        (codec.uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 0x1234), codec.result_code_avp(1)),
    )
    p.recv(None, 1.5)


def run_lns(secret: bytes | None, hidden: bool) -> None:
    """Our LNS answering xl2tpd as LAC (autodial): SCCRP, ICRP, then whatever it sends."""
    p = Peer(LNS_ADDR, LAC_ADDR, secret, hidden)
    sccrq = p.recv(MessageType.SCCRQ, 10.0)
    assert sccrq is not None
    tid = sccrq.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert tid is not None
    p.peer_tunnel = codec.parse_uint16(tid.value)
    avps = common_avps("broker-lns", secret) + p.challenge_avps(sccrq, MessageType.SCCRP)
    p.send(MessageType.SCCRP, tuple(avps))
    p.recv(MessageType.SCCCN)
    icrq = p.recv(MessageType.ICRQ)
    assert icrq is not None
    sid = icrq.get(AvpType.ASSIGNED_SESSION_ID)
    assert sid is not None
    p.peer_session = codec.parse_uint16(sid.value)
    p.send(
        MessageType.ICRP,
        (codec.uint16_avp(AvpType.ASSIGNED_SESSION_ID, 0x0077, hidden=hidden),),
        p.peer_session,
    )
    p.recv(None, 4.0)  # ICCN, then a CDN/StopCCN when pppd fails


# -- orchestration (host side) ---------------------------------------------------------------

#: run name -> (xl2tpd role, secure). "lns" = xl2tpd is the LNS and we are the LAC.
RUNS = {
    "lns_plain": ("lns", False),
    "lns_secure": ("lns", True),
    "lac_plain": ("lac", False),
    "lac_secure": ("lac", True),
}


def _xl2tpd_conf(tmp: Path, role: str, secure: bool) -> Path:
    (tmp / "l2tp-secrets").write_text(f"* * {SECRET.decode()}\n")
    (tmp / "l2tp-secrets").chmod(0o600)
    (tmp / "options").write_text("noauth\n")
    listen = LNS_ADDR if role == "lns" else LAC_ADDR
    lines = [
        "[global]",
        f"listen-addr = {listen}",
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
    conf = tmp / "xl2tpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def capture(run: str) -> tuple[Path, str]:
    """Run one exchange; returns the pcap and xl2tpd's address."""
    from ops.lab.netns import namespaces, poll, stop_process, veth

    role, secure = RUNS[run]
    tmp = Path(tempfile.mkdtemp(prefix="l2tpvec-"))
    pcap = tmp / "x.pcap"
    with namespaces("xlns", "xlac") as (lns, lac):
        _, lns_if = veth(lac, lns, f"{LAC_ADDR}/24", f"{LNS_ADDR}/24")
        dump = lns.popen(
            ["tcpdump", "-n", "-U", "-i", lns_if, "-w", str(pcap), "udp port 1701"],
            stderr=subprocess.PIPE,
        )
        poll(lambda: pcap.exists(), 5)
        time.sleep(0.5)
        conf = _xl2tpd_conf(tmp, role, secure)
        xl_ns, our_ns = (lns, lac) if role == "lns" else (lac, lns)
        cmd = ["xl2tpd", "-D", "-c", str(conf), "-p", str(tmp / "pid"), "-C", str(tmp / "ctl")]
        ours = [sys.executable, __file__, "peer", run]
        if role == "lns":
            xl2tpd = xl_ns.popen(cmd, stdout=(tmp / "log").open("w"), stderr=subprocess.STDOUT)
            poll(lambda: "1701" in xl_ns.run(["ss", "-uln"]).stdout, 5)
            done = our_ns.run(ours, timeout=60, check=False)
        else:
            peer = our_ns.popen(ours, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            poll(lambda: "1701" in our_ns.run(["ss", "-uln"]).stdout, 5)
            xl2tpd = xl_ns.popen(cmd, stdout=(tmp / "log").open("w"), stderr=subprocess.STDOUT)
            out, err = peer.communicate(timeout=60)
            done = subprocess.CompletedProcess(ours, peer.returncode, out, err)
        time.sleep(0.5)
        stop_process(xl2tpd)
        stop_process(dump)
        if done.returncode != 0:
            log = (tmp / "log").read_text()
            raise SystemExit(f"{run}: our peer failed: {done.stderr}\nxl2tpd log:\n{log}")
    return pcap, (LNS_ADDR if role == "lns" else LAC_ADDR)


def _tshark(pcap: Path, secure: bool, *args: str) -> str:
    secret_opts = ["-o", f"l2tp.shared_secret:{SECRET.decode()}"] if secure else []
    cmd = ["tshark", "-r", str(pcap), "-d", "udp.port==1701,l2tp", *secret_opts, *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def save_vectors(pcap: Path, run: str, xl_addr: str) -> list[Path]:
    role, secure = RUNS[run]
    fields_args = [a for f in TSHARK_FIELDS for a in ("-e", f)]
    rows = _tshark(
        pcap,
        secure,
        "-Y",
        f"ip.src == {xl_addr} && l2tp",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-e",
        "frame.number",
        "-e",
        "udp.payload",
        *fields_args,
    ).splitlines()
    written = []
    counts: dict[str, int] = {}
    for row in rows:
        cols = row.split("\t")
        frame, payload, values = cols[0], cols[1], cols[2:]
        fields = dict(zip(TSHARK_FIELDS, values, strict=True))
        mt = fields["l2tp.avp.message_type"]
        name = MessageType(int(mt.split("|")[0])).name if mt else "ZLB"
        counts[name] = counts.get(name, 0) + 1
        if name == "ZLB" and counts[name] > 1:
            continue
        verbose = _tshark(pcap, secure, "-V", "-O", "l2tp", "-Y", f"frame.number == {frame}")
        body = verbose[verbose.index("Layer 2 Tunneling Protocol") :]
        suffix = "" if counts[name] == 1 else f"_{counts[name]}"
        path = HERE / f"xl2tpd_{run}_{name.lower()}{suffix}.hex"
        lines = [
            f"# xl2tpd 1.3.18 (Debian) as {role.upper()}, sent by {xl_addr}:1701"
            f"{' (tunnel secret, challenge, hidden bit on)' if secure else ''}",
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
        role, secure = RUNS[sys.argv[2]]
        secret = SECRET if secure else None
        (run_lac if role == "lns" else run_lns)(secret, secure)
        return
    for run in sys.argv[1:] or RUNS:
        pcap, xl_addr = capture(run)
        for p in save_vectors(pcap, run, xl_addr):
            print(p)


if __name__ == "__main__":
    main()
