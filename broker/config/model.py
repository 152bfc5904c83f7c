"""Configuration values of one broker node. Defaults are the embedded lab defaults."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


class SecretError(Exception):
    """A secret could not be read; the message names where it was expected."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret given inline, in a file (``file:/path``) or in the environment (``env:NAME``).

    ``repr`` never shows the value; files must not be readable by group or others.
    """

    kind: str  # "value" | "file" | "env"
    ref: str = field(repr=False)
    where: str = ""

    def __repr__(self) -> str:
        return f"Secret({self.kind}{':' + self.ref if self.kind != 'value' else ''})"

    def resolve(self) -> bytes:
        if self.kind == "value":
            return self.ref.encode()
        if self.kind == "env":
            value = os.environ.get(self.ref)
            if value is None:
                raise SecretError(
                    f"{self.where}: environment variable {self.ref} is not set; "
                    f"fix: export {self.ref}=... before starting the broker"
                )
            return value.encode()
        path = Path(self.ref)
        try:
            st = path.stat()
            data = path.read_bytes()
        except OSError as exc:
            raise SecretError(f"{self.where}: cannot read secret file {path}: {exc}") from exc
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"{self.where}: secret file {path} is readable by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):o}); fix: chmod 600 {path}"
            )
        if st.st_uid not in (0, os.geteuid()):
            raise SecretError(
                f"{self.where}: secret file {path} belongs to uid {st.st_uid}, not to the "
                f"daemon's user (uid {os.geteuid()}) or root, so someone else can change it; "
                f"fix: chown {os.geteuid()} {path}"
            )
        secret = data.rstrip(b"\r\n")
        if not secret:
            raise SecretError(f"{self.where}: secret file {path} is empty; fix: write the secret")
        return secret


def parse_secret(text: str, where: str) -> Secret:
    if text.startswith("env:"):
        return Secret("env", text[4:], where)
    if text.startswith("file:"):
        return Secret("file", text[5:], where)
    return Secret("value", text, where)


@dataclass(frozen=True, slots=True)
class PppoeSettings:
    ac_name: str = "l2tp-broker"
    service_names: tuple[str, ...] = ()
    max_sessions: int = 65000
    max_setups: int = 2000
    padi_per_mac_per_s: float = 2.0
    pado_per_s: float = 1000.0
    #: PADTs sent per second when many sessions end at once (a tunnel lost): paced, not dropped.
    padt_per_s: float = 5000.0
    #: Sessions one client MAC may hold on one interface (0 = no limit).
    max_sessions_per_mac: int = 0
    #: MACs remembered by the per-MAC PADI rate limiter (least recently seen forgotten first).
    padi_table_size: int = 8192
    cookie_secret: Secret | None = None


@dataclass(frozen=True, slots=True)
class PppSettings:
    auth: tuple[str, ...] = ("chap", "pap")
    mru: int = 1492
    echo_interval: float = 10.0
    echo_failures: int = 3


@dataclass(frozen=True, slots=True)
class L2tpSettings:
    listen: str = "0.0.0.0"
    port: int = 1701
    host_name: str = "l2tp-broker"
    retransmit: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 8.0)
    hello_interval: float = 60.0
    hide_avps: bool = False
    receive_window: int = 16
    #: userspace splice: write LNS-bound data as whole Ethernet frames on the LNS-facing
    #: interface (transmit ring, no UDP sendto per packet); skips netfilter OUTPUT, so opt-in
    direct_egress: bool = False


@dataclass(frozen=True, slots=True)
class RadiusServerSettings:
    name: str
    address: str
    port: int
    secret: Secret
    timeout: tuple[float, ...] = (2.0, 2.0, 3.0)
    dead_time: float = 30.0


@dataclass(frozen=True, slots=True)
class DynauthClient:
    address: str
    secret: Secret


@dataclass(frozen=True, slots=True)
class RadiusSettings:
    nas_ip: str = "127.0.0.1"
    nas_identifier: str = "l2tp-broker"
    nas_port_type: int = 5  #: RFC 2865 5.41 Virtual
    bind: str = "0.0.0.0"
    sockets: int = 4
    servers: tuple[RadiusServerSettings, ...] = ()
    accounting_servers: tuple[RadiusServerSettings, ...] = ()
    interim_interval: float = 0.0
    dynauth_listen: str | None = None
    dynauth_port: int = 3799
    dynauth_clients: tuple[DynauthClient, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountingSettings:
    spool_sync: str = "interval"  # "interval" | "full"
    spool_sync_interval: float = 1.0
    #: Records waiting in the spool above which the broker raises the spool alarm.
    spool_alarm_records: int = 50000


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    source: str = "<defaults>"
    node_id: str = "lac-1"
    interfaces: tuple[str, ...] = ()
    pppoe: PppoeSettings = PppoeSettings()
    ppp: PppSettings = PppSettings()
    l2tp: L2tpSettings = L2tpSettings()
    radius: RadiusSettings = RadiusSettings()
    accounting: AccountingSettings = AccountingSettings()
    lns_secrets: tuple[tuple[str, Secret], ...] = ()
    state: str = "memory"
    policies: Path = Path("policies")
    dataplane: str = "userspace"
    state_dir: Path = Path("/var/lib/l2tp-broker")
    control: str = "127.0.0.1:8081"
    log_format: str = "text"
    log_level: str = "info"

    def secrets(self) -> list[tuple[str, Secret]]:
        """Every configured secret with the key that names it (never its value)."""
        out: list[tuple[str, Secret]] = []
        if self.pppoe.cookie_secret is not None:
            out.append(("pppoe.cookie_secret", self.pppoe.cookie_secret))
        for key, servers in (
            ("radius.servers", self.radius.servers),
            ("radius.accounting_servers", self.radius.accounting_servers),
        ):
            out += [(f"{key}[{i}].secret", s.secret) for i, s in enumerate(servers)]
        out += [
            (f"radius.dynauth.clients[{i}].secret", c.secret)
            for i, c in enumerate(self.radius.dynauth_clients)
        ]
        out += [(f"lns_secrets.{name}", secret) for name, secret in self.lns_secrets]
        return out

    def resolve_lns_secret(self, ref: str) -> bytes | None:
        """Resolve a policy ``secret_ref``: env:NAME, file:/path or a name in lns_secrets."""
        if ref.startswith(("env:", "file:")):
            return parse_secret(ref, f"{self.source}: secret_ref {ref}").resolve()
        for name, secret in self.lns_secrets:
            if name == ref:
                return secret.resolve()
        raise SecretError(
            f"{self.source}: lns_secrets has no entry {ref!r} (referenced by a policy's "
            f"secret_ref); fix: add '{ref}: ...' under lns_secrets"
        )
