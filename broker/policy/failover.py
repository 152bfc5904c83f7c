"""Classify an L2TP setup outcome into what the call flow does next (RFC 2661 §4.4.2, §5.8).

Tunnel-level failures (SCCRQ retransmit exhaustion, StopCCN during setup, unreachable peer,
control retransmit exhaustion during ICRQ) mean the LNS is not usable: try the next candidate
AND lock the LNS out for the policy's hold time. A tunnel authentication failure (the Challenge
Response did not verify, RFC 2661 §5.1.1, or the LNS answered StopCCN Result Code 4 "not
authorized") says the *candidate's* secret or host name is wrong, not that the LNS is down: try
the next candidate and hold only that candidate (LNS + tunnel identity) back; other realms'
tunnels to the same LNS with the right secret keep working.
Session-level refusals (CDN with Result Code 2/4/5/6, or General Error Code 7 "try another")
mean this LNS will not take this call: try the next candidate, no lockout. Any other CDN is the
LNS's final word on the subscriber: fail the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from broker.policy.model import RealmPolicy
from broker.policy.selection import Candidate


class CdnResult(IntEnum):
    LOST_CARRIER = 1  #: RFC 2661 §4.4.2 CDN Result Code 1
    GENERAL_ERROR = 2  #: RFC 2661 §4.4.2 CDN Result Code 2 (see Error Code)
    ADMINISTRATIVE = 3  #: RFC 2661 §4.4.2 CDN Result Code 3
    TEMPORARY_LACK = 4  #: RFC 2661 §4.4.2 CDN Result Code 4 (temporary lack of facilities)
    PERMANENT_LACK = 5  #: RFC 2661 §4.4.2 CDN Result Code 5 (permanent lack of facilities)
    INVALID_DESTINATION = 6  #: RFC 2661 §4.4.2 CDN Result Code 6
    NO_CARRIER = 7  #: RFC 2661 §4.4.2 CDN Result Code 7
    BUSY = 8  #: RFC 2661 §4.4.2 CDN Result Code 8
    NO_DIAL_TONE = 9  #: RFC 2661 §4.4.2 CDN Result Code 9
    TIMEOUT = 10  #: RFC 2661 §4.4.2 CDN Result Code 10
    NO_FRAMING = 11  #: RFC 2661 §4.4.2 CDN Result Code 11


class GeneralError(IntEnum):
    NO_ERROR = 0  #: RFC 2661 §4.4.2 General Error Code 0
    NO_CONTROL_CONNECTION = 1  #: RFC 2661 §4.4.2 General Error Code 1
    BAD_LENGTH = 2  #: RFC 2661 §4.4.2 General Error Code 2
    BAD_VALUE = 3  #: RFC 2661 §4.4.2 General Error Code 3
    NO_RESOURCES = 4  #: RFC 2661 §4.4.2 General Error Code 4
    INVALID_SESSION_ID = 5  #: RFC 2661 §4.4.2 General Error Code 5
    VENDOR_ERROR = 6  #: RFC 2661 §4.4.2 General Error Code 6
    TRY_ANOTHER = 7  #: RFC 2661 §4.4.2 General Error Code 7 ("try another")
    UNKNOWN_MANDATORY_AVP = 8  #: RFC 2661 §4.4.2 General Error Code 8


#: RFC 2661 §4.4.2 StopCCN Result Code 4: requester is not authorized to establish a control
#: channel (the LNS's answer to a wrong tunnel secret or an unknown host name).
STOPCCN_NOT_AUTHORIZED = 4

#: CDN Result Codes that move the call to the next candidate.
TRY_NEXT_CDN_RESULTS = frozenset(
    {
        CdnResult.GENERAL_ERROR,
        CdnResult.TEMPORARY_LACK,
        CdnResult.PERMANENT_LACK,
        CdnResult.INVALID_DESTINATION,
    }
)

OutcomeKind = Literal[
    "sccrq-timeout",  # SCCRQ retransmissions exhausted, no SCCRP
    "control-timeout",  # any control retransmit exhaustion during setup (ICRQ, SCCCN)
    "unreachable",  # ICMP unreachable / send error towards the LNS
    "stopccn",  # StopCCN received during setup
    "tunnel-auth-failed",  # tunnel Challenge Response did not verify
    "cdn",  # CDN received during session setup
]


@dataclass(frozen=True, slots=True)
class SetupOutcome:
    kind: OutcomeKind
    result_code: int | None = None
    error_code: int | None = None


@dataclass(frozen=True, slots=True)
class Action:
    next_candidate: bool
    lockout: bool  # the whole LNS is locked out (every identity, every realm)
    reason: str
    candidate_hold: bool = False  # only this candidate (LNS + tunnel identity) is held back

    @property
    def kind(
        self,
    ) -> Literal["next-candidate+lockout", "next-candidate+hold", "next-candidate", "fail-call"]:
        if not self.next_candidate:
            return "fail-call"
        if self.lockout:
            return "next-candidate+lockout"
        return "next-candidate+hold" if self.candidate_hold else "next-candidate"


def classify(outcome: SetupOutcome) -> Action:
    if outcome.kind == "cdn":
        if outcome.error_code == GeneralError.TRY_ANOTHER:
            return Action(True, False, "CDN error 7: try another")
        if outcome.result_code in TRY_NEXT_CDN_RESULTS:
            return Action(True, False, f"CDN result {outcome.result_code}")
        return Action(False, False, f"CDN result {outcome.result_code}: LNS refused the call")
    if outcome.kind == "tunnel-auth-failed" or (
        outcome.kind == "stopccn" and outcome.result_code == STOPCCN_NOT_AUTHORIZED
    ):
        return Action(True, False, "tunnel-auth-failed", candidate_hold=True)
    return Action(True, True, outcome.kind)


def remaining_after_failure(
    remaining: list[Candidate], failed: Candidate, policy: RealmPolicy
) -> list[Candidate]:
    """Candidates still to try after ``failed`` failed, per ``policy.failover``:
    ``same-then-next-level`` keeps all; ``next-level`` skips the rest of the failed candidate's
    preference level; ``same-level-only`` never leaves that level."""
    rest = [c for c in remaining if c.lns_id != failed.lns_id or c.tunnel_key != failed.tunnel_key]
    if policy.failover == "next-level":
        return [c for c in rest if c.preference != failed.preference]
    if policy.failover == "same-level-only":
        return [c for c in rest if c.preference == failed.preference]
    return rest
