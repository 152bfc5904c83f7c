"""Inputs that broke a contract once (found by the ops/fuzz targets or while writing them),
kept as regression tests. Each names the target and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config.loader import ConfigError, load_config
from broker.policy.loader import PolicyError, load_policies
from broker.radius.constants import Attr, Code
from broker.radius.dynauth import (
    DisconnectOutcome,
    DynAuthClient,
    DynAuthServer,
    SessionCriteria,
)
from broker.radius.packet import encode_request
from ops.fuzz.targets import load

#: policy_loader / config_loader: PyYAML's composer recursed once per nesting level and a
#: RecursionError escaped compose_yaml (fixed: a located PolicyError / ConfigError).
DEEP_YAML = [
    bytes.fromhex("5b") * 1000,  # "[[[[..."
    bytes.fromhex("613a20") + bytes.fromhex("7b623a20") * 1000,  # "a: {b: {b: ..."
    bytes.fromhex("2d20") * 1000,  # "- - - ..."
]


@pytest.mark.parametrize("text", DEEP_YAML)
def test_deeply_nested_yaml_is_a_config_error(text: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("text", DEEP_YAML)
@pytest.mark.parametrize("where", ["defaults.yaml", "realms/deep.yaml"])
def test_deeply_nested_yaml_is_a_policy_error(text: bytes, where: str, tmp_path: Path) -> None:
    (tmp_path / "realms").mkdir()
    (tmp_path / where).write_bytes(text)
    with pytest.raises(PolicyError, match="nested too deeply") as info:
        load_policies(tmp_path)
    assert where in str(info.value)


#: radius_dynauth: a correctly signed Disconnect-Request of 4096 octets whose Proxy-State
#: attributes leave no room for the NAK (Error-Cause + Message-Authenticator + the echoed
#: Proxy-State) made encode_response raise LocalProtocolError out of receive_datagram
#: (fixed: counted as malformed, not acted on, no reply).
def test_dynauth_request_too_big_to_answer() -> None:
    calls: list[SessionCriteria] = []

    def find(criteria: SessionCriteria) -> DisconnectOutcome:
        calls.append(criteria)
        return DisconnectOutcome.NOT_FOUND  # a NAK: the reply carries an Error-Cause

    server = DynAuthServer(
        [DynAuthClient("c", "192.0.2.9", b"fuzz-dynauth")],
        nas_ip=None,
        nas_identifier=None,
        find_and_disconnect=find,
    )
    attrs = [(int(Attr.USER_NAME), b"u")] + [(int(Attr.PROXY_STATE), b"x" * 253)] * 15
    used = 20 + 18 + 3 + 15 * 255
    attrs.append((int(Attr.PROXY_STATE), b"y" * (4096 - used - 2)))
    raw = encode_request(
        Code.DISCONNECT_REQUEST, 1, attrs, b"fuzz-dynauth", add_message_authenticator=True
    )
    assert len(raw) == 4096
    server.receive_datagram(raw, ("192.0.2.9", 3799), 0.0)
    assert server.counters["malformed"] == 1
    assert server.datagrams_to_send(0.0) == [] and calls == []
    # A request of ordinary size from the same client is answered.
    small = encode_request(Code.DISCONNECT_REQUEST, 2, attrs[:2], b"fuzz-dynauth")
    server.receive_datagram(small, ("192.0.2.9", 3799), 0.0)
    assert len(server.datagrams_to_send(0.0)) == 1 and len(calls) == 1


#: Inputs of the fuzz targets that failed once, as hex: (target, input).
TARGET_INPUTS: list[tuple[str, str]] = [
    # pppoe_discovery: DSL Forum line info re-encoded (target bug: encode_line_info gives
    # the whole Vendor-Specific value, vendor id included)
    (
        "pppoe_discovery",
        "11190000006901010000010300040102030401040014000000000000000000000000000000000000"
        "002c0105003b00000de903040104001400000000000900000012010100000501020129dc00030004"
        "16372c16736372696265722d378104000fa000820400fa00000120000205dc",
    ),
    ("config_loader", "5b" * 1000),
    ("policy_loader", "00" + "2d20" * 1000),
    ("policy_loader", "01" + "5b" * 1000),
]


@pytest.mark.parametrize(("target", "hex_input"), TARGET_INPUTS)
def test_target_inputs_keep_the_contract(target: str, hex_input: str) -> None:
    load(target)(bytes.fromhex(hex_input))
