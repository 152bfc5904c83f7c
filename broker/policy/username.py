"""Username parsing into user and realm (RFC 2809 §3: the realm selects the tunnel).

Suffix form ``user@realm`` is tried first (the LAST suffix delimiter splits), then prefix forms
``realm/user`` and ``realm\\user`` (the FIRST prefix delimiter splits). The realm is case
folded per configuration; the full name is kept as received.
"""

from __future__ import annotations

from broker.policy.model import ParsedUser, UsernameConfig


def parse_username(username: str, config: UsernameConfig | None = None) -> ParsedUser:
    cfg = config if config is not None else UsernameConfig()
    user, realm = username, ""
    best = -1
    for delim in cfg.suffix_delimiters:
        best = max(best, username.rfind(delim))
    if best >= 0:
        delim_len = next(len(d) for d in cfg.suffix_delimiters if username.startswith(d, best))
        user, realm = username[:best], username[best + delim_len :]
    else:
        first = -1
        first_len = 0
        for delim in cfg.prefix_delimiters:
            pos = username.find(delim)
            if pos >= 0 and (first < 0 or pos < first):
                first, first_len = pos, len(delim)
        if first >= 0:
            realm, user = username[:first], username[first + first_len :]
    if cfg.realm_case == "lower":
        realm = realm.lower()
    if cfg.user_case == "lower":
        user = user.lower()
    return ParsedUser(user=user, realm=realm, full=username)
