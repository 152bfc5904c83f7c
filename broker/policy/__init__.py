"""Realm policies (YAML -> frozen dataclasses), LNS selection and failover classification.

Pure: no I/O beyond reading policy files, no clock, randomness injected (RFC 2809, RFC 2868).
"""

from __future__ import annotations

from broker.policy.failover import Action, SetupOutcome, classify, remaining_after_failure
from broker.policy.loader import PolicyError, load_policies
from broker.policy.model import (
    LnsEntry,
    MatchRule,
    ParsedUser,
    PolicySet,
    RealmPolicy,
    UsernameConfig,
)
from broker.policy.selection import (
    Candidate,
    LoadView,
    candidates_from_radius,
    select,
    static_candidates,
)
from broker.policy.username import parse_username

__all__ = [
    "Action",
    "Candidate",
    "LnsEntry",
    "LoadView",
    "MatchRule",
    "ParsedUser",
    "PolicyError",
    "PolicySet",
    "RealmPolicy",
    "SetupOutcome",
    "UsernameConfig",
    "candidates_from_radius",
    "classify",
    "load_policies",
    "parse_username",
    "remaining_after_failure",
    "select",
    "static_candidates",
]
