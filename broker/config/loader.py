"""Load ``broker.yaml`` into :class:`BrokerConfig`; every mistake names file, line, key and fix.

Uses the same located-YAML walker as the policy loader (:mod:`broker.policy.loader`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from broker.config.model import (
    AccountingSettings,
    BrokerConfig,
    DynauthClient,
    L2tpSettings,
    PppoeSettings,
    PppSettings,
    RadiusServerSettings,
    RadiusSettings,
    Secret,
    parse_secret,
)
from broker.policy.loader import PolicyError, YamlFile, compose_yaml

ConfigError = PolicyError  # same located error: file:line: key.path: message; fix

TOP_KEYS = (
    "node_id",
    "interfaces",
    "pppoe",
    "ppp",
    "l2tp",
    "radius",
    "accounting",
    "lns_secrets",
    "state",
    "policies",
    "dataplane",
    "state_dir",
    "control",
    "log",
)
PPPOE_KEYS = (
    "ac_name",
    "service_names",
    "max_sessions",
    "max_setups",
    "padi_per_mac_per_s",
    "pado_per_s",
    "padt_per_s",
    "max_sessions_per_mac",
    "padi_table_size",
    "cookie_secret",
)
PPP_KEYS = ("auth", "mru", "echo_interval", "echo_failures")
L2TP_KEYS = (
    "listen",
    "port",
    "host_name",
    "retransmit",
    "hello_interval",
    "hide_avps",
    "receive_window",
    "direct_egress",
)
RADIUS_KEYS = (
    "nas_ip",
    "nas_identifier",
    "nas_port_type",
    "bind",
    "sockets",
    "servers",
    "accounting_servers",
    "interim_interval",
    "dynauth",
)
SERVER_KEYS = ("name", "address", "port", "secret", "timeout", "dead_time")
DYNAUTH_KEYS = ("listen", "port", "clients")
DYNAUTH_CLIENT_KEYS = ("address", "secret")
ACCOUNTING_KEYS = ("spool_sync", "spool_sync_interval", "spool_alarm_records")
LOG_KEYS = ("format", "level")
NAS_PORT_TYPES = {"virtual": 5, "ethernet": 15, "xdsl": 16, "cable": 17}  #: RFC 2865 5.41


def load_config(path: Path | str) -> BrokerConfig:
    path = Path(path)
    f, root = compose_yaml(path)
    if root is None:
        f.fail(None, "", "the file is empty; expected at least 'interfaces:' and 'radius:'")
    m = f.mapping(root, "", TOP_KEYS, "the broker configuration")
    kw: dict[str, Any] = {"source": str(path)}
    base = path.resolve().parent
    if "node_id" in m:
        kw["node_id"] = f.string(m["node_id"][1], "node_id")
    if "interfaces" in m:
        kw["interfaces"] = f.string_list(m["interfaces"][1], "interfaces")
    if "pppoe" in m:
        kw["pppoe"] = _pppoe(f, m["pppoe"][1])
    if "ppp" in m:
        kw["ppp"] = _ppp(f, m["ppp"][1])
    if "l2tp" in m:
        kw["l2tp"] = _l2tp(f, m["l2tp"][1])
    if "radius" in m:
        kw["radius"] = _radius(f, m["radius"][1])
    if "accounting" in m:
        a = f.mapping(m["accounting"][1], "accounting", ACCOUNTING_KEYS, "accounting settings")
        akw: dict[str, Any] = {}
        if "spool_sync" in a:
            akw["spool_sync"] = f.choice(
                a["spool_sync"][1], "accounting.spool_sync", ("interval", "full")
            )
        if "spool_alarm_records" in a:
            akw["spool_alarm_records"] = f.integer(
                a["spool_alarm_records"][1], "accounting.spool_alarm_records", 1, 1_000_000_000
            )
        if "spool_sync_interval" in a:
            akw["spool_sync_interval"] = f.number(
                a["spool_sync_interval"][1], "accounting.spool_sync_interval", 0.01
            )
        kw["accounting"] = AccountingSettings(**akw)
    if "lns_secrets" in m:
        node = m["lns_secrets"][1]
        if not isinstance(node, yaml.MappingNode):
            f.fail(
                node,
                "lns_secrets",
                "expected a mapping of name: secret; fix: write "
                "'lns-a: file:/etc/l2tp-broker/lns-a.secret'",
            )
        pairs = []
        for k, v in node.value:
            name = str(k.value)
            pairs.append((name, _secret(f, v, f"lns_secrets.{name}")))
        kw["lns_secrets"] = tuple(pairs)
    if "state" in m:
        state = f.string(m["state"][1], "state", "'memory' or a redis:// URL")
        if state != "memory" and not state.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://")
        ):
            f.fail(
                m["state"][1],
                "state",
                f"expected 'memory' or a redis:// (or "
                f"redis+sentinel://) URL, got {state!r}; fix: state: memory",
            )
        kw["state"] = state
    if "policies" in m:
        kw["policies"] = _path(base, f.string(m["policies"][1], "policies", "a directory"))
    if "dataplane" in m:
        kw["dataplane"] = f.choice(m["dataplane"][1], "dataplane", ("userspace", "kernel", "auto"))
    if "state_dir" in m:
        kw["state_dir"] = _path(base, f.string(m["state_dir"][1], "state_dir", "a directory"))
    if "control" in m:
        ctl = f.string(m["control"][1], "control", "HOST:PORT or unix:/path")
        if not ctl.startswith("unix:") and not ctl.rpartition(":")[2].isdigit():
            f.fail(
                m["control"][1],
                "control",
                f"expected HOST:PORT or unix:/path, got {ctl!r}; fix: control: 127.0.0.1:8081",
            )
        if not ctl.startswith("unix:") and not _loopback(ctl.rpartition(":")[0]):
            f.fail(
                m["control"][1],
                "control",
                f"the control API has no authentication, so it listens only on loopback or a "
                f"unix socket, got {ctl!r}; fix: control: unix:/run/l2tp-broker/control.sock "
                "(or 127.0.0.1:8081; reach it remotely through SSH)",
            )
        kw["control"] = ctl
    if "log" in m:
        lg = f.mapping(m["log"][1], "log", LOG_KEYS, "log settings")
        if "format" in lg:
            kw["log_format"] = f.choice(lg["format"][1], "log.format", ("text", "json"))
        if "level" in lg:
            kw["log_level"] = f.choice(
                lg["level"][1], "log.level", ("debug", "info", "warn", "error")
            )
    cfg = BrokerConfig(**kw)
    if "radius" in m and not cfg.radius.servers:
        f.fail(
            m["radius"][1],
            "radius.servers",
            "expected at least one RADIUS server; fix: add "
            "a servers: list with name, address, port and secret",
        )
    return cfg


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path(base: Path, text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else base / p


def _secret(f: YamlFile, node: yaml.Node, path: str) -> Secret:
    text = f.string(node, path, "a secret (inline, env:NAME or file:/path)", secret=True)
    if text.startswith("file:") and not text[5:].startswith("/"):
        f.fail(
            node,
            path,
            f"expected an absolute path after file:, got {text!r}; fix: "
            "file:/etc/l2tp-broker/secret",
        )
    return parse_secret(text, f"{f.name}:{node.start_mark.line + 1}: {path}")


def _address(f: YamlFile, node: yaml.Node, path: str) -> str:
    text = f.string(node, path, "an IP address")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        f.fail(
            node,
            path,
            f"expected an IPv4 or IPv6 address, got {text!r}; fix: write a "
            "literal address like 192.0.2.1",
        )


def _seconds_list(f: YamlFile, node: yaml.Node, path: str) -> tuple[float, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        f.fail(node, path, "expected a non-empty list of seconds; fix: write e.g. [1, 2, 4, 8, 8]")
    return tuple(f.number(v, f"{path}[{i}]", 0.01) for i, v in enumerate(node.value))


def _pppoe(f: YamlFile, node: yaml.Node) -> PppoeSettings:
    m = f.mapping(node, "pppoe", PPPOE_KEYS, "PPPoE settings")
    kw: dict[str, Any] = {}
    if "ac_name" in m:
        kw["ac_name"] = f.string(m["ac_name"][1], "pppoe.ac_name")
    if "service_names" in m:
        kw["service_names"] = f.string_list(m["service_names"][1], "pppoe.service_names")
    # Session ids are unique per (AC MAC, host MAC) pair (RFC 2516 section 4), so one
    # interface can hold more than 65,534 sessions across different subscribers.
    if "max_sessions" in m:
        kw["max_sessions"] = f.integer(m["max_sessions"][1], "pppoe.max_sessions", 1, 1_000_000)
    if "max_setups" in m:
        kw["max_setups"] = f.integer(m["max_setups"][1], "pppoe.max_setups", 1, 65534)
    if "max_sessions_per_mac" in m:
        kw["max_sessions_per_mac"] = f.integer(
            m["max_sessions_per_mac"][1], "pppoe.max_sessions_per_mac", 0, 65534
        )
    if "padi_table_size" in m:
        kw["padi_table_size"] = f.integer(
            m["padi_table_size"][1], "pppoe.padi_table_size", 16, 10_000_000
        )
    for key in ("padi_per_mac_per_s", "pado_per_s", "padt_per_s"):
        if key in m:
            kw[key] = f.number(m[key][1], f"pppoe.{key}", 0.001)
    if "cookie_secret" in m:
        secret = _secret(f, m["cookie_secret"][1], "pppoe.cookie_secret")
        if secret.kind == "value" and len(secret.ref.encode()) < 16:
            f.fail(
                m["cookie_secret"][1],
                "pppoe.cookie_secret",
                "expected at least 16 octets "
                "(it keys the AC-Cookie HMAC); fix: use a long random string, e.g. from "
                "`openssl rand -hex 32`",
            )
        kw["cookie_secret"] = secret
    return PppoeSettings(**kw)


def _ppp(f: YamlFile, node: yaml.Node) -> PppSettings:
    m = f.mapping(node, "ppp", PPP_KEYS, "PPP settings")
    kw: dict[str, Any] = {}
    if "auth" in m:
        auth = f.string_list(m["auth"][1], "ppp.auth")
        for i, a in enumerate(auth):
            if a not in ("chap", "pap", "mschapv2"):
                f.fail(
                    m["auth"][1].value[i],
                    f"ppp.auth[{i}]",
                    f"expected chap, pap or mschapv2, got {a!r}; fix: auth: [chap, pap]",
                )
        kw["auth"] = auth
    if "mru" in m:
        kw["mru"] = f.integer(m["mru"][1], "ppp.mru", 576, 9000)
    if "echo_interval" in m:
        kw["echo_interval"] = f.number(m["echo_interval"][1], "ppp.echo_interval", 0)
    if "echo_failures" in m:
        kw["echo_failures"] = f.integer(m["echo_failures"][1], "ppp.echo_failures", 1, 100)
    return PppSettings(**kw)


def _l2tp(f: YamlFile, node: yaml.Node) -> L2tpSettings:
    m = f.mapping(node, "l2tp", L2TP_KEYS, "L2TP settings")
    kw: dict[str, Any] = {}
    if "listen" in m:
        kw["listen"] = _address(f, m["listen"][1], "l2tp.listen")
    if "port" in m:
        kw["port"] = f.integer(m["port"][1], "l2tp.port", 1, 65535)
    if "host_name" in m:
        kw["host_name"] = f.string(m["host_name"][1], "l2tp.host_name")
    if "retransmit" in m:
        kw["retransmit"] = _seconds_list(f, m["retransmit"][1], "l2tp.retransmit")
    if "hello_interval" in m:
        kw["hello_interval"] = f.number(m["hello_interval"][1], "l2tp.hello_interval", 1)
    if "hide_avps" in m:
        kw["hide_avps"] = f.boolean(m["hide_avps"][1], "l2tp.hide_avps")
    if "receive_window" in m:
        kw["receive_window"] = f.integer(m["receive_window"][1], "l2tp.receive_window", 1, 1024)
    if "direct_egress" in m:
        kw["direct_egress"] = f.boolean(m["direct_egress"][1], "l2tp.direct_egress")
    return L2tpSettings(**kw)


def _servers(
    f: YamlFile, node: yaml.Node, path: str, default_port: int
) -> tuple[RadiusServerSettings, ...]:
    if not isinstance(node, yaml.SequenceNode):
        f.fail(node, path, "expected a list of servers; fix: write '- name: r1' entries")
    out = []
    for i, item in enumerate(node.value):
        p = f"{path}[{i}]"
        m = f.mapping(item, p, SERVER_KEYS, "a RADIUS server")
        for req in ("address", "secret"):
            if req not in m:
                f.fail(item, f"{p}.{req}", f"missing required key; fix: add '{req}: ...'")
        kw: dict[str, Any] = {
            "name": f.string(m["name"][1], f"{p}.name") if "name" in m else f"{path}{i}",
            "address": _address(f, m["address"][1], f"{p}.address"),
            "port": f.integer(m["port"][1], f"{p}.port", 1, 65535) if "port" in m else default_port,
            "secret": _secret(f, m["secret"][1], f"{p}.secret"),
        }
        if "timeout" in m:
            kw["timeout"] = _seconds_list(f, m["timeout"][1], f"{p}.timeout")
        if "dead_time" in m:
            kw["dead_time"] = f.number(m["dead_time"][1], f"{p}.dead_time", 0)
        out.append(RadiusServerSettings(**kw))
    return tuple(out)


def _radius(f: YamlFile, node: yaml.Node) -> RadiusSettings:
    m = f.mapping(node, "radius", RADIUS_KEYS, "RADIUS settings")
    kw: dict[str, Any] = {}
    if "nas_ip" in m:
        kw["nas_ip"] = _address(f, m["nas_ip"][1], "radius.nas_ip")
    if "nas_identifier" in m:
        kw["nas_identifier"] = f.string(m["nas_identifier"][1], "radius.nas_identifier")
    if "nas_port_type" in m:
        kw["nas_port_type"] = NAS_PORT_TYPES[
            f.choice(m["nas_port_type"][1], "radius.nas_port_type", tuple(NAS_PORT_TYPES))
        ]
    if "bind" in m:
        kw["bind"] = _address(f, m["bind"][1], "radius.bind")
    if "sockets" in m:
        kw["sockets"] = f.integer(m["sockets"][1], "radius.sockets", 1, 256)
    if "servers" in m:
        kw["servers"] = _servers(f, m["servers"][1], "radius.servers", 1812)
    if "accounting_servers" in m:
        kw["accounting_servers"] = _servers(
            f, m["accounting_servers"][1], "radius.accounting_servers", 1813
        )
    if "interim_interval" in m:
        kw["interim_interval"] = f.number(m["interim_interval"][1], "radius.interim_interval", 0)
    if "dynauth" in m:
        d = f.mapping(m["dynauth"][1], "radius.dynauth", DYNAUTH_KEYS, "Disconnect/CoA settings")
        if "listen" in d:
            kw["dynauth_listen"] = _address(f, d["listen"][1], "radius.dynauth.listen")
        if "port" in d:
            kw["dynauth_port"] = f.integer(d["port"][1], "radius.dynauth.port", 1, 65535)
        if "clients" in d:
            node_c = d["clients"][1]
            if not isinstance(node_c, yaml.SequenceNode):
                f.fail(
                    node_c,
                    "radius.dynauth.clients",
                    "expected a list of clients; fix: "
                    "'- {address: 127.0.0.1, secret: env:DYNAUTH_SECRET}'",
                )
            clients = []
            for i, item in enumerate(node_c.value):
                p = f"radius.dynauth.clients[{i}]"
                c = f.mapping(item, p, DYNAUTH_CLIENT_KEYS, "a Disconnect/CoA client")
                for req in ("address", "secret"):
                    if req not in c:
                        f.fail(item, f"{p}.{req}", f"missing required key; fix: add '{req}:'")
                clients.append(
                    DynauthClient(
                        _address(f, c["address"][1], f"{p}.address"),
                        _secret(f, c["secret"][1], f"{p}.secret"),
                    )
                )
            kw["dynauth_clients"] = tuple(clients)
    return RadiusSettings(**kw)
