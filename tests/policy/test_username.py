from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import ParsedUser, UsernameConfig, parse_username


@pytest.mark.parametrize(
    ("name", "user", "realm"),
    [
        ("alice@ISP-A.example", "alice", "isp-a.example"),
        ("a@b@isp.example", "a@b", "isp.example"),  # the last @ splits
        ("ISP-B.example/bob", "bob", "isp-b.example"),
        ("isp-b.example\\bob", "bob", "isp-b.example"),
        ("dom/sub\\user", "sub\\user", "dom"),  # the first prefix delimiter splits
        ("dom/user@realm", "dom/user", "realm"),  # suffix wins over prefix
        ("plain", "plain", ""),
        ("trailing@", "trailing", ""),
        ("", "", ""),
    ],
)
def test_parse_default_config(name: str, user: str, realm: str) -> None:
    assert parse_username(name) == ParsedUser(user, realm, name)


def test_custom_delimiters_and_case() -> None:
    cfg = UsernameConfig(("%",), ("!",), "preserve", "lower")
    assert parse_username("Bob%Realm", cfg) == ParsedUser("bob", "Realm", "Bob%Realm")
    assert parse_username("Realm!Bob", cfg) == ParsedUser("bob", "Realm", "Realm!Bob")
    assert parse_username("a@b", cfg) == ParsedUser("a@b", "", "a@b")


def test_radius_name_strips_only_when_asked() -> None:
    p = parse_username("alice@isp.example")
    assert p.radius_name(True) == "alice" and p.radius_name(False) == "alice@isp.example"
    assert parse_username("plain").radius_name(True) == "plain"


@settings(max_examples=200, deadline=None)
@given(
    user=st.text(st.characters(blacklist_characters="@/\\"), max_size=20),
    realm=st.text(st.characters(blacklist_characters="@/\\"), max_size=20),
)
def test_suffix_round_trip(user: str, realm: str) -> None:
    p = parse_username(f"{user}@{realm}")
    assert p.user == user and p.realm == realm.lower() and p.full == f"{user}@{realm}"
