"""Seed corpora for the fuzz targets, built from the golden vectors and captures.

Sources: ``tests/vectors/l2tp/*.hex`` (xl2tpd and l2tpns datagrams, the secure ones with
hidden AVPs under ``vector-secret``), ``tests/vectors/pppoe`` (tcpdump pcaps, rp-pppoe
discovery transcript), ``tests/vectors/radius`` and ``/work/shared/captures`` (RADIUS and
RFC 5176 pcaps), ``policies/`` and ``ops/examples/broker.yaml``, plus a few messages
synthesised with the project's encoders (hidden AVPs, DSL Forum line info, RFC 2868 tunnel
groups, signed Disconnect-Requests). Seeds are laid out the way each target reads its input
(see the target docstrings). ``python -m ops.fuzz corpus`` writes them to
``ops/fuzz/.corpus/<target>/`` (not committed).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

from broker.l2tp.avps import (
    AVP_SPECS,
    bytes_avp,
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control
from broker.l2tp.constants import AvpType, MessageType
from broker.pppoe.codec import DiscoveryPacket, Tag, encode_discovery
from broker.pppoe.constants import Code as PppoeCode
from broker.pppoe.constants import TagType
from broker.pppoe.tags import LineInfo, encode_line_info, encode_vendor_specific
from broker.radius.constants import Attr
from broker.radius.constants import Code as RadiusCode
from broker.radius.packet import decode_packet, encode_attributes
from broker.radius.tunnel import TunnelCandidate, encode_tunnel_attributes
from broker.wire import RemoteProtocolError

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
CAPTURES = Path("/work/shared/captures")
DEFAULT_DIR = REPO / "ops" / "fuzz" / ".corpus"
L2TP_SECRET = b"vector-secret"
RADIUS_SECRET = b"fuzz-secret"
_ETH_P_IP = 0x0800
_ETH_PPPOE_DISC = 0x8863
_ETH_PPPOE_SESS = 0x8864
_LINK_ETHERNET = 1
_LINK_LINUX_SLL = 113
_PPP_LCP = 0xC021
_PPP_PAP = 0xC023
_PPP_CHAP = 0xC223


# -- capture readers -----------------------------------------------------------------------


def pcap_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(ethertype, payload)`` per frame of a classic pcap (Ethernet or Linux cooked)."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    for endian in ("<", ">"):
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        return
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    pos = 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, pos + 8)[0]
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if linktype == _LINK_ETHERNET and len(frame) >= 14:
            ethertype, payload = struct.unpack_from("!H", frame, 12)[0], frame[14:]
            if ethertype == 0x8100 and len(frame) >= 18:  # one VLAN tag
                ethertype, payload = struct.unpack_from("!H", frame, 16)[0], frame[18:]
        elif linktype == _LINK_LINUX_SLL and len(frame) >= 16:
            ethertype, payload = struct.unpack_from("!H", frame, 14)[0], frame[16:]
        else:
            continue
        yield ethertype, payload


def udp_payloads(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(source port, destination port, payload)`` of the IPv4/UDP datagrams in a pcap."""
    for ethertype, packet in pcap_frames(path):
        if ethertype != _ETH_P_IP or len(packet) < 20 or packet[9] != 17:
            continue
        ihl = (packet[0] & 0x0F) * 4
        udp = packet[ihl:]
        if len(udp) < 8:
            continue
        sport, dport, length = struct.unpack_from("!HHH", udp)
        yield sport, dport, udp[8 : max(8, length)]


def _pcaps(*names: str) -> list[Path]:
    found: dict[str, Path] = {}
    for folder in (VECTORS / "pppoe", VECTORS / "radius", CAPTURES):
        if folder.is_dir():
            for p in sorted(folder.glob("*.pcap")):
                if not names or any(n.lower() in p.name.lower() for n in names):
                    found.setdefault(p.name, p)
    return list(found.values())


def _hex_vectors() -> list[bytes]:
    out = []
    for path in sorted((VECTORS / "l2tp").glob("*.hex")):
        text = "".join(
            line.strip() for line in path.read_text().splitlines() if not line.startswith("#")
        )
        out.append(bytes.fromhex(text))
    return out


# -- seeds per target ------------------------------------------------------------------------


def _rand(n: int) -> bytes:
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def _synth_control() -> list[bytes]:
    hidden = ControlMessage(
        7,
        0,
        1,
        2,
        MessageType.ICRQ,
        (
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 0x1234, hidden=True),
            uint32_avp(AvpType.CALL_SERIAL_NUMBER, 99, hidden=True),
            str_avp(AvpType.CALLING_NUMBER, "00:11:22:33:44:55", hidden=True),
        ),
    )
    sccrq = ControlMessage(
        0,
        0,
        0,
        0,
        MessageType.SCCRQ,
        (
            protocol_version_avp(),
            str_avp(AvpType.HOST_NAME, "lac"),
            uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 5),
            bytes_avp(AvpType.CHALLENGE, b"0123456789abcdef"),
            uint16_avp(AvpType.RECEIVE_WINDOW_SIZE, 4),
        ),
    )
    cdn = ControlMessage(
        7,
        9,
        3,
        4,
        MessageType.CDN,
        (result_code_avp(2, 6, "bye"), uint16_avp(AvpType.ASSIGNED_SESSION_ID, 9)),
    )
    zlb = ControlMessage(7, 0, 5, 5, None)
    return [encode_control(m, L2TP_SECRET, _rand) for m in (hidden, sccrq, cdn, zlb)]


def _avp_seeds(controls: list[bytes]) -> list[bytes]:
    types = sorted(AVP_SPECS)
    out = []
    for raw in controls:
        try:
            msg = decode_control(raw, L2TP_SECRET)
        except RemoteProtocolError:
            continue
        for avp in msg.avps:
            if avp.vendor_id == 0 and avp.type in AVP_SPECS:
                out.append(bytes((types.index(avp.type),)) + _rand(16) + avp.value)
    return out


def _endpoint_seeds(vectors: list[bytes]) -> list[bytes]:
    """Datagram sequences for l2tp_endpoint: (flags, length, datagram) records."""
    by_name = {}
    for path in sorted((VECTORS / "l2tp").glob("*.hex")):
        text = "".join(
            line.strip() for line in path.read_text().splitlines() if not line.startswith("#")
        )
        by_name[path.stem] = bytes.fromhex(text)

    def records(*items: tuple[int, str]) -> bytes:
        out = b""
        for flags, name in items:
            datagram = by_name.get(name, b"")
            out += bytes((flags,)) + len(datagram).to_bytes(2, "big") + datagram
        return out

    seeds = []
    for kind in ("plain", "secure"):
        seeds.append(
            records(
                (0, f"xl2tpd_lac_{kind}_sccrq"),
                (3, f"xl2tpd_lac_{kind}_scccn"),
                (3, f"xl2tpd_lac_{kind}_icrq"),
                (3, f"xl2tpd_lac_{kind}_iccn"),
                (0x13, f"xl2tpd_lac_{kind}_cdn"),
            )
        )
        seeds.append(
            records(
                (7, f"l2tpns_lns_{kind}_sccrp"),
                (7, f"l2tpns_lns_{kind}_zlb"),
                (7, f"l2tpns_lns_{kind}_icrp"),
                (0x57, f"xl2tpd_lns_{kind}_cdn"),
                (0x87, f"l2tpns_lns_{kind}_data"),
            )
        )
    return seeds


def _pppoe_seeds() -> tuple[list[bytes], list[bytes]]:
    discovery: list[bytes] = []
    session: list[bytes] = []
    for path in _pcaps("pppoe"):
        for ethertype, payload in pcap_frames(path):
            if ethertype == _ETH_PPPOE_DISC:
                discovery.append(payload)
            elif ethertype == _ETH_PPPOE_SESS:
                session.append(payload)
    jsonl = VECTORS / "pppoe" / "rp-pppoe-3.15-discovery.jsonl"
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                frame = bytes.fromhex(json.loads(line)[1])
                if len(frame) > 14 and frame[12:14] == b"\x88\x63":
                    discovery.append(frame[14:])
    info = LineInfo(
        circuit_id=b"dslam-1 atm 1/1/01:8.35",
        remote_id=b"subscriber-7",
        actual_rate_up=1_024_000,
        actual_rate_down=16_384_000,
    )
    discovery.append(
        encode_discovery(
            DiscoveryPacket(
                PppoeCode.PADR,
                0,
                (
                    Tag(TagType.SERVICE_NAME, b""),
                    Tag(TagType.HOST_UNIQ, b"\x01\x02\x03\x04"),
                    Tag(TagType.AC_COOKIE, bytes(20)),
                    Tag(
                        TagType.VENDOR_SPECIFIC,
                        encode_vendor_specific(3561, encode_line_info(info)),
                    ),
                    Tag(TagType.PPP_MAX_PAYLOAD, b"\x05\xdc"),
                ),
            )
        )
    )
    return discovery, session


def _ppp_seeds(session: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(LCP record streams, PAP/CHAP packets) from the session frames."""
    lcp: list[bytes] = []
    auth: list[bytes] = []
    for frame in session:
        ppp = frame[6:]
        if len(ppp) < 6:
            continue
        proto, info = struct.unpack_from("!H", ppp)[0], ppp[2:]
        if proto == _PPP_LCP and len(info) <= 255:
            lcp.append(bytes((len(info),)) + info)
        elif proto in (_PPP_PAP, _PPP_CHAP):
            auth.append(info)
    if lcp:
        lcp.append(b"".join(lcp[:8]))  # a whole negotiation as one stream
    auth += [
        bytes((1, 1, 0, 14, 4)) + b"user" + bytes((4,)) + b"pass",  # PAP Authenticate-Request
        bytes((2, 0, 0, 29, 16)) + bytes(16) + b"user@isp",  # CHAP Response, identifier 0
    ]
    return lcp, auth


def _radius_seeds() -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(reply seeds, tunnel seeds, dynauth seeds)."""
    reply: list[bytes] = []
    tunnel: list[bytes] = []
    dynauth: list[bytes] = []
    for path in _pcaps("radius"):
        for _sport, dport, payload in udp_payloads(path):
            try:
                packet = decode_packet(payload)
            except RemoteProtocolError:
                continue
            area = encode_attributes(packet.attributes)
            reply.append(b"\x00" + payload)
            reply.append(bytes((1, packet.code, packet.identifier)) + area)
            tunnel.append(packet.authenticator + area)
            if dport == 3799 or packet.code in (
                RadiusCode.DISCONNECT_REQUEST,
                RadiusCode.COA_REQUEST,
            ):
                dynauth.append(b"\x00" + payload)
                dynauth.append(
                    bytes((1, 0 if packet.code == RadiusCode.DISCONNECT_REQUEST else 1, 7)) + area
                )
    auth = bytes(range(16))
    groups: list[bytes] = []
    for tag, endpoint, pref in (
        (1, "192.0.2.10", 1),
        (2, "198.51.100.20", 1),
        (0, "lns.example", 2),
    ):
        candidate = TunnelCandidate(
            tag=tag,
            tunnel_type=3,
            medium_type=1,
            server_endpoint=endpoint,
            password=b"tunnel-pw",
            preference=pref,
            assignment_id=b"grp",
            client_auth_id=b"lac",
        )
        area = encode_attributes(
            encode_tunnel_attributes(candidate, RADIUS_SECRET, auth, rand_bytes=_rand)
        )
        groups.append(area)
        tunnel.append(auth + area)
        reply.append(bytes((1, int(RadiusCode.ACCESS_ACCEPT), 3)) + area)
    tunnel.append(auth + b"".join(groups[:2]))
    username = encode_attributes(
        [(Attr.USER_NAME, b"user@isp"), (Attr.ACCT_SESSION_ID, b"0000beef")]
    )
    dynauth.append(b"\x01\x00\x05" + username)
    dynauth.append(
        b"\x01\x02\x06" + username + encode_attributes([(Attr.NAS_IDENTIFIER, b"lac-1")])
    )
    return reply, tunnel, dynauth


def _yaml_seeds() -> tuple[list[bytes], list[bytes]]:
    policy: list[bytes] = []
    config: list[bytes] = []
    policies = REPO / "policies"
    for path in sorted((policies / "realms").glob("*.y*ml")):
        policy.append(b"\x00" + path.read_bytes())
    defaults = policies / "defaults.yaml"
    if defaults.is_file():
        policy.append(b"\x01" + defaults.read_bytes())
    for path in (REPO / "ops" / "examples").glob("*.y*ml"):
        config.append(path.read_bytes())
    return policy, config


def build() -> dict[str, list[bytes]]:
    """Seeds per target name."""
    vectors = _hex_vectors()
    controls = [v for v in vectors if v and v[0] & 0x80] + _synth_control()
    data = [v for v in vectors if v and not v[0] & 0x80]
    discovery, session = _pppoe_seeds()
    lcp, auth = _ppp_seeds(session)
    reply, tunnel, dynauth = _radius_seeds()
    policy, config = _yaml_seeds()
    return {
        "l2tp_control": controls,
        "l2tp_data": data,
        "l2tp_avps": _avp_seeds(controls),
        "l2tp_endpoint": _endpoint_seeds(vectors),
        "pppoe_discovery": discovery,
        "pppoe_session": session,
        "ppp_lcp": lcp,
        "ppp_auth": auth,
        "radius_reply": reply,
        "radius_tunnel": tunnel,
        "radius_client": [b"\x01" + seed[1:] for seed in reply if seed[:1] == b"\x01"],
        "radius_dynauth": dynauth,
        "policy_loader": policy,
        "config_loader": config,
    }


#: YAML tokens and numbers that the loaders treat specially (libFuzzer -dict entries).
_YAML_TOKENS = (
    ": ", "\n  ", "- ", "[", "]", "{", "}", '"', "'", "&a ", "*a", "!!str ", "!!int ",
    "~", "null", "true", "no", "0x1F", "0o17", "0017", "1:30", ".inf", ".nan", "1_000",
    "1e3", "-1", "65536", "\\ud800", "env:X", "file:/", "@", "192.0.2.1", "::1",
)  # fmt: skip


def dictionaries() -> dict[str, list[str]]:
    """libFuzzer dictionaries for the YAML targets: every key the loaders know, plus tokens."""
    from broker.config import loader as config_loader
    from broker.policy import loader as policy_loader

    def keys(module: object) -> set[str]:
        out: set[str] = set()
        for name in dir(module):
            value = getattr(module, name)
            if name.endswith("_KEYS") and isinstance(value, tuple):
                out.update(v for v in value if isinstance(v, str))
        return out

    def entries(words: set[str]) -> list[str]:
        quoted = sorted(words | {f"{w}: " for w in words} | set(_YAML_TOKENS))
        return [
            '"' + w.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\x0A") + '"'
            for w in quoted
        ]

    return {
        "policy_loader": entries(keys(policy_loader)),
        "config_loader": entries(keys(config_loader) | keys(policy_loader)),
    }


def write(directory: Path = DEFAULT_DIR) -> dict[str, Path]:
    """Write every target's seeds to ``directory/<target>/<sha1>``; returns the folders."""
    out: dict[str, Path] = {}
    for name, seeds in build().items():
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        out[name] = folder
    for name, lines in dictionaries().items():
        (directory / f"{name}.dict").write_text("\n".join(lines) + "\n")
    return out
