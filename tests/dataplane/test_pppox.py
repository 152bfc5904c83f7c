"""Struct layouts and ioctl numbers of broker.dataplane.pppox against the kernel's uapi headers.

The expected numbers were printed by a C program built against linux-libc-dev's
linux/if_pppox.h, linux/ppp-ioctl.h and linux/if_pppol2tp.h (x86_64); when gcc and the headers
are on the machine the same program is built and run again by
``test_layouts_match_the_uapi_headers_when_a_compiler_is_present``.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.dataplane import pppox
from broker.dataplane.kernel import attach_filter, session_drop_filter

UAPI = {
    "sockaddr_pppox": 30,
    "sockaddr_pppol2tp": 38,
    "pppol2tp_ioc_stats": 72,
    "PPPIOCGCHAN": 0x80047437,
    "PPPIOCATTCHAN": 0x40047438,
    "PPPIOCGL2TPSTATS": 0x80487436,
    "PPPIOCBRIDGECHAN": 0x40047435,
    "PPPIOCUNBRIDGECHAN": 0x7434,
    "AF_PPPOX": 24,
    "PX_PROTO_OE": 0,
    "PX_PROTO_OL2TP": 1,
    "SOL_PPPOL2TP": 273,
    "PPPOL2TP_SO_SENDSEQ": 3,
    "PPPOL2TP_SO_RECVSEQ": 2,
}

OURS = {
    "sockaddr_pppox": len(pppox.pack_sockaddr_pppoe(1, b"\x02" * 6, "eth0")),
    "sockaddr_pppol2tp": len(
        pppox.pack_sockaddr_pppol2tp(
            fd=3,
            peer=("198.51.100.2", 1701),
            tunnel_id=1,
            session_id=2,
            peer_tunnel_id=3,
            peer_session_id=4,
        )
    ),
    "pppol2tp_ioc_stats": len(pppox.L2tpStats(0, 0, False, 0, 0, 0, 0, 0, 0, 0, 0).pack()),
    "PPPIOCGCHAN": pppox.PPPIOCGCHAN,
    "PPPIOCATTCHAN": pppox.PPPIOCATTCHAN,
    "PPPIOCGL2TPSTATS": pppox.PPPIOCGL2TPSTATS,
    "PPPIOCBRIDGECHAN": pppox.PPPIOCBRIDGECHAN,
    "PPPIOCUNBRIDGECHAN": pppox.PPPIOCUNBRIDGECHAN,
    "AF_PPPOX": pppox.AF_PPPOX,
    "PX_PROTO_OE": pppox.PxProto.OE,
    "PX_PROTO_OL2TP": pppox.PxProto.OL2TP,
    "SOL_PPPOL2TP": pppox.SOL_PPPOL2TP,
    "PPPOL2TP_SO_SENDSEQ": pppox.PppolL2tpOption.SENDSEQ,
    "PPPOL2TP_SO_RECVSEQ": pppox.PppolL2tpOption.RECVSEQ,
}

C_PROGRAM = r"""
#include <stdio.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <linux/ppp_defs.h>
#include <linux/if_pppox.h>
#include <linux/ppp-ioctl.h>
#include <linux/if_pppol2tp.h>
int main(void) {
  printf("sockaddr_pppox %zu\n", sizeof(struct sockaddr_pppox));
  printf("sockaddr_pppol2tp %zu\n", sizeof(struct sockaddr_pppol2tp));
  printf("pppol2tp_ioc_stats %zu\n", sizeof(struct pppol2tp_ioc_stats));
  printf("PPPIOCGCHAN %lu\n", (unsigned long)PPPIOCGCHAN);
  printf("PPPIOCATTCHAN %lu\n", (unsigned long)PPPIOCATTCHAN);
  printf("PPPIOCGL2TPSTATS %lu\n", (unsigned long)PPPIOCGL2TPSTATS);
  printf("PPPIOCBRIDGECHAN %lu\n", (unsigned long)PPPIOCBRIDGECHAN);
  printf("PPPIOCUNBRIDGECHAN %lu\n", (unsigned long)PPPIOCUNBRIDGECHAN);
  printf("AF_PPPOX %d\n", AF_PPPOX);
  printf("PX_PROTO_OE %d\n", PX_PROTO_OE);
  printf("PX_PROTO_OL2TP %d\n", PX_PROTO_OL2TP);
  printf("SOL_PPPOL2TP %d\n", SOL_PPPOL2TP);
  printf("PPPOL2TP_SO_SENDSEQ %d\n", PPPOL2TP_SO_SENDSEQ);
  printf("PPPOL2TP_SO_RECVSEQ %d\n", PPPOL2TP_SO_RECVSEQ);
  return 0;
}
"""


def test_layouts_and_numbers_match_the_uapi_values() -> None:
    assert OURS == UAPI


def test_layouts_match_the_uapi_headers_when_a_compiler_is_present(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None or not Path("/usr/include/linux/if_pppox.h").exists():
        assert OURS == UAPI  # nothing more to compare against on this machine
        return
    src = tmp_path / "uapi.c"
    src.write_text(C_PROGRAM)
    subprocess.run([gcc, "-o", str(tmp_path / "uapi"), str(src)], check=True, timeout=60)
    out = subprocess.run([str(tmp_path / "uapi")], check=True, capture_output=True, text=True)
    built = {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}
    assert built == OURS


def test_ioctl_encoding_follows_asm_generic() -> None:
    assert pppox.io("t", 52) == 0x7434
    assert pppox.ior("t", 55, 4) == (2 << 30) | (4 << 16) | (ord("t") << 8) | 55
    assert pppox.iow("t", 56, 4) == (1 << 30) | (4 << 16) | (ord("t") << 8) | 56
    with pytest.raises(ValueError):
        pppox.ior("t", 1, 1 << 14)


def test_sockaddr_pppoe_fields_at_the_kernel_offsets() -> None:
    mac = bytes.fromhex("020000000001")
    sa = pppox.pack_sockaddr_pppoe(0x1234, mac, "veth-ab12")
    family, proto = struct.unpack_from("=HI", sa, 0)
    assert (family, proto) == (24, 0)
    assert sa[6:8] == b"\x12\x34"  # sid is __be16 at offset 6
    assert sa[8:14] == mac  # remote at 8
    assert sa[14:30] == b"veth-ab12".ljust(16, b"\0")  # dev at 14


def test_sockaddr_pppol2tp_fields_at_the_kernel_offsets() -> None:
    sa = pppox.pack_sockaddr_pppol2tp(
        fd=7, peer=("198.51.100.2", 1701), tunnel_id=0x0102, session_id=0x0304,
        peer_tunnel_id=0x0506, peer_session_id=0x0708,
    )  # fmt: skip
    assert struct.unpack_from("=HIii", sa, 0) == (24, 1, 0, 7)  # pid at 6, fd at 10
    # struct sockaddr_in at 14: family (host order), port and address (network order)
    assert struct.unpack_from("=H", sa, 14)[0] == socket.AF_INET
    assert sa[16:18] == (1701).to_bytes(2, "big")
    assert sa[18:22] == socket.inet_aton("198.51.100.2")
    assert sa[22:30] == b"\0" * 8
    # ids are host-order __u16 at 30..37
    assert struct.unpack_from("=HHHH", sa, 30) == (0x0102, 0x0304, 0x0506, 0x0708)


@pytest.mark.parametrize(
    ("sid", "mac", "dev"),
    [(0, b"\x02" * 6, "eth0"), (0xFFFF, b"\x02" * 6, "eth0"), (1, b"\x02" * 5, "eth0"),
     (1, b"\x02" * 6, ""), (1, b"\x02" * 6, "x" * 16)],
)  # fmt: skip
def test_sockaddr_pppoe_refuses_bad_values(sid: int, mac: bytes, dev: str) -> None:
    with pytest.raises(ValueError):
        pppox.pack_sockaddr_pppoe(sid, mac, dev)


def test_sockaddr_pppol2tp_refuses_out_of_range_ids() -> None:
    with pytest.raises(ValueError):
        pppox.pack_sockaddr_pppol2tp(
            fd=3, peer=("198.51.100.2", 1701), tunnel_id=0x10000, session_id=1,
            peer_tunnel_id=1, peer_session_id=1,
        )  # fmt: skip


u16 = st.integers(0, 0xFFFF)
u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(u16, u16, st.booleans(), st.lists(u64, min_size=8, max_size=8))
def test_l2tp_stats_round_trip(t: int, s: int, ipsec: bool, c: list[int]) -> None:
    stats = pppox.L2tpStats(t, s, ipsec, *c)
    data = stats.pack()
    assert len(data) == 72
    assert pppox.L2tpStats.unpack(data) == stats
    assert struct.unpack_from("=Q", data, 8)[0] == c[0]  # tx_packets at offset 8


def test_connect_raw_reports_errno() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError) as info:
            pppox.connect_raw(sock.fileno(), b"\xff\xff" + b"\0" * 14)  # unknown family
        assert info.value.errno is not None and info.value.errno > 0


def test_ioctls_on_a_non_ppp_descriptor_raise_oserror() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for call in (pppox.get_channel, pppox.get_l2tp_stats, pppox.unbridge_channel):
            with pytest.raises(OSError):
                call(sock.fileno())
        with pytest.raises(OSError):
            pppox.attach_channel(sock.fileno(), 1)
        with pytest.raises(OSError):
            pppox.bridge_channels(sock.fileno(), 1)


# -- the BPF drop filter ----------------------------------------------------------------------


def run_bpf(program: bytes, frame: bytes) -> int:
    """A classic BPF interpreter for the instructions session_drop_filter emits."""
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns) + 1):
        code, jt, jf, k = insns[pc]
        if code == 0x28:  # ldh [k]
            if k + 2 > len(frame):
                return 0
            acc = int.from_bytes(frame[k : k + 2], "big")
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not return")


def session_frame(sid: int, proto: int) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x88\x64"
    return eth + struct.pack("!BBHH", 0x11, 0, sid, 4) + proto.to_bytes(2, "big") + b"xx"


@settings(max_examples=300, deadline=None)
@given(
    st.sets(st.integers(1, 0xFFFE), max_size=40),
    st.integers(1, 0xFFFE),
    st.sampled_from([0x0021, 0x0057, 0x0281, 0xC021, 0xC223, 0x8021, 0x8057]),
)
def test_drop_filter_drops_only_data_of_bridged_sessions(
    sids: set[int], sid: int, proto: int
) -> None:
    program = session_drop_filter(sids)
    verdict = run_bpf(program, session_frame(sid, proto))
    dropped = sid in sids and proto < 0x8000
    assert (verdict == 0) == dropped


def test_drop_filter_is_accepted_by_the_kernel() -> None:
    # SO_ATTACH_FILTER works on any socket: the kernel checks the program and sock_fprog
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        attach_filter(sock, session_drop_filter(range(1, 2001)))
        attach_filter(sock, session_drop_filter([]))
        with pytest.raises(OSError):
            attach_filter(sock, b"\x06\x00\x00\x00")  # not a whole instruction
