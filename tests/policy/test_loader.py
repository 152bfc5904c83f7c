"""Policy files: the shipped examples load; each kind of mistake names file, line, key path,
what is expected and a fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker.policy import PolicyError, load_policies
from broker.policy.model import LnsEntry, MatchRule

ROOT = Path(__file__).resolve().parents[2]

GOOD_REALM = """\
realm: isp-x.example
match:
  kind: exact
  value: isp-x.example
static_pool:
  - name: lns1
    address: 192.0.2.10
"""


def make(
    tmp_path: Path, realm: str | None = None, defaults: str | None = None, **extra: str
) -> Path:
    (tmp_path / "realms").mkdir(exist_ok=True)
    if defaults is not None:
        (tmp_path / "defaults.yaml").write_text(textwrap.dedent(defaults))
    if realm is not None:
        (tmp_path / "realms" / "isp-x.example.yaml").write_text(textwrap.dedent(realm))
    for name, text in extra.items():
        (tmp_path / "realms" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def error(directory: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policies(directory)
    return info.value


def test_shipped_policies_load() -> None:
    ps = load_policies(ROOT / "policies")
    assert [p.name for p in ps.realms] == ["isp-a.example", "isp-b.example"]
    a, parsed = ps.match("Alice@DSL.ISP-A.example")
    assert a.name == "isp-a.example" and parsed.realm == "dsl.isp-a.example"
    assert a.static_pool[0] == LnsEntry(
        "lns-a1", "192.0.2.10", 1701, "env:ISP_A_L2TP_SECRET", 3, 0, 8000, "lac.wholesale.example"
    )
    assert a.tunnel_source == "radius-then-static" and a.max_sessions == 20000
    b, parsed_b = ps.match("isp-b.example\\bob")
    assert b.name == "isp-b.example" and b.strip_realm and parsed_b.user == "bob"
    assert b.match == MatchRule("exact", "isp-b.example") and b.lockout_hold == 120.0
    d, _ = ps.match("nobody")
    assert d.name == "default" and d.lockout_hold == 300.0


def test_realm_inherits_defaults(tmp_path: Path) -> None:
    d = make(tmp_path, GOOD_REALM, "policy:\n  strategy: least-sessions\n  lockout_hold: 42\n")
    (policy,) = load_policies(d).realms
    assert policy.strategy == "least-sessions" and policy.lockout_hold == 42.0
    assert policy.source_file.endswith("isp-x.example.yaml")


def test_missing_defaults_uses_built_in(tmp_path: Path) -> None:
    ps = load_policies(make(tmp_path, GOOD_REALM))
    assert ps.defaults.source_file == "<built-in>" and len(ps.realms) == 1


# Each case: (realm text, defaults text, line, key path, fragments the message must contain).
CASES = {
    "yaml-syntax": (
        "realm: isp-x.example\nmatch: [unclosed\n",
        None,
        None,
        "",
        ["YAML syntax error", "expected valid YAML", "fix:"],
    ),
    "unknown-key-typo": (
        GOOD_REALM + "stratgy: weighted-random\n",
        None,
        8,
        "stratgy",
        ["unknown key", "expected one of", "did you mean 'strategy'?"],
    ),
    "missing-realm": (
        "strategy: weighted-random\n",
        None,
        1,
        "realm",
        ["missing required key", "expected 'realm: NAME'"],
    ),
    "wrong-type-weight": (
        GOOD_REALM + "    weight: heavy\n",
        None,
        8,
        "static_pool[0].weight",
        ["expected an integer from 0 to 1000000", "'heavy'"],
    ),
    "port-out-of-range": (
        GOOD_REALM + "    port: 70000\n",
        None,
        8,
        "static_pool[0].port",
        ["expected an integer from 1 to 65535", "got 70000"],
    ),
    "bad-strategy": (
        GOOD_REALM + "strategy: round-robin\n",
        None,
        8,
        "strategy",
        ["expected one of: weighted-random, least-sessions, existing-first", "'round-robin'"],
    ),
    "bad-regex": (
        "realm: isp-x\nmatch:\n  kind: regex\n  value: '(isp-x'\n",
        None,
        4,
        "match.value",
        ["invalid regular expression", "expected a Python regex"],
    ),
    "bad-address": (
        GOOD_REALM.replace("192.0.2.10", "lns1.isp-x.example"),
        None,
        7,
        "static_pool[0].address",
        ["expected an IPv4 or IPv6 address", "'lns1.isp-x.example'"],
    ),
    "static-without-pool": (
        "realm: isp-x.example\ntunnel_source: static\n",
        None,
        1,
        "static_pool",
        ["tunnel_source is 'static' but static_pool is empty", "expected at least one LNS"],
    ),
    "unreachable-static-without-pool": (
        "realm: isp-x.example\non_radius_unreachable: static\n",
        None,
        1,
        "on_radius_unreachable",
        ["static_pool is empty", "expected at least one LNS entry"],
    ),
    "duplicate-key": (
        "realm: isp-x.example\nstrip_realm: true\nstrip_realm: false\n",
        None,
        3,
        "strip_realm",
        ["duplicate key (first set on line 2)"],
    ),
    "duplicate-lns-name": (
        GOOD_REALM + "  - name: lns1\n    address: 192.0.2.11\n",
        None,
        8,
        "static_pool[1].name",
        ["duplicate LNS name 'lns1'", "expected unique names"],
    ),
    "not-a-bool": (
        "realm: isp-x.example\nstrip_realm: maybe\n",
        None,
        2,
        "strip_realm",
        ["expected true or false", "'maybe'"],
    ),
    "pool-not-a-list": (
        "realm: isp-x.example\nstatic_pool:\n  name: lns1\n",
        None,
        3,
        "static_pool",
        ["expected a list of LNS entries", "got a mapping"],
    ),
    "missing-address": (
        "realm: isp-x.example\nstatic_pool:\n  - name: lns1\n    weight: 2\n",
        None,
        3,
        "static_pool[0].address",
        ["missing required key", "expected 'address:'"],
    ),
    "secret-inline": (
        GOOD_REALM + "    secret_ref: 'my secret pw!'\n",
        None,
        8,
        "static_pool[0].secret_ref",
        ["expected a secret reference (env:NAME", "never write the secret itself"],
    ),
    "negative-hold": (
        "realm: isp-x.example\nlockout_hold: -5\n",
        None,
        2,
        "lockout_hold",
        ["expected a number of seconds >= 1", "got -5"],
    ),
    "defaults-bad-case": (
        GOOD_REALM,
        "username:\n  realm_case: upper\n",
        2,
        "username.realm_case",
        ["expected one of: lower, preserve", "'upper'"],
    ),
    "defaults-policy-prefixed": (
        GOOD_REALM,
        "policy:\n  failover: sideways\n",
        2,
        "policy.failover",
        ["expected one of: same-then-next-level, next-level, same-level-only"],
    ),
    "match-missing-value": (
        "realm: isp-x\nmatch:\n  kind: suffix\n",
        None,
        3,
        "match.value",
        ["missing required key for kind 'suffix'", "fix: add 'value: ...'"],
    ),
    "top-level-list": (
        "- realm: isp-x\n",
        None,
        1,
        "",
        ["expected a realm policy (a mapping of 'key: value' lines), got a list"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_policy_mistake_messages(tmp_path: Path, case: str) -> None:
    realm, defaults, line, key_path, fragments = CASES[case]
    exc = error(make(tmp_path, realm, defaults))
    target = "defaults.yaml" if case.startswith("defaults-") else "isp-x.example.yaml"
    assert exc.file.endswith(target)
    if line is not None:
        assert exc.line == line, str(exc)
        assert f"{target}:{line}:" in str(exc)
    assert exc.key_path == key_path, str(exc)
    for fragment in fragments:
        assert fragment in str(exc), str(exc)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    exc = error(make(tmp_path, "realm: isp-x.example\nmatch: [unclosed\n"))
    assert exc.line >= 2


def test_duplicate_realm_across_files(tmp_path: Path) -> None:
    d = make(tmp_path, GOOD_REALM, other="realm: isp-x.example\n")
    exc = error(d)
    assert exc.file.endswith("other.yaml") and exc.line == 1 and exc.key_path == "realm"
    assert "already defined in" in str(exc) and "isp-x.example.yaml" in str(exc)


def test_duplicate_match_across_files(tmp_path: Path) -> None:
    d = make(
        tmp_path,
        GOOD_REALM,
        zz="realm: other\nmatch:\n  kind: exact\n  value: ISP-X.example\n",
    )
    exc = error(d)
    assert exc.file.endswith("zz.yaml") and exc.line == 2 and exc.key_path == "match"
    assert "match exact 'isp-x.example' is already used by" in str(exc)


def test_two_default_realms(tmp_path: Path) -> None:
    d = make(
        tmp_path,
        "realm: a\nmatch:\n  kind: default\n",
        zz="realm: b\nmatch:\n  kind: default\n",
    )
    assert "a second default realm is already used by" in str(error(d))


def test_not_a_directory(tmp_path: Path) -> None:
    exc = error(tmp_path / "nope")
    assert "not a directory" in str(exc) and "expected a policies directory" in str(exc)


def test_match_order_exact_suffix_regex_default(tmp_path: Path) -> None:
    d = make(
        tmp_path,
        None,
        None,
        a="realm: exact-one\nmatch:\n  kind: exact\n  value: dsl.isp.example\n",
        b="realm: short\nmatch:\n  kind: suffix\n  value: isp.example\n",
        c="realm: long\nmatch:\n  kind: suffix\n  value: .east.isp.example\n",
        d="realm: rx\nmatch:\n  kind: regex\n  value: 'r[0-9]+\\.net'\n",
        e="realm: fallback\nmatch:\n  kind: default\n",
    )
    ps = load_policies(d)
    assert ps.match("u@dsl.isp.example")[0].name == "exact-one"
    assert ps.match("u@a.east.isp.example")[0].name == "long"
    assert ps.match("u@isp.example")[0].name == "short"
    assert ps.match("u@notisp.example")[0].name == "fallback"
    assert ps.match("u@r42.net")[0].name == "rx"
    assert ps.match("u@r42.netx")[0].name == "fallback"
    assert ps.match("plain")[0].name == "fallback"
