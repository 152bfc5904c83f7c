"""Events of :class:`broker.ppp.link.PppLink` and the credential values it carries."""

from __future__ import annotations

from dataclasses import dataclass

from broker.ppp.proxy import ProxyMaterial


@dataclass(frozen=True, slots=True)
class PapCredentials:
    """PAP (RFC 1334 section 2.2.1): the cleartext password as sent by the peer."""

    password: bytes


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """CHAP (RFC 1994 section 4.1): identifier, our challenge and the peer's response."""

    ident: int
    challenge: bytes
    response: bytes
    algorithm: int


@dataclass(frozen=True, slots=True)
class MschapV2Credentials:
    """MS-CHAPv2 (RFC 2759 section 4), carried unverified: our 16-octet authenticator
    challenge and the peer's 49-octet response (peer challenge, reserved, NT-Response,
    flags)."""

    ident: int
    challenge: bytes
    response: bytes


Credentials = PapCredentials | ChapCredentials | MschapV2Credentials


@dataclass(frozen=True, slots=True)
class LcpOpened:
    """LCP reached Opened; ``peer_mru`` is the MRU the peer can receive."""

    peer_mru: int = 1500


@dataclass(frozen=True, slots=True)
class CredentialsReceived:
    """The peer authenticated; the call flow must answer with accept() or reject().

    ``username`` is the peer's name decoded as UTF-8 with surrogateescape, so
    ``username.encode("utf-8", "surrogateescape")`` gives back the exact octets.
    """

    username: str
    auth: Credentials
    proxy: ProxyMaterial


@dataclass(frozen=True, slots=True)
class LinkTerminated:
    """The link ended. reason: 'peer-terminate', 'echo-timeout', 'lcp-failed',
    'auth-timeout', 'auth-rejected' or whatever was given to terminate() (e.g. 'admin')."""

    reason: str
    by_peer: bool


LinkEvent = LcpOpened | CredentialsReceived | LinkTerminated
