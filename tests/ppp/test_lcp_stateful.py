"""Stateful Hypothesis test of the LCP automaton (RFC 1661 4, 5) inside the LAC's PppLink,
with its PAP/CHAP authenticators, against an adversarial peer: well-formed packets of every
LCP code (matching and stale identifiers, acceptable and unacceptable options), malformed
packets (short, Length overrun, bad option lengths, bad protocol field), authentication
packets, NCP and unknown protocols, administrative commands and timer firings.

Invariants after every step: no exception escapes ``receive_frame``, every malformed frame
is counted as such, the automaton is in one of the table's ten states and the link in one
of its phases, everything we send is a well-formed PPP frame, output per input is bounded
(no amplification), timers are never in the past, one LinkTerminated at most.
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from broker.ppp import LinkConfig, LinkTerminated, PppLink
from broker.ppp.codec import (
    Option,
    decode_control,
    encode_control,
    encode_options,
    split_frame,
    u16_option,
    u32_option,
)
from broker.ppp.constants import LcpCode, LcpOption, PppProtocol
from broker.ppp.lcp_table import TABLE, State

PHASES = {
    "dead",
    "establish",
    "authenticate",
    "waiting",
    "authenticated",
    "terminating",
    "finished",
    "handed-over",
}
TABLE_STATES = {s for s, _ in TABLE}
LCP = int(PppProtocol.LCP)
OPTIONS = [
    u16_option(LcpOption.MRU, 1492),
    u16_option(LcpOption.MRU, 1500),
    u16_option(LcpOption.MRU, 60),  # below the minimum: Nak
    u32_option(LcpOption.MAGIC_NUMBER, 0x01020304),
    u32_option(LcpOption.MAGIC_NUMBER, 0),  # zero magic: Nak
    Option(LcpOption.AUTH_PROTOCOL, b"\xc0\x23"),  # PAP: we authenticate nobody
    Option(LcpOption.ACCM, b"\x00\x00\x00\x00"),  # rejected on PPPoE
    Option(LcpOption.PFC),
    Option(0x42, b"xyz"),  # unknown
]
MALFORMED_INFO = [
    b"",  # no header at all
    b"\x01\x01\x00",  # shorter than the header
    b"\x01\x01\x00\x02",  # Length < 4
    b"\x01\x01\x00\x40\x01\x04",  # Length overruns the frame
    b"\x01\x01\x00\x06\x01\x01",  # an option with Length 1
    b"\x01\x01\x00\x07\x01\x03\x05",  # MRU option of 1 octet
    b"\x01\x01\x00\x08\x05\x05\x00\x00",  # Magic-Number option of 3 octets
]


class LcpAdversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(5)
        self.link = PppLink(
            LinkConfig(restart_timer=1.0, max_configure=4, echo_interval=5.0, auth_timeout=8.0),
            rand_bytes=random.Random(6).randbytes,
        )
        self.now = 0.0
        self.ident = 0
        self.sent: list[bytes] = []
        self.last_request: tuple[int, bytes] | None = None  # (identifier, options) we sent
        self.malformed = 0
        self.terminated = 0
        self.link.start(self.now)
        self.collect()

    # -- helpers -------------------------------------------------------------------------
    def collect(self) -> int:
        frames = self.link.frames_to_send()
        for frame in frames:
            protocol, info = split_frame(frame)  # everything we send is well-formed
            packet = decode_control(info)
            if protocol == LCP and packet.code == LcpCode.CONFIGURE_REQUEST:
                self.last_request = (packet.identifier, packet.data)
        self.sent += frames
        while (event := self.link.next_event()) is not None:
            if isinstance(event, LinkTerminated):
                self.terminated += 1
        return len(frames)

    def feed(self, frame: bytes) -> int:
        """Deliver one frame; returns how many malformed inputs it counted."""
        before = self.link.counters.get("malformed", 0)
        self.link.receive_frame(frame, self.now)
        assert self.collect() <= 4, "more than four frames answered one input"
        delta = self.link.counters.get("malformed", 0) - before
        assert delta in (0, 1)
        self.malformed += delta
        return delta

    def lcp(self, code: int, data: bytes, ident: int | None = None) -> bytes:
        if ident is None:
            self.ident = (self.ident + 1) & 0xFF
            ident = self.ident
        return encode_control(LCP, code, ident, data)

    # -- the adversary ----------------------------------------------------------------------
    @rule(options=st.lists(st.sampled_from(OPTIONS), max_size=3))
    def peer_configure_request(self, options: list[Option]) -> None:
        self.feed(self.lcp(LcpCode.CONFIGURE_REQUEST, encode_options(options)))

    @rule(options=st.sampled_from([[], [OPTIONS[0], OPTIONS[3]]]))
    def peer_cooperates(self, options: list[Option]) -> None:
        """A well-behaved peer's half of the negotiation: acceptable request, then Ack."""
        self.feed(self.lcp(LcpCode.CONFIGURE_REQUEST, encode_options(options)))
        if self.last_request is not None:
            ident, data = self.last_request
            self.feed(self.lcp(LcpCode.CONFIGURE_ACK, data, ident))

    @rule(how=st.sampled_from(["pap", "chap", "chap-stale"]))
    def peer_answers_authentication(self, how: str) -> None:
        challenges = [decode_control(f[2:]) for f in self.sent if f[:2] == bytes.fromhex("c223")]
        if how == "pap":
            self.feed(encode_control(PppProtocol.PAP, 1, 7, b"\x04user\x04pass"))
        elif challenges:
            ident = challenges[-1].identifier ^ (how == "chap-stale")
            response = b"\x10" + bytes(16) + b"user@isp"
            self.feed(encode_control(PppProtocol.CHAP, 2, ident, response))

    @rule(code=st.sampled_from([2, 3, 4]), matching=st.booleans(), tamper=st.booleans())
    def peer_answers_our_request(self, code: int, matching: bool, tamper: bool) -> None:
        if self.last_request is None:
            return
        ident, data = self.last_request
        if tamper and data:
            data = data[:-1] + bytes((data[-1] ^ 1,))
        self.feed(self.lcp(code, data, ident if matching else (ident + 1) & 0xFF))

    @rule(
        code=st.sampled_from([5, 6, 7, 8, 9, 10, 11, 12, 0, 200]),
        data=st.binary(max_size=12),
    )
    def peer_other_code(self, code: int, data: bytes) -> None:
        # Short echo/discard/Protocol-Reject bodies are malformed; others are just odd.
        self.feed(self.lcp(code, data))

    @rule(info=st.sampled_from(MALFORMED_INFO))
    def peer_malformed_lcp(self, info: bytes) -> None:
        inactive = self.link.phase in ("finished", "handed-over", "dead")
        assert self.feed(LCP.to_bytes(2, "big") + info) == (0 if inactive else 1), info

    @rule(proto=st.sampled_from([0x0000, 0xC020, 0x0100, 0xFFFF]), cut=st.booleans())
    def peer_bad_protocol_field(self, proto: int, cut: bool) -> None:
        frame = b"\xc0" if cut else proto.to_bytes(2, "big") + b"\x01\x01\x00\x04"
        inactive = self.link.phase in ("finished", "handed-over", "dead")
        assert self.feed(frame) == (0 if inactive else 1), frame

    @rule(
        protocol=st.sampled_from([PppProtocol.PAP, PppProtocol.CHAP]),
        code=st.integers(0, 5),
        body=st.sampled_from([b"", b"\x04user\x04pass", b"\x10" + bytes(16) + b"user", b"\xff"]),
        ident=st.integers(0, 255),
    )
    def peer_authenticates(self, protocol: int, code: int, body: bytes, ident: int) -> None:
        self.feed(encode_control(protocol, code, ident, body))

    @rule(protocol=st.sampled_from([0x0021, 0x8021, 0x8057, 0x4021, 0xC025]))
    def peer_other_protocol(self, protocol: int) -> None:
        self.feed(protocol.to_bytes(2, "big") + b"\x01\x01\x00\x04")

    # -- our side ------------------------------------------------------------------------
    @rule(verdict=st.sampled_from(["accept", "reject", "terminate"]))
    def broker_decides(self, verdict: str) -> None:
        if verdict == "accept":
            self.link.accept("welcome", self.now)
        elif verdict == "reject":
            self.link.reject("no", self.now)
        else:
            self.link.terminate("admin", self.now)
        self.collect()

    @rule(dt=st.sampled_from([0.0, 0.3, 1.0, 3.0, 10.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        for _ in range(100):
            deadline = self.link.get_timer()
            if deadline is None or deadline > self.now:
                break
            self.link.handle_timer(self.now)
            self.collect()
        else:
            raise AssertionError("a timer keeps firing without advancing")

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def consistent(self) -> None:
        assert self.link.lcp.state in TABLE_STATES
        assert isinstance(self.link.lcp.state, State)
        assert self.link.phase in PHASES
        assert self.link.counters.get("malformed", 0) == self.malformed
        assert self.link.counters.get("internal-error", 0) == 0
        timer = self.link.get_timer()
        assert timer is None or timer >= self.now, (timer, self.now)
        assert self.terminated <= 1
        assert not self.link.lcp.out  # drained: nothing accumulates
        assert len(self.link.lcp.signals) == 0


LcpAdversary.TestCase.settings = settings(
    derandomize=True, max_examples=60, stateful_step_count=40, deadline=None
)
TestLcpAdversary = LcpAdversary.TestCase
