"""Hardening, end to end with real daemons in namespaces:

- the broker runs as ``nobody`` with only CAP_NET_RAW and CAP_NET_ADMIN (setpriv, no new
  privileges, bounding set of those two) and serves subscribers; without CAP_NET_RAW it
  exits with code 3 and says which capability is missing;
- its control socket is mode 0600 and another unprivileged user cannot connect;
- after a full call flow with debug logging (RADIUS-routed and static-pool calls,
  accounting, a Disconnect-Request, SIGTERM), no configured secret appears in its log, its
  control API or /metrics, raw, hex or base64;
- limits a peer can run into (PPPoE sessions) hold at their bound;
- a control socket the daemon's user may not create makes ``run`` exit 3 naming the
  address and the reason, before anything else starts;
- the systemd unit verifies and its sandboxing options are in place.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.lab.broker_lab import LAC_ADDR, LNS_A, LNS_B, PASSWORD
from ops.lab.hostile import HostileLab, disconnect_request, unprivileged
from ops.lab.netns import Netns, poll, stop_process, venv_python, veth
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOBODY = (65534, 65534)
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13
UNIT = ROOT / "ops" / "systemd" / "l2tp-broker.service"


def _require() -> None:
    require_root()
    for binary in ("freeradius", "l2tpns", "setpriv", "unshare"):
        require_binary(binary)


@pytest.fixture(scope="module")
def lab() -> Iterator[HostileLab]:
    _require()
    lab = HostileLab(user=NOBODY, log_level="debug", retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _as_user(uid: int, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as ``uid`` (no capabilities at all)."""
    cmd = unprivileged([venv_python(), "-c", code], uid, uid, "")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_runs_unprivileged_with_only_net_raw_and_net_admin(lab: HostileLab) -> None:
    st = _status(lab.broker_pid())
    assert st["Uid"].split() == [str(NOBODY[0])] * 4 and st["Gid"].split()[0] == str(NOBODY[1])
    assert st["Groups"] == ""
    want = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW)
    for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(st[key], 16) == want, (key, st[key])
    assert st["NoNewPrivs"] == "1"
    report = lab.subscribers(
        2, user_template="user{i}@isp-a.example", rate=10, ping=LNS_A, timeout=90,
        extra=["--ping-count", "3", "--ping-interval", "0.3"],
    )  # fmt: skip
    assert report["up"] == 2 and report["ping_failed"] == 0, report["_output"][-2000:]
    assert report["pings_received"] > 0
    state = lab.dir / "node0" / "state"
    assert state.stat().st_uid == NOBODY[0] and stat.S_IMODE(state.stat().st_mode) == 0o700
    for f in state.iterdir():  # the accounting spool: private to the daemon
        assert f.stat().st_mode & 0o077 == 0, f


def test_control_socket_mode_0600_other_users_cannot_connect(lab: HostileLab) -> None:
    sock = Path(lab.controls[0][5:])
    st = sock.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == NOBODY[0]
    node_dir = sock.parent
    mode = stat.S_IMODE(node_dir.stat().st_mode)
    os.chmod(node_dir, 0o755)  # only the socket's own mode may stop the other user now
    try:
        probe = (
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
            f"try:\n s.connect({str(sock)!r}); print('connected')\n"
            "except PermissionError: print('refused')\n"
        )
        assert _as_user(4242, probe).stdout.strip() == "refused"
        assert _as_user(NOBODY[0], probe).stdout.strip() == "connected"  # the daemon's user
    finally:
        os.chmod(node_dir, mode)


def _forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "raw": secret,
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "hex:": ":".join(f"{b:02x}" for b in raw),
        "base64": base64.b64encode(raw).decode(),
        "base64-body": base64.b64encode(raw).decode().rstrip("=")[:-2],
        "repr": repr(raw),
    }


def test_no_secret_in_logs_control_api_or_metrics(lab: HostileLab) -> None:
    proc, _ = lab.subscribers(
        2, user_template="user{i}@isp-a.example", rate=10, hold=-1,
        extra=["--first-index", "30"], background=True,
    )  # fmt: skip
    try:
        report = lab.subscribers(
            2, user_template="user{i}@isp-b.example", rate=10, ping=LNS_B, timeout=90,
            extra=["--ping-count", "2", "--ping-interval", "0.3"],
        )  # fmt: skip
        assert report["up"] == 2, report["_output"][-2000:]
        assert poll(lambda: len(lab.control("/sessions")) == 2, 40, 0.3)
        user = lab.control("/sessions")[0]["username"]
        dm = disconnect_request(user, lab.secret_values["dynauth"].encode())
        out = lab.run_in(
            "lac", "udp", "--target", f"{LAC_ADDR}:3799", "--source", f"{LAC_ADDR}:0",
            "--wait", "5", dm.hex(),
        )  # fmt: skip
        assert len(out["answers"]) == 1
        views = {
            path: str(lab.control(path))
            for path in ("/status", "/sessions", "/tunnels", "/lns", "/realms", "/metrics")
        }
    finally:
        stop_process(proc)
    assert lab.stop_broker(0) == 0
    log = lab.broker_log(0)
    # log.level is debug (the broker has no debug-level messages of its own today)
    assert "level: debug" in (lab.dir / "node0" / "broker.yaml").read_text()
    assert "[broker.callflow#info] call up" in log and "dynauth" in log, log[-3000:]
    assert poll(lambda: any(r.get("Acct-Status-Type") == "Stop" for r in lab.accounting()), 10)
    texts = {"broker log": log, **views}
    secrets = {**lab.secret_values, "user password": PASSWORD}
    leaks = [
        (name, form, where)
        for name, value in secrets.items()
        for form, text in _forms(value).items()
        for where, body in texts.items()
        if text in body
    ]
    assert leaks == [], leaks


def _daemon_files(base: Path, radius_secret: str) -> tuple[Path, Path]:
    """Policies, a state directory and a RADIUS secret file the unprivileged daemon user
    (NOBODY) can read, under ``base``; returns (state_dir, secret_file)."""
    shutil.copytree(ROOT / "policies", base / "policies")
    for p in (base / "policies").rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    state = base / "state"
    state.mkdir()
    os.chown(state, *NOBODY)
    secret = base / "radius.secret"
    secret.write_text(radius_secret + "\n")
    os.chmod(secret, 0o600)
    os.chown(secret, *NOBODY)
    return state, secret


def test_without_cap_net_raw_exits_3_with_a_clear_message() -> None:
    _require()
    base = Path(tempfile.mkdtemp(prefix="hardening-"))
    a = b = None
    try:
        os.chmod(base, 0o755)
        a, b = Netns("hard"), Netns("peer")
        iface, _ = veth(a, b, None, None, prefix="h")
        state, secret = _daemon_files(base, "hardening-secret")
        config = base / "broker.yaml"
        config.write_text(
            f"interfaces: [{iface}]\n"
            "l2tp: {listen: 127.0.0.1, port: 1701}\n"
            "radius:\n  nas_ip: 127.0.0.1\n  bind: 127.0.0.1\n"
            f"  servers: [{{name: r, address: 127.0.0.1, port: 1812, secret: 'file:{secret}'}}]\n"
            f"policies: {base / 'policies'}\nstate_dir: {state}\n"
            f"control: unix:{state}/control.sock\n"
        )
        results = {}
        for caps in ("", "+net_admin"):
            cmd = unprivileged(
                [venv_python(), "-m", "broker", "run", "-c", str(config)], *NOBODY, caps
            )
            proc = a.popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )  # fmt: skip
            try:
                out, _ = proc.communicate(timeout=60)
            finally:
                stop_process(proc)
            results[caps] = (proc.returncode, out)
        for caps, (code, out) in results.items():
            assert code == 3, (caps, code, out[-2000:])
            assert "CAP_NET_RAW" in out and "Operation not permitted" in out, out[-2000:]
            assert "Traceback" not in out, out[-2000:]
            assert "hardening-secret" not in out
    finally:
        for ns in (a, b):
            if ns is not None:
                ns.close()
        shutil.rmtree(base, ignore_errors=True)


def test_control_socket_without_permission_exits_3_naming_address_and_reason() -> None:
    _require()
    base = Path(tempfile.mkdtemp(prefix="hardening-ctl-"))
    try:
        os.chmod(base, 0o755)  # root's: the daemon's user may not create its socket here
        state, secret = _daemon_files(base, "hardening-ctl-secret")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            l2tp_port = s.getsockname()[1]
        config = base / "broker.yaml"
        config.write_text(
            f"l2tp: {{listen: 127.0.0.1, port: {l2tp_port}}}\n"
            "radius:\n  nas_ip: 127.0.0.1\n  bind: 127.0.0.1\n"
            f"  servers: [{{name: r, address: 127.0.0.1, port: 1812, secret: 'file:{secret}'}}]\n"
            f"policies: {base / 'policies'}\nstate_dir: {state}\n"
            f"control: unix:{base}/control.sock\n"
        )
        os.chmod(config, 0o644)
        cmd = unprivileged(
            [venv_python(), "-m", "broker", "run", "-c", str(config)], *NOBODY,
            "+net_raw,+net_admin",
        )  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(ROOT),
            env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            stop_process(proc)
        assert proc.returncode == 3, out[-2000:]
        assert f"control API cannot listen on unix:{base}/control.sock: Permission denied" in out
        assert "Traceback" not in out and "hardening-ctl-secret" not in out, out[-2000:]
        assert not (base / "control.sock").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_pppoe_session_limit_holds_at_its_bound() -> None:
    _require()
    with _limited_lab() as lab:
        before = lab.metrics()
        proc, _ = lab.subscribers(
            2, user_template="user{i}@isp-b.example", rate=10, hold=-1, background=True
        )
        try:
            assert poll(lambda: len(lab.control("/sessions")) == 2, 40, 0.3)
            report = lab.subscribers(
                1, user_template="user{i}@isp-b.example", rate=10, timeout=60,
                extra=["--first-index", "9", "--setup-timeout", "6"],
            )  # fmt: skip
            assert report["up"] == 0 and report["failed"] == 1, report
            after = lab.metrics()
            assert after.get("pppoe/padi_full", 0) - before.get("pppoe/padi_full", 0) >= 1
            assert (
                after.get("pppoe/sessions_opened", 0) - before.get("pppoe/sessions_opened", 0) == 2
            )
            assert len(lab.control("/sessions")) == 2  # the two inside the bound are kept
        finally:
            stop_process(proc)


@contextlib.contextmanager
def _limited_lab() -> Iterator[HostileLab]:
    lab = HostileLab(pppoe_extra=", max_sessions: 2", retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


UNIT_OPTIONS = {
    "User": "l2tp-broker",
    "AmbientCapabilities": "CAP_NET_RAW CAP_NET_ADMIN",
    "CapabilityBoundingSet": "CAP_NET_RAW CAP_NET_ADMIN",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "UMask": "0077",
    "StateDirectoryMode": "0700",
    "RestrictNamespaces": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "DevicePolicy": "closed",
}


def test_systemd_unit_verifies_and_is_sandboxed(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    text = UNIT.read_text()
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            options.setdefault(m[1], []).append(m[2])
    for key, value in UNIT_OPTIONS.items():
        assert value in options.get(key, []), (key, options.get(key))
    assert "AF_PACKET" in options["RestrictAddressFamilies"][0]
    # verify with the ExecStart path pointed at a binary that exists here
    unit = tmp_path / "l2tp-broker.service"
    exec_start = options["ExecStart"][0].split()[0]
    unit.write_text(text.replace(exec_start, shutil.which("true") or "/bin/true"))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (r.stdout + r.stderr).splitlines() if "l2tp-broker" in line]
    assert r.returncode == 0 and ours == [], r.stdout + r.stderr
    r = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    assert float(m[1]) <= 3.0, r.stdout
