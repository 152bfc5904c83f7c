"""`l2tp-broker run` as a real process: starts on embedded defaults, answers the control API
and /metrics, reloads policies on SIGHUP, stops cleanly on SIGTERM, refuses bad config."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from broker.control.client import ControlClient, ControlError
from ops.lab.netns import poll, stop_process

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, **extra: str) -> tuple[Path, str]:
    shutil.copytree(ROOT / "policies", tmp / "policies")
    control = f"127.0.0.1:{free_port()}"
    radius_port = free_port(socket.SOCK_DGRAM)
    text = f"""\
node_id: lac-test
l2tp: {{listen: 127.0.0.1, port: {free_port(socket.SOCK_DGRAM)}}}
radius:
  nas_ip: 127.0.0.1
  bind: 127.0.0.1
  servers: [{{name: r1, address: 127.0.0.1, port: {radius_port}, secret: s3cr3t-radius}}]
policies: ./policies
state_dir: ./state
control: {control}
dataplane: {extra.get("dataplane", "userspace")}
log: {{format: text, level: info}}
"""
    path = tmp / "broker.yaml"
    path.write_text(text)
    return path, control


def start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def run_to_exit(path: Path, timeout: float = 30) -> tuple[int | None, str]:
    """Start the daemon and wait for it to exit on its own (a start-up refusal)."""
    proc = start(path)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop_process(proc)
    return proc.returncode, out


def status_reader(control: str) -> Callable[[], dict[str, object] | None]:
    """A poll-able ``/status`` read: None while the control API does not answer."""
    client = ControlClient(control, timeout=2)

    def status() -> dict[str, object] | None:
        try:
            return client.get("/status")  # type: ignore[no-any-return]
        except ControlError:
            return None

    return status


def snapshot(state: Path) -> tracemalloc.Snapshot | None:
    for path in state.glob("memory-*-0.tracemalloc"):
        try:
            return tracemalloc.Snapshot.load(str(path))
        except (EOFError, OSError, ValueError):  # still being written
            return None
    return None


def test_run_control_sighup_sigterm(tmp_path: Path) -> None:
    path, control = write_config(tmp_path)
    proc = start(path)
    try:
        client = ControlClient(control, timeout=2)
        status = status_reader(control)
        st = poll(status, 20)
        assert st, "control API never answered"
        assert st["node"] == "lac-test" and st["dataplane"] == "userspace"
        assert st["state"] == "memory" and st["sessions"] == 0
        assert "l2tp_broker_sessions" in client.get("/metrics")
        realms = {r["realm"] for r in client.get("/realms")}
        assert {"isp-a.example", "isp-b.example"} <= realms
        assert client.post("/drain", {"on": True}) == {"draining": True}
        proc.send_signal(signal.SIGHUP)
        assert poll(lambda: (status() or {}).get("policy_generation") == 1, 10)

        # SIGUSR2: tracemalloc on, then a snapshot per signal (signals sent at once coalesce:
        # repeat every 0.5 s until the first snapshot is there)
        def usr2_snapshot() -> tracemalloc.Snapshot | None:
            proc.send_signal(signal.SIGUSR2)
            return poll(lambda: snapshot(tmp_path / "state"), 0.5)

        assert poll(usr2_snapshot, 30) is not None
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, out
    assert "shutting down" in out
    assert "policies reloaded" in out
    assert "memory snapshot written" in out
    assert "s3cr3t-radius" not in out  # no secret in logs, ever


def test_kernel_dataplane_refused_with_reason(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path, dataplane="kernel")
    code, out = run_to_exit(path, 20)
    assert code == 2
    assert "dataplane: kernel is not available" in out and "fix:" in out


def test_config_error_names_file_line_and_key(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path)
    path.write_text(path.read_text().replace("node_id: lac-test", "node_id: lac-test\nl2tpp: {}"))
    code, out = run_to_exit(path, 20)
    assert code == 2
    assert f"{path}:2: l2tpp: unknown key" in out and "did you mean 'l2tp'?" in out


def test_check_exits_nonzero_with_reason(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path)
    (tmp_path / "policies" / "realms" / "isp-b.example.yaml").write_text("realm: [oops\n")
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "check", "-c", str(path)], capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "isp-b.example.yaml:2" in proc.stderr and "YAML syntax error" in proc.stderr


def test_private_files_and_inline_secret_warning(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path)
    sock = tmp_path / "ctl" / "control.sock"
    sock.parent.mkdir()
    os.chmod(sock.parent, 0o755)
    path.write_text(path.read_text().replace(_control_line(path), f"control: unix:{sock}"))
    os.chmod(path, 0o644)
    proc = start(path)
    try:
        client = ControlClient(f"unix:{sock}", timeout=2)

        def up() -> bool:
            try:
                return bool(client.get("/status"))
            except ControlError:
                return False

        assert poll(up, 20), "control API never answered"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, out
    assert f"warning: {path} is readable by group/others (mode 644)" in out
    assert "radius.servers[0].secret" in out and "chmod 600" in out
    assert "s3cr3t-radius" not in out


def test_group_readable_secret_file_is_refused(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path)
    secret = tmp_path / "radius.secret"
    secret.write_text("s3cr3t-radius\n")
    os.chmod(secret, 0o640)
    path.write_text(path.read_text().replace("secret: s3cr3t-radius", f'secret: "file:{secret}"'))
    code, out = run_to_exit(path, 20)
    assert code == 2, out
    assert f"secret file {secret} is readable by group/others (mode 640)" in out
    assert f"fix: chmod 600 {secret}" in out
    assert "s3cr3t-radius" not in out
    os.chmod(secret, 0o600)
    assert "readable by group" not in (inline := _warning(path)), inline


def _control_line(path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("control:"))


def _warning(path: Path) -> str:
    from broker.commands.run import inline_secret_warning
    from broker.config import load_config

    return inline_secret_warning(load_config(path), path) or ""


def test_control_address_in_use_exits_2_naming_address_and_reason(tmp_path: Path) -> None:
    path, control = write_config(tmp_path)
    host, _, port = control.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((host, int(port)))
        busy.listen(1)
        code, out = run_to_exit(path)
    assert code == 2, out
    assert f"control API cannot listen on {control}: Address already in use; fix:" in out, out
    assert "Traceback" not in out
    assert "dataplane userspace" not in out  # nothing else started (no sockets, no calls)


def test_control_unix_socket_of_a_live_daemon_is_not_stolen(tmp_path: Path) -> None:
    path, control = write_config(tmp_path)
    sock_path = tmp_path / "control.sock"
    path.write_text(path.read_text().replace(f"control: {control}", f"control: unix:{sock_path}"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(sock_path))
        live.listen(4)
        code, out = run_to_exit(path)
        assert sock_path.is_socket()  # still the live one's
    assert code == 2, out
    assert f"control API cannot listen on unix:{sock_path}: Address already in use" in out, out
    assert "Traceback" not in out


def test_stale_control_unix_socket_is_replaced(tmp_path: Path) -> None:
    path, control = write_config(tmp_path)
    sock_path = tmp_path / "control.sock"
    path.write_text(path.read_text().replace(f"control: {control}", f"control: unix:{sock_path}"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(sock_path))  # closed without unlinking: a previous run's leftover
    proc = start(path)
    try:
        status = status_reader(f"unix:{sock_path}")
        st = poll(status, 20)
        assert st and st["alarms"] == [], st
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, out
