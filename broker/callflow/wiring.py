"""Translations between the protocol engines that the call flow joins (pure functions).

PPP credentials + PPPoE line information -> RADIUS Access-Request (RFC 2865, RFC 4679);
RADIUS tunnel groups + realm policy -> LNS candidates (RFC 2868, broker.policy.selection);
PPP proxy material -> L2TP ICRQ/ICCN parameters (RFC 2661 4.4.5);
L2TP outcomes -> failover actions (broker.policy.failover).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import SessionClosed, TunnelClosed
from broker.policy.failover import Action, SetupOutcome, classify
from broker.policy.selection import Candidate
from broker.ppp.events import ChapCredentials, CredentialsReceived, MschapV2Credentials
from broker.ppp.link import LinkConfig
from broker.pppoe.discovery import DiscoveryServer, SessionOpened
from broker.radius import packet as radius_packet
from broker.radius.client import AuthRequest, RadiusClient
from broker.radius.client import ChapCredentials as RadiusChap
from broker.radius.constants import Attr
from broker.wire import format_mac

#: DSL Forum vendor 3561 (RFC 4679 section 4): Agent-Circuit-Id 1, Agent-Remote-Id 2.
DSL_FORUM_VENDOR = 3561


@dataclass(slots=True)
class CallFlowEngines:
    """The engines one broker node runs; the call flow owns and drives them."""

    discovery: DiscoveryServer
    radius: RadiusClient
    l2tp: L2tpEndpoint
    link_config: LinkConfig
    resolve_secret: Callable[[str], bytes | None] | None = None
    rand_bytes: Callable[[int], bytes] = os.urandom


def nas_port_id(opened: SessionOpened) -> str:
    """NAS-Port-Id: the DSL circuit id when the access node inserted one, else the interface."""
    circuit = opened.line_info.circuit_id
    if circuit:
        return circuit.decode("utf-8", "replace")
    return opened.key.interface


def auth_request(
    opened: SessionOpened,
    creds: CredentialsReceived,
    radius_user: str,
    *,
    nas_ip: str,
    nas_identifier: str,
    nas_port_type: int,
) -> AuthRequest:
    auth = creds.auth
    chap: RadiusChap | None = None
    pap: bytes | None = None
    if isinstance(auth, ChapCredentials):
        chap = RadiusChap(auth.ident, auth.challenge, auth.response)
    elif isinstance(auth, MschapV2Credentials):
        raise ValueError("MS-CHAPv2 is carried to the LNS, not verified by RADIUS here")
    else:
        pap = auth.password
    extra: list[tuple[int, bytes]] = []
    line = opened.line_info
    for sub, value in ((1, line.circuit_id), (2, line.remote_id)):
        if value:
            extra.append(radius_packet.vendor_attribute(DSL_FORUM_VENDOR, sub, value))
    return AuthRequest(
        user_name=radius_user,
        pap_password=pap,
        chap=chap,
        nas_ip=nas_ip,
        nas_identifier=nas_identifier,
        nas_port_type=nas_port_type,
        nas_port=opened.key.session_id,
        nas_port_id=nas_port_id(opened),
        calling_station_id=format_mac(opened.key.mac),
        extra=tuple(extra),
    )


def call_params(opened: SessionOpened, creds: CredentialsReceived, serial: int) -> CallParams:
    """ICRQ/ICCN parameters carrying the proxy LCP and proxy authentication material."""
    proxy = creds.proxy
    rate_down = opened.line_info.actual_rate_down
    rate_up = opened.line_info.actual_rate_up
    return CallParams(
        calling_number=format_mac(opened.key.mac),
        called_number=opened.service_name,
        serial=serial,
        tx_connect_speed=(rate_down * 1000) if rate_down else 100_000_000,
        rx_connect_speed=(rate_up * 1000) if rate_up else None,
        framing_type=1,
        initial_received_confreq=proxy.initial_received_confreq or None,
        last_sent_confreq=proxy.last_sent_confreq or None,
        last_received_confreq=proxy.last_received_confreq or None,
        authen_type=int(proxy.authen_type) if proxy.authen_type is not None else None,
        authen_name=proxy.authen_name.decode("utf-8", "surrogateescape") or None,
        authen_challenge=proxy.authen_challenge or None,
        authen_id=proxy.authen_id,
        authen_response=proxy.authen_response or None,
    )


def tunnel_config(
    cand: Candidate,
    *,
    host_name: str,
    hide_avps: bool,
    retransmit: tuple[float, ...],
    hello_interval: float,
    receive_window: int,
) -> TunnelConfig:
    return TunnelConfig(
        host_name=cand.host_name or host_name,
        secret=cand.secret,
        hide_avps=hide_avps and cand.secret is not None,
        retransmit=retransmit,
        hello_interval=hello_interval,
        receive_window=receive_window,
    )


def cdn_action(ev: SessionClosed) -> str:
    """'next' when the LNS's CDN says try another LNS (RFC 2661 4.4.2 results 2/4/5/6, error 7)."""
    action = classify(SetupOutcome("cdn", ev.result, ev.error))
    return "next" if action.next_candidate else "fail"


def _tunnel_close_action(ev: TunnelClosed) -> Action | None:
    if ev.reason == "local":
        return None
    if not ev.during_setup and ev.reason == "stopccn-received":
        return None  # an orderly StopCCN from an established tunnel is not a failure
    kind: Any = {
        "retransmit-exhausted": "sccrq-timeout" if ev.during_setup else "control-timeout",
        "stopccn-received": "stopccn",
        "auth-failed": "tunnel-auth-failed",
    }.get(ev.reason)
    if kind is None:  # we ended it (rejected, protocol-error, ...): the result is ours
        return classify(SetupOutcome("stopccn"))
    return classify(SetupOutcome(kind, ev.result, ev.error))


def tunnel_close_locks_out(ev: TunnelClosed) -> bool:
    """A tunnel that failed while being set up, or was lost, locks its LNS out (not an
    authentication failure: see :func:`tunnel_close_holds_candidate`)."""
    action = _tunnel_close_action(ev)
    return action is not None and action.lockout


def tunnel_close_holds_candidate(ev: TunnelClosed) -> bool:
    """A tunnel authentication failure holds back only its candidate (LNS + tunnel identity,
    i.e. the secret and host name), RFC 2661 §5.1.1 / StopCCN result 4."""
    action = _tunnel_close_action(ev)
    return action is not None and action.candidate_hold


def class_attrs(attributes: tuple[tuple[int, bytes], ...]) -> tuple[bytes, ...]:
    return tuple(v for t, v in attributes if t == Attr.CLASS)
