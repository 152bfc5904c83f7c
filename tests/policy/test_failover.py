from __future__ import annotations

import pytest

from broker.policy import RealmPolicy, SetupOutcome, classify, remaining_after_failure
from broker.policy.failover import CdnResult, GeneralError
from broker.policy.model import MatchRule
from broker.policy.selection import Candidate


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (SetupOutcome("sccrq-timeout"), "next-candidate+lockout"),
        (SetupOutcome("control-timeout"), "next-candidate+lockout"),
        (SetupOutcome("unreachable"), "next-candidate+lockout"),
        (SetupOutcome("stopccn", 2), "next-candidate+lockout"),
        (SetupOutcome("tunnel-auth-failed"), "next-candidate+hold"),
        (SetupOutcome("stopccn", 4), "next-candidate+hold"),  # not authorized: this identity
        (SetupOutcome("cdn", CdnResult.GENERAL_ERROR, 0), "next-candidate"),
        (SetupOutcome("cdn", CdnResult.TEMPORARY_LACK), "next-candidate"),
        (SetupOutcome("cdn", CdnResult.PERMANENT_LACK), "next-candidate"),
        (SetupOutcome("cdn", CdnResult.INVALID_DESTINATION), "next-candidate"),
        (SetupOutcome("cdn", CdnResult.LOST_CARRIER, GeneralError.TRY_ANOTHER), "next-candidate"),
        (SetupOutcome("cdn", CdnResult.ADMINISTRATIVE), "fail-call"),
        (SetupOutcome("cdn", CdnResult.LOST_CARRIER), "fail-call"),
        (SetupOutcome("cdn", CdnResult.BUSY), "fail-call"),
        (SetupOutcome("cdn", None), "fail-call"),
    ],
)
def test_classify(outcome: SetupOutcome, kind: str) -> None:
    assert classify(outcome).kind == kind


def cand(lns: str, pref: int) -> Candidate:
    return Candidate(lns, lns, 1701, None, pref, 1, None, (lns, None, None, None), "static")


@pytest.mark.parametrize(
    ("mode", "left"),
    [
        ("same-then-next-level", ["b", "c", "d"]),
        ("next-level", ["c", "d"]),
        ("same-level-only", ["b"]),
    ],
)
def test_remaining_after_failure(mode: str, left: list[str]) -> None:
    order = [cand("a", 0), cand("b", 0), cand("c", 5), cand("d", 9)]
    policy = RealmPolicy("r", MatchRule("exact", "r"), failover=mode)  # type: ignore[arg-type]
    rest = remaining_after_failure(order[1:], order[0], policy)
    assert [c.lns_id for c in rest] == left
