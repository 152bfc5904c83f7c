"""Ethernet MAC addresses as 6-octet ``bytes`` with parse/format helpers."""

from __future__ import annotations

from typing import NewType

MacAddress = NewType("MacAddress", bytes)

BROADCAST = MacAddress(b"\xff" * 6)


def parse_mac(text: str) -> MacAddress:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r} (expected aa:bb:cc:dd:ee:ff)")
    return MacAddress(bytes(int(p, 16) for p in parts))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
