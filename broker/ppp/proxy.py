"""Proxy LCP and proxy authentication material for the L2TP ICCN (RFC 2661 section 4.4.5).

AVP 26 Initial Received LCP CONFREQ, 27 Last Sent LCP CONFREQ, 28 Last Received LCP CONFREQ
carry option bytes only (no Code, Identifier or Length). AVPs 29-33 carry the Proxy Authen
Type, Name, Challenge, ID and Response. For PAP the Response is the password as received
(RFC 2661 section 4.4.5); for MS-CHAPv2 there is no Proxy Authen Type value, so
``authen_type`` stays None and the LNS must authenticate again.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.ppp.constants import ProxyAuthenType


@dataclass(frozen=True, slots=True)
class ProxyMaterial:
    initial_received_confreq: bytes = b""
    last_sent_confreq: bytes = b""
    last_received_confreq: bytes = b""
    authen_type: ProxyAuthenType | None = None
    authen_name: bytes = b""
    authen_challenge: bytes = b""
    authen_id: int | None = None
    authen_response: bytes = b""
