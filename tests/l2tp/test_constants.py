"""Wire numbers against RFC 2661 sections 3.1, 3.2, 4.4 and RFC 3145."""

from __future__ import annotations

import inspect
import re

from broker.l2tp import constants
from broker.l2tp.constants import (
    SESSION_MESSAGE_TYPES,
    AvpType,
    CdnResult,
    ErrorCode,
    HeaderFlag,
    MessageType,
    ProxyAuthenType,
    StopCcnResult,
)


def test_message_types() -> None:
    assert [(m.name, m.value) for m in MessageType] == [
        ("SCCRQ", 1), ("SCCRP", 2), ("SCCCN", 3), ("StopCCN", 4), ("HELLO", 6),
        ("OCRQ", 7), ("OCRP", 8), ("OCCN", 9), ("ICRQ", 10), ("ICRP", 11),
        ("ICCN", 12), ("CDN", 14), ("WEN", 15), ("SLI", 16),
    ]  # fmt: skip


def test_avp_types() -> None:
    assert AvpType.MESSAGE_TYPE == 0 and AvpType.CHALLENGE_RESPONSE == 13
    assert AvpType.RANDOM_VECTOR == 36 and AvpType.SEQUENCING_REQUIRED == 39
    assert AvpType.PPP_DISCONNECT_CAUSE == 46
    assert 20 not in set(AvpType)  # reserved in RFC 2661
    assert set(range(0, 40)) - {20} == {int(t) for t in AvpType} - {46}


def test_result_and_error_codes() -> None:
    assert [int(v) for v in StopCcnResult] == list(range(1, 8))
    assert [int(v) for v in CdnResult] == list(range(1, 12))
    assert [int(v) for v in ErrorCode] == list(range(0, 9))
    assert ErrorCode.UNKNOWN_MANDATORY_AVP == 8 and ErrorCode.TRY_ANOTHER == 7
    assert [int(v) for v in ProxyAuthenType] == list(range(0, 6))
    assert ProxyAuthenType.CHAP == 2 and ProxyAuthenType.PAP == 3


def test_header_bits() -> None:
    assert HeaderFlag.TYPE | HeaderFlag.LENGTH | HeaderFlag.SEQUENCE | 2 == 0xC802


def test_session_scoped_messages() -> None:
    tunnel = {MessageType.SCCRQ, MessageType.SCCRP, MessageType.SCCCN, MessageType.StopCCN}
    assert tunnel | {MessageType.HELLO} | SESSION_MESSAGE_TYPES == set(MessageType)
    assert not tunnel & SESSION_MESSAGE_TYPES


def test_every_enum_member_names_its_rfc_section() -> None:
    source = inspect.getsource(constants)
    for line in source.splitlines():
        if re.match(r"\s+[A-Za-z_0-9]+ = (0x)?[0-9A-Fa-f]+\s", line) and "class" not in line:
            assert "#: RFC" in line, line
