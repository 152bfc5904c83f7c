"""Authenticator side of PAP (RFC 1334 section 2) and CHAP (RFC 1994 sections 2 and 4).

Neither authenticator decides: each returns what the peer sent and waits for the owner's
verdict (:meth:`accept` / :meth:`reject`), then sends Success/Failure (CHAP) or
Authenticate-Ack/Nak (PAP). A peer that repeats its Response/Request after the verdict gets
the same verdict again (RFC 1994 section 4.2, RFC 1334 section 2.2.1). CHAP retransmits the
Challenge with the same Identifier and Value on the restart timer. MS-CHAPv2 (algorithm
0x81, RFC 2759) uses the CHAP packet format and is carried through unverified.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from broker.ppp.codec import (
    ChapValue,
    PapRequest,
    decode_chap_value,
    decode_control,
    decode_pap_request,
    encode_control,
    encode_pap_message,
)
from broker.ppp.constants import ChapCode, PapCode, PppProtocol

Send = Callable[[bytes], None]


def _bump(counters: dict[str, int], key: str) -> None:
    counters[key] = counters.get(key, 0) + 1


class PapAuthenticator:
    """Waits for an Authenticate-Request; the owner answers accept()/reject()."""

    def __init__(self, send: Send, counters: dict[str, int]) -> None:
        self._send = send
        self.counters = counters
        self.request: PapRequest | None = None
        self.ident = 0
        self.verdict: tuple[int, bytes] | None = None

    def receive(self, payload: bytes, now: float) -> PapRequest | None:
        """Returns the request the first time one arrives, else None."""
        pkt = decode_control(payload)
        if pkt.code != PapCode.AUTHENTICATE_REQUEST:
            _bump(self.counters, "pap-unexpected-code")
            return None
        request = decode_pap_request(pkt.data)
        if self.verdict is not None:
            code, message = self.verdict
            self._answer(code, pkt.identifier, message)
            return None
        self.ident = pkt.identifier
        if self.request is not None:
            return None  # retransmission while the verdict is pending
        self.request = request
        return request

    def _answer(self, code: int, ident: int, message: bytes) -> None:
        self._send(encode_control(PppProtocol.PAP, code, ident, encode_pap_message(message)))

    def accept(self, message: bytes) -> None:
        self.verdict = (PapCode.AUTHENTICATE_ACK, message)
        self._answer(PapCode.AUTHENTICATE_ACK, self.ident, message)

    def reject(self, message: bytes) -> None:
        self.verdict = (PapCode.AUTHENTICATE_NAK, message)
        self._answer(PapCode.AUTHENTICATE_NAK, self.ident, message)

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None

    @property
    def gave_up(self) -> bool:
        return False


class ChapAuthenticator:
    """Sends a Challenge, retransmits it, returns the first matching Response."""

    def __init__(
        self,
        send: Send,
        counters: dict[str, int],
        *,
        algorithm: int,
        name: bytes,
        restart_timer: float,
        max_challenges: int,
        rand_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._send = send
        self.counters = counters
        self.algorithm = algorithm
        self.name = name
        self.restart_timer = restart_timer
        self.remaining = max_challenges
        self.ident = rand_bytes(1)[0]
        self.challenge = rand_bytes(16)
        self.response: ChapValue | None = None
        self.verdict: tuple[int, bytes] | None = None
        self._deadline: float | None = None
        self.gave_up = False

    def start(self, now: float) -> None:
        self._send_challenge(now)

    def _send_challenge(self, now: float) -> None:
        data = ChapValue(self.challenge, self.name).encode()
        self._send(encode_control(PppProtocol.CHAP, ChapCode.CHALLENGE, self.ident, data))
        self.remaining -= 1
        self._deadline = now + self.restart_timer

    def receive(self, payload: bytes, now: float) -> ChapValue | None:
        pkt = decode_control(payload)
        if pkt.code != ChapCode.RESPONSE:
            _bump(self.counters, "chap-unexpected-code")
            return None
        if pkt.identifier != self.ident:
            _bump(self.counters, "chap-stale-response")
            return None
        value = decode_chap_value(pkt.data)
        if self.verdict is not None:
            code, message = self.verdict
            self._answer(code, message)
            return None
        if self.response is not None:
            return None  # repeated while the verdict is pending
        self.response = value
        self._deadline = None
        return value

    def _answer(self, code: int, message: bytes) -> None:
        self._send(encode_control(PppProtocol.CHAP, code, self.ident, message))

    def accept(self, message: bytes) -> None:
        self.verdict = (ChapCode.SUCCESS, message)
        self._answer(ChapCode.SUCCESS, message)

    def reject(self, message: bytes) -> None:
        self.verdict = (ChapCode.FAILURE, message)
        self._answer(ChapCode.FAILURE, message)

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self.remaining > 0:
            self._send_challenge(now)
        else:
            self._deadline = None
            self.gave_up = True
