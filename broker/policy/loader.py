"""Load ``defaults.yaml`` and ``realms/*.yaml`` into a :class:`PolicySet`, with located errors.

Every mistake raises :class:`PolicyError` naming the file, the line, the key path (``static_pool[1]
.weight``), what was expected and how to fix it. YAML is composed into nodes (which keep their
line numbers) and walked by hand; nothing is constructed blindly.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, cast

import yaml

from broker.policy.model import (
    CASE_FOLDINGS,
    FAILOVER_MODES,
    MATCH_KINDS,
    RADIUS_UNREACHABLE,
    STRATEGIES,
    TUNNEL_SOURCES,
    LnsEntry,
    MatchRule,
    PolicySet,
    RealmPolicy,
    UsernameConfig,
)


class PolicyError(Exception):
    """A policy file mistake, located: ``file:line: key.path: message``."""

    def __init__(self, file: str, line: int, key_path: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key_path = key_path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        path = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{path} {self.message}"


_TAG = "tag:yaml.org,2002:"

#: Keys a realm file may set; each maps to a RealmPolicy field of the same name.
POLICY_KEYS: tuple[str, ...] = (
    "radius_group",
    "strip_realm",
    "tunnel_source",
    "static_pool",
    "strategy",
    "max_sessions",
    "on_radius_unreachable",
    "lockout_hold",
    "failover",
    "max_tunnel_sessions",
)
REALM_KEYS: tuple[str, ...] = ("realm", "match", *POLICY_KEYS)
DEFAULTS_KEYS: tuple[str, ...] = ("username", "policy")
USERNAME_KEYS: tuple[str, ...] = (
    "suffix_delimiters",
    "prefix_delimiters",
    "realm_case",
    "user_case",
)
LNS_KEYS: tuple[str, ...] = (
    "name",
    "address",
    "port",
    "secret_ref",
    "weight",
    "preference",
    "max_sessions",
    "host_name",
)
MATCH_KEYS: tuple[str, ...] = ("kind", "value")
_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+|[A-Za-z0-9_.-]+)$")


@dataclass(slots=True)
class YamlFile:
    name: str

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else 0
        raise PolicyError(self.name, line, path, message)

    def mapping(
        self, node: yaml.Node, path: str, allowed: Sequence[str], what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node,
                path,
                f"expected {what} (a mapping of 'key: value' lines), got {_describe(node)}; "
                f"fix: write it as indented 'key: value' lines",
            )
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(key_node, path, "expected a plain key, got a complex key")
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.fail(
                    key_node,
                    sub,
                    f"duplicate key (first set on line {first}); "
                    f"fix: keep one '{key}:' line in this mapping",
                )
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.fail(
                    key_node,
                    sub,
                    f"unknown key; expected one of: {', '.join(allowed)}; fix: {hint}"
                    f"remove or rename it",
                )
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node: yaml.Node, path: str, expected: str) -> tuple[str, str]:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, f"expected {expected}, got {_describe(node)}")
        text = str(node.value)
        try:  # a "\ud800" escape gives a lone surrogate that no later .encode() accepts
            text.encode("utf-8")
        except UnicodeEncodeError:
            # (the text is not repeated: it may be a secret)
            self.fail(node, path, f"expected {expected}, got a lone \\uD800-\\uDFFF escape")
        return str(node.tag), text

    def integer(self, node: yaml.Node, path: str, low: int, high: int | None = None) -> int:
        span = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        tag, text = self.scalar(node, path, span)
        if tag != _TAG + "int":
            self.fail(node, path, f"expected {span}, got {text!r}; fix: write a plain number")
        try:  # YAML 1.1 also tags 0017 (octal), 1:30 (base 60), 0x_ as int
            value = int(text.replace("_", ""), 0)
        except ValueError:
            self.fail(node, path, f"expected {span}, got {text!r}; fix: write a plain number")
        if value < low or (high is not None and value > high):
            self.fail(node, path, f"expected {span}, got {value}; fix: use a value in range")
        return value

    def optional_integer(self, node: yaml.Node, path: str, low: int) -> int | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
            return None
        return self.integer(node, path, low)

    def number(self, node: yaml.Node, path: str, low: float) -> float:
        expected = f"a number of seconds >= {low:g}"
        tag, text = self.scalar(node, path, expected)
        if tag not in (_TAG + "int", _TAG + "float"):
            self.fail(node, path, f"expected {expected}, got {text!r}; fix: write e.g. 300")
        try:  # YAML 1.1 also tags .inf, 0x1F, 0017 and 1:30 as numbers
            value = float(text.replace("_", ""))
        except ValueError:
            self.fail(node, path, f"expected {expected}, got {text!r}; fix: write e.g. 300")
        if not value >= low or value == float("inf"):
            self.fail(node, path, f"expected {expected}, got {text}; fix: use a value in range")
        return value

    def boolean(self, node: yaml.Node, path: str) -> bool:
        tag, text = self.scalar(node, path, "true or false")
        if tag != _TAG + "bool":
            self.fail(node, path, f"expected true or false, got {text!r}; fix: write true/false")
        return text.lower() in ("true", "yes", "on", "y")

    def string(
        self, node: yaml.Node, path: str, what: str = "a non-empty string", *, secret: bool = False
    ) -> str:
        """A non-empty string scalar; with ``secret`` a refused value is not repeated in the
        error (it may be a secret written unquoted, e.g. as a number)."""
        tag, text = self.scalar(node, path, what)
        if tag != _TAG + "str" or text == "":
            got = f"a value of type {tag.rsplit(':', 1)[-1]}" if secret else repr(text)
            self.fail(node, path, f"expected {what}, got {got}; fix: quote the value")
        return text

    def choice(self, node: yaml.Node, path: str, choices: Sequence[str]) -> str:
        expected = f"one of: {', '.join(choices)}"
        _tag, text = self.scalar(node, path, expected)
        if text not in choices:
            close = difflib.get_close_matches(text, choices, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "pick one of them"
            self.fail(node, path, f"expected {expected}, got {text!r}; fix: {hint}")
        return text

    def string_list(self, node: yaml.Node, path: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(
                node,
                path,
                f'expected a list of strings, got {_describe(node)}; fix: write e.g. ["@"]',
            )
        return tuple(
            self.string(item, f"{path}[{i}]", "a non-empty string")
            for i, item in enumerate(node.value)
        )


def _describe(node: yaml.Node | None) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return "nothing" if node.tag == _TAG + "null" else f"the value {node.value!r}"
    return "an empty document"


def compose_yaml(path: Path) -> tuple[YamlFile, yaml.Node | None]:
    f = YamlFile(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), 0, "", f"cannot read file: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or "syntax error"
        raise PolicyError(
            str(path),
            line,
            "",
            f"YAML syntax error: {problem}; expected valid YAML; fix: check indentation, "
            "colons and quotes on this line",
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), 0, "", f"YAML error: {exc}") from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise PolicyError(
            str(path), 0, "", "YAML nested too deeply; expected a shallow document; fix: flatten it"
        ) from exc
    return f, node


def _lns_entry(f: YamlFile, node: yaml.Node, path: str) -> LnsEntry:
    m = f.mapping(node, path, LNS_KEYS, "an LNS entry")
    for required in ("name", "address"):
        if required not in m:
            f.fail(
                node,
                f"{path}.{required}",
                f"missing required key; expected '{required}:' in every static_pool entry; "
                f"fix: add '{required}: ...'",
            )
    name = f.string(m["name"][1], f"{path}.name")
    address = f.string(m["address"][1], f"{path}.address", "an IP address")
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        f.fail(
            m["address"][1],
            f"{path}.address",
            f"expected an IPv4 or IPv6 address, got {address!r}; fix: write the LNS address as "
            "a literal like 192.0.2.10 (no host names, no port)",
        )
    kw: dict[str, Any] = {"name": name, "address": address}
    if "port" in m:
        kw["port"] = f.integer(m["port"][1], f"{path}.port", 1, 65535)
    if "secret_ref" in m:
        ref = f.string(m["secret_ref"][1], f"{path}.secret_ref", "a secret reference")
        if not _SECRET_REF.match(ref):
            f.fail(
                m["secret_ref"][1],
                f"{path}.secret_ref",
                f"expected a secret reference (env:NAME, file:/absolute/path or a secret name), "
                f"got {ref!r}; fix: never write the secret itself here",
            )
        kw["secret_ref"] = ref
    if "weight" in m:
        kw["weight"] = f.integer(m["weight"][1], f"{path}.weight", 0, 1_000_000)
    if "preference" in m:
        kw["preference"] = f.integer(m["preference"][1], f"{path}.preference", 0, 2**32 - 1)
    if "max_sessions" in m:
        kw["max_sessions"] = f.optional_integer(m["max_sessions"][1], f"{path}.max_sessions", 1)
    if "host_name" in m:
        kw["host_name"] = f.string(m["host_name"][1], f"{path}.host_name", "a host name")
    return LnsEntry(**kw)


def _policy_fields(
    f: YamlFile, m: dict[str, tuple[yaml.Node, yaml.Node]], base: RealmPolicy
) -> RealmPolicy:
    kw: dict[str, Any] = {}
    converters: dict[str, Callable[[yaml.Node, str], object]] = {
        "radius_group": lambda n, p: f.string(n, p, "a RADIUS server group name"),
        "strip_realm": f.boolean,
        "tunnel_source": lambda n, p: f.choice(n, p, TUNNEL_SOURCES),
        "strategy": lambda n, p: f.choice(n, p, STRATEGIES),
        "max_sessions": lambda n, p: f.optional_integer(n, p, 1),
        "on_radius_unreachable": lambda n, p: f.choice(n, p, RADIUS_UNREACHABLE),
        "lockout_hold": lambda n, p: f.number(n, p, 1.0),
        "failover": lambda n, p: f.choice(n, p, FAILOVER_MODES),
        "max_tunnel_sessions": lambda n, p: f.integer(n, p, 1, 65535),
    }
    for key, (_, value) in m.items():
        if key in converters:
            kw[key] = converters[key](value, key)
    if "static_pool" in m:
        node = m["static_pool"][1]
        if not isinstance(node, yaml.SequenceNode):
            f.fail(
                node,
                "static_pool",
                f"expected a list of LNS entries ('- name: ...'), got {_describe(node)}; "
                "fix: start each entry with '- '",
            )
        entries = tuple(
            _lns_entry(f, item, f"static_pool[{i}]") for i, item in enumerate(node.value)
        )
        seen_names: dict[str, int] = {}
        seen_ids: dict[str, int] = {}
        for i, (item, entry) in enumerate(zip(node.value, entries, strict=True)):
            if entry.name in seen_names:
                f.fail(
                    item,
                    f"static_pool[{i}].name",
                    f"duplicate LNS name {entry.name!r} "
                    f"(also static_pool[{seen_names[entry.name]}]); "
                    "expected unique names; fix: rename one",
                )
            if entry.lns_id in seen_ids:
                f.fail(
                    item,
                    f"static_pool[{i}].address",
                    f"duplicate LNS endpoint {entry.lns_id} "
                    f"(also static_pool[{seen_ids[entry.lns_id]}]);"
                    " expected each address:port once; fix: remove the duplicate entry",
                )
            seen_names[entry.name] = i
            seen_ids[entry.lns_id] = i
        kw["static_pool"] = entries
    return replace(base, **kw)


def _load_defaults(path: Path) -> tuple[RealmPolicy, UsernameConfig]:
    base = RealmPolicy(name="default", match=MatchRule("default"), source_file=str(path))
    if not path.exists():
        return replace(base, source_file="<built-in>"), UsernameConfig()
    f, root = compose_yaml(path)
    if root is None:
        return base, UsernameConfig()
    top = f.mapping(root, "", DEFAULTS_KEYS, "the defaults file")
    username = UsernameConfig()
    if "username" in top:
        um = f.mapping(top["username"][1], "username", USERNAME_KEYS, "username parsing settings")
        ukw: dict[str, Any] = {}
        for key in ("suffix_delimiters", "prefix_delimiters"):
            if key in um:
                ukw[key] = f.string_list(um[key][1], f"username.{key}")
        for key in ("realm_case", "user_case"):
            if key in um:
                ukw[key] = f.choice(um[key][1], f"username.{key}", CASE_FOLDINGS)
        username = UsernameConfig(**ukw)
    policy = base
    if "policy" in top:
        pm = f.mapping(top["policy"][1], "policy", POLICY_KEYS, "default policy settings")
        policy = _policy_fields(_PrefixedFile(f.name, "policy"), pm, base)
    _check_policy(f, root, policy)
    return policy, username


class _PrefixedFile(YamlFile):
    """Reports key paths under a prefix (``policy.strategy`` in defaults.yaml)."""

    __slots__ = ("prefix",)

    def __init__(self, name: str, prefix: str) -> None:
        super().__init__(name)
        self.prefix = prefix

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        super().fail(node, f"{self.prefix}.{path}" if path else self.prefix, message)


def _check_policy(f: YamlFile, node: yaml.Node, policy: RealmPolicy) -> None:
    if policy.tunnel_source == "static" and not policy.static_pool:
        f.fail(
            node,
            "static_pool",
            "tunnel_source is 'static' but static_pool is empty; expected at least one LNS "
            "entry; fix: add static_pool entries or use tunnel_source: radius",
        )
    if policy.on_radius_unreachable == "static" and not policy.static_pool:
        f.fail(
            node,
            "on_radius_unreachable",
            "is 'static' but static_pool is empty; expected at least one LNS entry; "
            "fix: add static_pool entries or use on_radius_unreachable: reject",
        )


def _load_realm(path: Path, defaults: RealmPolicy) -> RealmPolicy:
    f, root = compose_yaml(path)
    if root is None:
        f.fail(
            None, "", "empty file; expected a realm policy with 'realm:'; fix: add 'realm: NAME'"
        )
    m = f.mapping(root, "", REALM_KEYS, "a realm policy")
    if "realm" not in m:
        f.fail(
            root, "realm", "missing required key; expected 'realm: NAME'; fix: add 'realm: NAME'"
        )
    name = f.string(m["realm"][1], "realm", "a realm name").lower()
    match = MatchRule("exact", name)
    if "match" in m:
        mnode = m["match"][1]
        mm = f.mapping(mnode, "match", MATCH_KEYS, "a match rule")
        if "kind" not in mm:
            f.fail(
                mnode,
                "match.kind",
                f"missing required key; expected one of: {', '.join(MATCH_KINDS)}; "
                "fix: add 'kind: exact'",
            )
        kind = f.choice(mm["kind"][1], "match.kind", MATCH_KINDS)
        value = ""
        if kind != "default":
            if "value" not in mm:
                f.fail(
                    mnode,
                    "match.value",
                    f"missing required key for kind {kind!r}; expected the realm text or pattern; "
                    "fix: add 'value: ...'",
                )
            value = f.string(mm["value"][1], "match.value", "a realm or pattern")
            if kind == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    f.fail(
                        mm["value"][1],
                        "match.value",
                        f"invalid regular expression: {exc}; expected a Python regex matched "
                        "against the whole realm; fix: escape special characters like '.'",
                    )
            else:
                value = value.lower()
        match = MatchRule(cast(Any, kind), value)
    policy = _policy_fields(f, m, replace(defaults, name=name, match=match, source_file=str(path)))
    _check_policy(f, root, policy)
    return policy


def load_policies(directory: Path) -> PolicySet:
    """Load ``directory/defaults.yaml`` (optional) and ``directory/realms/*.yaml``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(
            str(directory),
            0,
            "",
            "not a directory; expected a policies directory containing "
            "defaults.yaml and realms/; fix: pass the right path",
        )
    defaults, username = _load_defaults(directory / "defaults.yaml")
    realms_dir = directory / "realms"
    files = (
        sorted([*realms_dir.glob("*.yaml"), *realms_dir.glob("*.yml")])
        if realms_dir.is_dir()
        else []
    )
    realms: list[RealmPolicy] = []
    names: dict[str, str] = {}
    matches: dict[tuple[str, str], str] = {}
    for path in files:
        policy = _load_realm(path, defaults)
        f = YamlFile(str(path))
        line = _line_of_key(path, "realm")
        if policy.name in names:
            raise PolicyError(
                f.name,
                line,
                "realm",
                f"realm {policy.name!r} is already defined in {names[policy.name]}; expected "
                "each realm once; fix: merge the two files or rename one",
            )
        key = (policy.match.kind, policy.match.value)
        if key in matches:
            what = (
                "a second default realm"
                if policy.match.kind == "default"
                else (f"match {policy.match.kind} {policy.match.value!r}")
            )
            raise PolicyError(
                f.name,
                _line_of_key(path, "match") or line,
                "match",
                f"{what} is already used by {matches[key]}; expected each match rule once; "
                "fix: change or remove one of them",
            )
        names[policy.name] = str(path)
        matches[key] = str(path)
        realms.append(policy)
    return PolicySet(
        defaults=defaults, realms=tuple(realms), username=username, source_dir=str(directory)
    )


def _line_of_key(path: Path, key: str) -> int:
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.startswith(f"{key}:"):
            return number
    return 0
