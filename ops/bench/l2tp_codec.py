"""Micro-benchmark of the L2TP codec (a few seconds): messages per second per operation.

.venv/bin/python ops/bench/l2tp_codec.py [seconds-per-case]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from broker.l2tp.codec import (
    ControlMessage,
    bytes_avp,
    decode_control,
    encode_control,
    peek_header,
    proxy_authen_id_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.data import decode_data, encode_data_header

SECRET = b"bench-secret"

ICCN = ControlMessage(
    0x1234,
    0x5678,
    10,
    11,
    MessageType.ICCN,
    (
        uint32_avp(AvpType.TX_CONNECT_SPEED, 100_000_000),
        uint32_avp(AvpType.FRAMING_TYPE, 1),
        bytes_avp(AvpType.INITIAL_RECEIVED_LCP_CONFREQ, bytes.fromhex("0104058c0506deadbeef")),
        bytes_avp(AvpType.LAST_SENT_LCP_CONFREQ, bytes.fromhex("0104058c0304c0230506cafe0001")),
        bytes_avp(AvpType.LAST_RECEIVED_LCP_CONFREQ, bytes.fromhex("0104058c0506deadbeef")),
        uint16_avp(AvpType.PROXY_AUTHEN_TYPE, 3),
        str_avp(AvpType.PROXY_AUTHEN_NAME, "user@retail.example"),
        proxy_authen_id_avp(1),
        bytes_avp(AvpType.PROXY_AUTHEN_RESPONSE, b"password"),
    ),
)
ICCN_HIDDEN = ControlMessage(
    ICCN.tunnel_id,
    ICCN.session_id,
    ICCN.ns,
    ICCN.nr,
    ICCN.message_type,
    tuple(
        bytes_avp(a.type, a.value, mandatory=a.mandatory, hidden=a.type >= 29) for a in ICCN.avps
    ),
)
ZLB = ControlMessage(0x1234, 0, 12, 13, None)


def bench(name: str, fn: Callable[[], object], seconds: float) -> None:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    print(f"{name:40s} {n / elapsed:12,.0f} /s  {elapsed / n * 1e6:8.2f} us")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    iccn = encode_control(ICCN)
    iccn_h = encode_control(ICCN_HIDDEN, SECRET)
    zlb = encode_control(ZLB)
    data = encode_data_header(0x1234, 0x5678) + b"\xff\x03\x00\x21" + bytes(1400)
    print(f"ICCN {len(iccn)} octets, hidden ICCN {len(iccn_h)} octets, ZLB {len(zlb)} octets")
    bench("encode ICCN (9 AVPs, proxy LCP/auth)", lambda: encode_control(ICCN), seconds)
    bench("decode ICCN", lambda: decode_control(iccn), seconds)
    bench("encode ICCN, 4 hidden AVPs", lambda: encode_control(ICCN_HIDDEN, SECRET), seconds)
    bench("decode ICCN, 4 hidden AVPs", lambda: decode_control(iccn_h, SECRET), seconds)
    bench("encode ZLB", lambda: encode_control(ZLB), seconds)
    bench("decode ZLB", lambda: decode_control(zlb), seconds)
    bench("peek_header", lambda: peek_header(data), seconds)
    bench("decode_data (1404-octet frame)", lambda: decode_data(data), seconds)
    bench("encode_data_header", lambda: encode_data_header(0x1234, 0x5678), seconds)


if __name__ == "__main__":
    main()
