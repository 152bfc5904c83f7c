"""The shipped example configuration, systemd unit and dashboard stay consistent with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from broker.cli import main
from broker.config import load_config
from broker.control.metrics import PREFIX

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads() -> None:
    cfg = load_config(ROOT / "ops/examples/broker.yaml")
    assert cfg.node_id == "lac-1"
    assert cfg.l2tp.retransmit == (1.0, 2.0, 4.0, 8.0, 8.0)
    assert [s.name for s in cfg.radius.servers] == ["radius-1", "radius-2"]
    assert cfg.radius.dynauth_port == 3799


def test_check_reports_missing_secret_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "ops/examples/broker.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read secret file /etc/l2tp-broker/radius.secret" in err
    assert "radius.servers[0].secret" in err


def test_check_ok_on_repo_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--policies", str(ROOT / "policies")]) == 0
    assert "isp-a.example" in capsys.readouterr().out


def test_systemd_unit_grants_only_raw_and_admin() -> None:
    unit = (ROOT / "ops/systemd/l2tp-broker.service").read_text()
    caps = re.findall(r"^(?:AmbientCapabilities|CapabilityBoundingSet)=(.*)$", unit, re.M)
    assert caps == ["CAP_NET_RAW CAP_NET_ADMIN"] * 2
    assert "User=l2tp-broker" in unit and "NoNewPrivileges=yes" in unit


def test_dashboard_uses_only_exported_metric_names() -> None:
    dash = json.loads((ROOT / "ops/grafana/l2tp-broker.json").read_text())
    service = (ROOT / "broker/service.py").read_text()
    exported = set(re.findall(r'r\.(?:counter|gauge|histogram)\(\s*"([a-z0-9_]+)"', service))
    assert exported
    for panel in dash["panels"]:
        for target in panel["targets"]:
            for name in re.findall(PREFIX + r"([a-z0-9_]+)", target["expr"]):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                assert base in exported, (panel["title"], name)
