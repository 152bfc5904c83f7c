from __future__ import annotations

import os
from pathlib import Path

import pytest

from broker.config import ConfigError, load_config
from broker.config.model import Secret, SecretError

GOOD = """\
node_id: lac-7
interfaces: [acc0, acc1.100]
pppoe:
  ac_name: wholesale-ac
  cookie_secret: env:COOKIE_SECRET
ppp:
  auth: [chap, pap]
  echo_interval: 5
l2tp:
  listen: 198.51.100.1
  retransmit: [1, 2, 4]
  hide_avps: true
  direct_egress: true
radius:
  nas_ip: 198.51.100.1
  nas_port_type: xdsl
  servers:
    - {name: r1, address: 127.0.0.1, port: 18120, secret: testing123, timeout: [1, 1]}
  accounting_servers:
    - {name: a1, address: 127.0.0.1, secret: "file:/nonexistent/acct.secret"}
  dynauth:
    listen: 127.0.0.1
    clients: [{address: 127.0.0.1, secret: dynsecret}]
lns_secrets:
  lns-a: tunnelsecret
state: redis://127.0.0.1:6379/0
policies: ./pol
dataplane: auto
state_dir: /var/lib/l2tp-broker
control: unix:/run/l2tp-broker.sock
log: {format: json, level: debug}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "broker.yaml"
    p.write_text(text)
    return p


def test_good_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.node_id == "lac-7"
    assert cfg.interfaces == ("acc0", "acc1.100")
    assert cfg.l2tp.retransmit == (1.0, 2.0, 4.0) and cfg.l2tp.hide_avps
    assert cfg.l2tp.direct_egress
    assert cfg.radius.nas_port_type == 16
    assert cfg.radius.servers[0].port == 18120 and cfg.radius.servers[0].timeout == (1.0, 1.0)
    assert cfg.radius.accounting_servers[0].port == 1813
    assert cfg.radius.servers[0].secret.resolve() == b"testing123"
    assert cfg.policies == tmp_path / "pol"
    assert cfg.dataplane == "auto" and cfg.log_format == "json"
    assert cfg.resolve_lns_secret("lns-a") == b"tunnelsecret"
    assert "testing123" not in repr(cfg)
    assert "tunnelsecret" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("interfacs: [a]\n", 1, "interfacs", "did you mean 'interfaces'?"),
        ("l2tp:\n  port: 70000\n", 2, "l2tp.port", "an integer from 1 to 65535"),
        ("l2tp:\n  listen: lns.example\n", 2, "l2tp.listen", "expected an IPv4 or IPv6 address"),
        ("l2tp:\n  retransmit: []\n", 2, "l2tp.retransmit", "non-empty list of seconds"),
        ("dataplane: kernal\n", 1, "dataplane", "did you mean 'kernel'?"),
        ("state: postgres://x\n", 1, "state", "expected 'memory' or a redis://"),
        (
            "radius:\n  servers:\n    - {name: r1, address: 127.0.0.1}\n",
            3,
            "radius.servers[0].secret",
            "missing required key",
        ),
        ("radius:\n  servers: []\n", 2, "radius.servers", "at least one RADIUS server"),
        ("ppp:\n  auth: [chap, eap]\n", 2, "ppp.auth[1]", "expected chap, pap or mschapv2"),
        ("control: localhost\n", 1, "control", "expected HOST:PORT or unix:/path"),
        (
            "pppoe:\n  cookie_secret: file:relative\n",
            2,
            "pppoe.cookie_secret",
            "absolute path after file:",
        ),
        ("log:\n  format: xml\n", 2, "log.format", "expected one of: text, json"),
        ("pppoe:\n  cookie_secret: short\n", 2, "pppoe.cookie_secret", "at least 16 octets"),
        ("l2tp: [1, 2\n", 1, "", "YAML syntax error"),
        ("hide_avps: true\n", 1, "hide_avps", "unknown key"),
        ("l2tp:\n  direct_egress: maybe\n", 2, "l2tp.direct_egress", "expected"),
        ("pppoe:\n  max_sessions: 2000000\n", 2, "pppoe.max_sessions", "from 1 to 1000000"),
        ("pppoe:\n  max_setups: 70000\n", 2, "pppoe.max_setups", "from 1 to 65534"),
        ("pppoe:\n  max_sessions_per_mac: -1\n", 2, "pppoe.max_sessions_per_mac", "from 0"),
        ("pppoe:\n  padi_table_size: 3\n", 2, "pppoe.padi_table_size", "from 16"),
        ("pppoe:\n  padt_per_s: 0\n", 2, "pppoe.padt_per_s", "expected"),
        (
            "accounting:\n  spool_alarm_records: 0\n",
            2,
            "accounting.spool_alarm_records",
            "from 1",
        ),
    ],
)
def test_errors_name_file_line_key_and_fix(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert err.key_path == key
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{err.line}")
    if "syntax" not in fragment:
        assert err.line == line
        assert "fix" in str(err) or "expected" in str(err)


def test_limits_a_peer_can_make_us_allocate(tmp_path: Path) -> None:
    text = (
        "pppoe:\n  max_sessions: 100000\n  max_sessions_per_mac: 4\n"
        "  padi_table_size: 65536\n  padt_per_s: 2000\n"
        "accounting:\n  spool_alarm_records: 20000\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.pppoe.max_sessions == 100000
    assert cfg.pppoe.max_sessions_per_mac == 4
    assert cfg.pppoe.padi_table_size == 65536
    assert cfg.pppoe.padt_per_s == 2000.0
    assert cfg.accounting.spool_alarm_records == 20000


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "s"
    secret_file.write_text("filesecret\n")
    os.chmod(secret_file, 0o600)
    text = GOOD.replace("file:/nonexistent/acct.secret", f"file:{secret_file}")
    cfg = load_config(write(tmp_path, text))
    assert cfg.radius.accounting_servers[0].secret.resolve() == b"filesecret"
    os.chmod(secret_file, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        cfg.radius.accounting_servers[0].secret.resolve()
    assert cfg.pppoe.cookie_secret is not None
    monkeypatch.delenv("COOKIE_SECRET", raising=False)
    with pytest.raises(SecretError, match="COOKIE_SECRET is not set"):
        cfg.pppoe.cookie_secret.resolve()
    monkeypatch.setenv("COOKIE_SECRET", "c00kie")
    assert cfg.pppoe.cookie_secret.resolve() == b"c00kie"
    with pytest.raises(SecretError, match="lns_secrets has no entry 'lns-z'"):
        cfg.resolve_lns_secret("lns-z")


@pytest.mark.parametrize(
    "control",
    ["127.0.0.1:8081", "[::1]:8081", "localhost:8081", "127.0.0.53:9", "unix:/run/x.sock"],
)
def test_control_on_loopback_or_unix_socket(tmp_path: Path, control: str) -> None:
    cfg = load_config(write(tmp_path, f"control: {control!r}\n"))
    assert cfg.control == control


@pytest.mark.parametrize("control", ["0.0.0.0:8081", "198.51.100.1:8081", "[::]:8081", "lac:80"])
def test_control_elsewhere_is_refused(tmp_path: Path, control: str) -> None:
    path = write(tmp_path, f"control: {control!r}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key_path == "control" and info.value.line == 1
    assert "no authentication" in str(info.value) and "fix: control: unix:" in str(info.value)


def _secret_cfg(tmp_path: Path, secret_file: Path) -> Secret:
    text = GOOD.replace("file:/nonexistent/acct.secret", f"file:{secret_file}")
    return load_config(write(tmp_path, text)).radius.accounting_servers[0].secret


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620, 0o602, 0o610, 0o601])
def test_secret_file_with_any_group_or_other_bit_is_refused(tmp_path: Path, mode: int) -> None:
    f = tmp_path / "radius.secret"
    f.write_text("s3cr3t\n")
    os.chmod(f, mode)
    secret = _secret_cfg(tmp_path, f)
    with pytest.raises(SecretError) as info:
        secret.resolve()
    assert f"mode {mode:o}" in str(info.value) and f"chmod 600 {f}" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    os.chmod(f, 0o400)
    assert secret.resolve() == b"s3cr3t"


def test_secret_file_owned_by_someone_else_or_empty_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "radius.secret"
    f.write_text("s3cr3t\n")
    os.chmod(f, 0o600)
    secret = _secret_cfg(tmp_path, f)
    if os.geteuid() == 0:  # root may give the file away to test the ownership rule
        os.chown(f, 65534, 65534)
        with pytest.raises(SecretError, match="belongs to uid 65534"):
            secret.resolve()
        os.chown(f, 0, 0)
    f.write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        secret.resolve()
    f.unlink()
    with pytest.raises(SecretError, match="cannot read secret file"):
        secret.resolve()


def test_secrets_lists_every_configured_secret_without_values(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    keys = [k for k, _ in cfg.secrets()]
    assert keys == [
        "pppoe.cookie_secret",
        "radius.servers[0].secret",
        "radius.accounting_servers[0].secret",
        "radius.dynauth.clients[0].secret",
        "lns_secrets.lns-a",
    ]
    for value in ("testing123", "dynsecret", "tunnelsecret"):
        assert value not in repr(cfg.secrets())


def test_an_unquoted_secret_is_not_repeated_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "lns_secrets:\n  lns-a: 1234567890123456\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "1234567890123456" not in str(info.value)
    assert "lns_secrets.lns-a" in str(info.value) and "quote the value" in str(info.value)
