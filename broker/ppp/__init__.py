"""PPP for the LAC: LCP automaton (RFC 1661), PAP/CHAP authenticators, proxy material."""

from broker.ppp.events import (
    ChapCredentials,
    CredentialsReceived,
    LcpOpened,
    LinkEvent,
    LinkTerminated,
    MschapV2Credentials,
    PapCredentials,
)
from broker.ppp.link import LinkConfig, PppLink
from broker.ppp.proxy import ProxyMaterial

__all__ = [
    "ChapCredentials",
    "CredentialsReceived",
    "LcpOpened",
    "LinkConfig",
    "LinkEvent",
    "LinkTerminated",
    "MschapV2Credentials",
    "PapCredentials",
    "PppLink",
    "ProxyMaterial",
]
