"""Userspace splice between PPPoE sessions (RFC 2516) and L2TP data messages (RFC 2661 3.1).

Any PPP protocol passes both ways (the LNS may renegotiate LCP). Framing differs between the
sides (DESIGN.md section 3): a PPPoE payload starts with the PPP protocol field, PPP in L2TP
carries the HDLC address/control octets FF 03 first. Upstream we add FF 03; downstream we
accept frames with or without it and strip it. When the LNS requires sequencing (Sequencing
Required AVP) data messages carry Ns/Nr (RFC 2661 5.4) and we number ours.

The class holds the splice table and per-session counters; the two send functions are
injected (the runtime passes the raw Ethernet writer and the L2TP UDP socket writer).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.wire import MacAddress

ETH_P_PPP_SES = 0x8864
_PPPOE_HDR = struct.Struct("!BBHH")
_L2TP_PLAIN = struct.Struct("!HHH")  # flags/version, tunnel id, session id
_L2TP_SEQ = struct.Struct("!HHHHH")  # flags/version (S bit), tunnel, session, Ns, Nr
_ADDR_CTRL = b"\xff\x03"

SendL2tp = Callable[[bytes, tuple[str, int]], None]
SendEthernet = Callable[[str, MacAddress, int, bytes], None]


@dataclass(slots=True)
class SpliceEntry:
    call_id: int
    interface: str
    mac: MacAddress
    pppoe_session_id: int
    tunnel_id: int
    session_id: int
    peer: tuple[str, int]
    up_header: bytes  # L2TP data header + FF 03 (without sequencing)
    sequencing: bool
    peer_tunnel_id: int
    peer_session_id: int
    ns: int = 0
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "input_octets": 0,
            "input_packets": 0,
            "output_octets": 0,
            "output_packets": 0,
        }
    )


class UserspaceSplice:
    """The splice table; ``upstream`` and ``downstream`` move one frame each."""

    name = "userspace"

    def __init__(self, send_l2tp: SendL2tp, send_ethernet: SendEthernet) -> None:
        self._send_l2tp = send_l2tp
        self._send_eth = send_ethernet
        self._by_pppoe: dict[tuple[str, bytes, int], SpliceEntry] = {}
        self._by_l2tp: dict[tuple[int, int], SpliceEntry] = {}
        self._by_call: dict[int, SpliceEntry] = {}
        self.counters: dict[str, int] = {
            "unknown_downstream": 0,
            "malformed_downstream": 0,
        }

    def __len__(self) -> int:
        return len(self._by_call)

    def attach(
        self,
        *,
        call_id: int,
        interface: str,
        mac: MacAddress,
        pppoe_session_id: int,
        tunnel_id: int,
        session_id: int,
        peer_tunnel_id: int,
        peer_session_id: int,
        peer: tuple[str, int],
        sequencing: bool,
    ) -> None:
        entry = SpliceEntry(
            call_id=call_id,
            interface=interface,
            mac=mac,
            pppoe_session_id=pppoe_session_id,
            tunnel_id=tunnel_id,
            session_id=session_id,
            peer=peer,
            up_header=_L2TP_PLAIN.pack(0x0002, peer_tunnel_id, peer_session_id) + _ADDR_CTRL,
            sequencing=sequencing,
            peer_tunnel_id=peer_tunnel_id,
            peer_session_id=peer_session_id,
        )
        self._by_pppoe[(interface, bytes(mac), pppoe_session_id)] = entry
        self._by_l2tp[(tunnel_id, session_id)] = entry
        self._by_call[call_id] = entry

    def detach(self, call_id: int) -> dict[str, int]:
        entry = self._by_call.pop(call_id, None)
        if entry is None:
            return {}
        self._by_pppoe.pop((entry.interface, bytes(entry.mac), entry.pppoe_session_id), None)
        self._by_l2tp.pop((entry.tunnel_id, entry.session_id), None)
        return dict(entry.counters)

    def counters_for(self, call_id: int) -> dict[str, int] | None:
        entry = self._by_call.get(call_id)
        return dict(entry.counters) if entry is not None else None

    def owns(self, interface: str, mac: bytes, pppoe_session_id: int) -> bool:
        return (interface, bytes(mac), pppoe_session_id) in self._by_pppoe

    def upstream(self, interface: str, mac: bytes, pppoe_session_id: int, ppp: bytes) -> bool:
        """A PPP frame from the subscriber (PPPoE payload); False if no such splice."""
        entry = self._by_pppoe.get((interface, bytes(mac), pppoe_session_id))
        if entry is None:
            return False  # not spliced (yet): the caller hands it to the call flow
        c = entry.counters
        c["input_octets"] += len(ppp)
        c["input_packets"] += 1
        if entry.sequencing:
            header = _L2TP_SEQ.pack(
                0x0802, entry.peer_tunnel_id, entry.peer_session_id, entry.ns, 0
            )
            entry.ns = (entry.ns + 1) & 0xFFFF
            self._send_l2tp(header + _ADDR_CTRL + ppp, entry.peer)
        else:
            self._send_l2tp(entry.up_header + ppp, entry.peer)
        return True

    def downstream(self, data: bytes) -> bool:
        """An L2TP data message from an LNS; False if unknown or malformed."""
        n = len(data)
        if n < 6:
            self.counters["malformed_downstream"] += 1
            return False
        flags = (data[0] << 8) | data[1]
        if flags & 0x8000 or flags & 0x000F != 2:
            self.counters["malformed_downstream"] += 1
            return False
        pos = 2
        if flags & 0x4000:  # L: length field present
            pos += 2
        if pos + 4 > n:
            self.counters["malformed_downstream"] += 1
            return False
        tunnel_id = (data[pos] << 8) | data[pos + 1]
        session_id = (data[pos + 2] << 8) | data[pos + 3]
        pos += 4
        if flags & 0x0800:  # S: Ns, Nr
            pos += 4
        if flags & 0x0200:  # O: offset size + padding
            if pos + 2 > n:
                self.counters["malformed_downstream"] += 1
                return False
            pos += 2 + ((data[pos] << 8) | data[pos + 1])
        if pos > n:
            self.counters["malformed_downstream"] += 1
            return False
        entry = self._by_l2tp.get((tunnel_id, session_id))
        if entry is None:
            self.counters["unknown_downstream"] += 1
            return False
        if data[pos : pos + 2] == _ADDR_CTRL:
            pos += 2
        ppp = data[pos:]
        c = entry.counters
        c["output_octets"] += len(ppp)
        c["output_packets"] += 1
        frame = _PPPOE_HDR.pack(0x11, 0, entry.pppoe_session_id, len(ppp)) + ppp
        self._send_eth(entry.interface, entry.mac, ETH_P_PPP_SES, frame)
        return True
