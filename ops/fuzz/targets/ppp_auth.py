"""Fuzz target: PAP (RFC 1334 2.2) and CHAP (RFC 1994 4) packets, through the codec and the
authenticators.

Contract: the decoders and ``PapAuthenticator.receive`` / ``ChapAuthenticator.receive``
raise only RemoteProtocolError; decoded values re-encode byte for byte.
"""

from __future__ import annotations

import contextlib

from broker.ppp.auth import ChapAuthenticator, PapAuthenticator
from broker.ppp.codec import decode_chap_value, decode_pap_message, decode_pap_request
from broker.wire import RemoteProtocolError


def _rand(n: int) -> bytes:
    return bytes(n)  # CHAP identifier 0, so fuzzed Responses can match it


def test_one_input(data: bytes) -> None:
    body = data[4:]
    try:
        request = decode_pap_request(body)
    except RemoteProtocolError:
        pass
    else:
        assert request.encode() == body[: len(request.encode())]
    with contextlib.suppress(RemoteProtocolError):
        decode_pap_message(body)
    try:
        value = decode_chap_value(body)
    except RemoteProtocolError:
        pass
    else:
        assert value.encode() == body[: len(value.encode())]
    sent: list[bytes] = []
    counters: dict[str, int] = {}
    pap = PapAuthenticator(sent.append, counters)
    chap = ChapAuthenticator(
        sent.append,
        counters,
        algorithm=5,
        name=b"lac",
        restart_timer=1.0,
        max_challenges=2,
        rand_bytes=_rand,
    )
    chap.start(0.0)
    authenticators: tuple[PapAuthenticator | ChapAuthenticator, ...] = (pap, chap, pap, chap)
    for step, authenticator in enumerate(authenticators):
        try:
            got: object = authenticator.receive(data, float(step))
        except RemoteProtocolError:
            continue
        if got is not None:
            if step < 2:
                authenticator.accept(b"ok")
            else:
                authenticator.reject(b"no")
