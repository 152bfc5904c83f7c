"""Wire helpers shared by every codec: a bounds-checked byte cursor, protocol errors, MACs."""

from broker.wire.buffer import Buffer, BufferReadError
from broker.wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from broker.wire.mac import MacAddress, format_mac, parse_mac

__all__ = [
    "Buffer",
    "BufferReadError",
    "LocalProtocolError",
    "MacAddress",
    "ProtocolError",
    "RemoteProtocolError",
    "format_mac",
    "parse_mac",
]
