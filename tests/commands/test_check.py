from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--policies", str(ROOT / "policies")]) == 0
    assert "2 realm(s): isp-a.example, isp-b.example" in capsys.readouterr().out


def test_check_reports_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "p")
    bad = tmp_path / "p" / "realms" / "isp-b.example.yaml"
    bad.write_text(bad.read_text().replace("strategy: existing-first", "strategy: fastest"))
    assert main(["check", "--policies", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "isp-b.example.yaml:9: strategy: expected one of:" in err and "'fastest'" in err


def test_check_missing_config_and_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "-c", str(tmp_path / "none.conf")]) == 1
    assert "configuration file not found" in capsys.readouterr().err
    assert main(["check"]) == 2


def test_check_command_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "realms").mkdir()
    (tmp_path / "realms" / "x.yaml").write_text("realm: x\nmax_sessions: -1\n")
    out = subprocess.run(
        [sys.executable, "-m", "broker", "check", "--policies", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 1
    assert "x.yaml:2: max_sessions: expected an integer >= 1, got -1" in out.stderr
