"""RADIUS packet codec: RFC 2865 section 7 vectors, authenticators, pyrad cross-checks,
Hypothesis round trips."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad.packet import AuthPacket

from broker.radius import packet as p
from broker.radius.constants import Attr, Code
from broker.radius.dictionary import DICTIONARY_PATH, load_dictionary
from broker.wire import LocalProtocolError, RemoteProtocolError

SECRET = b"xyzzy5461"


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 2865 section 7.1 (Access-Request nemo/arctangent and its Access-Accept).
REQ_71 = h("""01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
01 10 05 06 00 00 00 03""")
ACC_71 = h("""02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
0e 06 c0 a8 01 03""")
# RFC 2865 section 7.2 (CHAP).
REQ_72 = h("""01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
02 07 06 00 00 00 01""")
ACC_72 = h("""02 01 00 38 15 ef bc 7d ab 26 cf a3 dc 34 d9 c0
3c 86 01 a4 06 06 00 00 00 02 07 06 00 00 00 01
08 06 ff ff ff fe 0a 06 00 00 00 02 0d 06 00 00
00 01 0c 06 00 00 05 dc""")
# RFC 2865 section 7.3 (challenge-response card).
REQ_73A = h("""01 02 00 39 f3 a4 7a 1f 6a 6d 76 71 0b 94 7a b9
30 41 a0 39 01 07 6d 6f 70 73 79 02 12 33 65 75
73 77 82 89 b5 70 88 5e 15 08 48 25 c5 04 06 c0
a8 01 10 05 06 00 00 00 07""")
CHAL_73 = h("""0b 02 00 4e 36 f3 c8 76 4a e8 c7 11 57 40 3c 0c
71 ff 9c 45 12 30 43 68 61 6c 6c 65 6e 67 65 20
33 32 37 36 39 34 33 30 2e 20 20 45 6e 74 65 72
20 72 65 73 70 6f 6e 73 65 20 61 74 20 70 72 6f
6d 70 74 2e 18 0a 33 32 37 36 39 34 33 30""")
# As printed: the State attribute says length 0x10 but carries 8 octets (an erratum).
REQ_73B_PRINTED = h("""01 03 00 43 b1 22 55 6d 42 8a 13 d0 d6 25 38 07
c4 57 ec f0 01 07 6d 6f 70 73 79 02 12 69 2c 1f
20 5f c0 81 b9 19 b9 51 95 f5 61 a5 81 04 06 c0
a8 01 10 05 06 00 00 00 07 18 10 33 32 37 36 39
34 33 30""")
REQ_73B = REQ_73B_PRINTED[:58] + b"\x0a" + REQ_73B_PRINTED[59:]
REJ_73 = h("03 03 00 14 a4 2f 4f ca 45 91 6c 4e 09 c8 34 0f 9e 74 6a a0")


def reencode(raw: bytes) -> bytes:
    pkt = p.decode_packet(raw)
    attrs = p.encode_attributes(pkt.attributes)
    length = 20 + len(attrs)
    return bytes((pkt.code, pkt.identifier)) + length.to_bytes(2, "big") + pkt.authenticator + attrs


@pytest.mark.parametrize(
    "raw",
    [REQ_71, ACC_71, REQ_72, ACC_72, REQ_73A, CHAL_73, REQ_73B, REJ_73],
    ids=["7.1req", "7.1acc", "7.2req", "7.2acc", "7.3req", "7.3chal", "7.3req2", "7.3rej"],
)
def test_rfc2865_examples_round_trip(raw: bytes) -> None:
    assert reencode(raw) == raw


def test_rfc2865_7_1_password_and_response() -> None:
    req = p.decode_packet(REQ_71)
    assert req.value("User-Name") == "nemo"
    assert req.value("NAS-IP-Address") == "192.168.1.16"
    assert req.value("NAS-Port") == 3
    hidden = req.get(Attr.USER_PASSWORD)
    assert hidden is not None
    assert p.unhide_password(hidden, SECRET, req.authenticator) == b"arctangent"
    assert p.hide_password(b"arctangent", SECRET, req.authenticator) == hidden
    # The example replies carry no Message-Authenticator: valid RFC 2865, refused by us.
    assert p.verify_response(ACC_71, req.authenticator, SECRET, require_message_authenticator=False)
    assert not p.verify_reply(ACC_71, req.authenticator, SECRET)
    assert not p.verify_response(
        ACC_71, req.authenticator, b"wrong", require_message_authenticator=False
    )
    acc = p.decode_packet(ACC_71)
    assert acc.value("Service-Type") == 1
    assert acc.value("Login-IP-Host") == "192.168.1.3"


def test_rfc2865_7_2_chap_and_accept() -> None:
    req = p.decode_packet(REQ_72)
    assert req.value("User-Name") == "flopsy"
    chap = req.get(Attr.CHAP_PASSWORD)
    assert chap is not None and chap[0] == 22 and len(chap) == 17
    assert p.verify_response(ACC_72, req.authenticator, SECRET, require_message_authenticator=False)
    acc = p.decode_packet(ACC_72)
    assert acc.value("Framed-IP-Address") == "255.255.255.254"
    assert acc.value("Framed-MTU") == 1500


def test_rfc2865_7_3_printed_state_length_is_malformed() -> None:
    with pytest.raises(RemoteProtocolError):
        p.decode_packet(REQ_73B_PRINTED)
    req = p.decode_packet(REQ_73B)
    assert req.get(Attr.STATE) == b"32769430"
    hidden = req.get(Attr.USER_PASSWORD)
    assert hidden is not None
    assert p.unhide_password(hidden, SECRET, req.authenticator) == b"99101462"
    assert p.verify_response(REJ_73, req.authenticator, SECRET, require_message_authenticator=False)
    first = p.decode_packet(REQ_73A)
    pw = first.get(Attr.USER_PASSWORD)
    assert pw is not None
    assert p.unhide_password(pw, SECRET, first.authenticator) == b"challenge"
    assert p.verify_response(
        CHAL_73, first.authenticator, SECRET, require_message_authenticator=False
    )
    assert p.decode_packet(CHAL_73).get(Attr.STATE) == b"32769430"


def test_access_request_has_ma_first_and_pyrad_agrees() -> None:
    auth = bytes(range(16))
    raw = p.encode_request(
        Code.ACCESS_REQUEST,
        9,
        [p.attribute("User-Name", "bob"), (Attr.USER_PASSWORD, b"hello")],
        b"s3cret",
        auth,
    )
    pkt = p.decode_packet(raw)
    assert pkt.attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR
    # Independent check of the MA: HMAC-MD5 with the MA zeroed.
    zeroed = raw[:22] + bytes(16) + raw[38:]
    assert hmac.new(b"s3cret", zeroed, hashlib.md5).digest() == pkt.attributes[0][1]
    assert p.verify_access_request(raw, b"s3cret")
    assert not p.verify_access_request(raw, b"other")
    pyrad_pkt = AuthPacket(secret=b"s3cret", dict=load_dictionary(), packet=raw)
    assert pyrad_pkt.PwDecrypt(pyrad_pkt["User-Password"][0]) == "hello"
    assert pyrad_pkt.verify_message_authenticator()
    # A reply built by pyrad verifies with our code.
    reply = pyrad_pkt.CreateReply()
    reply.code = Code.ACCESS_ACCEPT
    reply["Reply-Message"] = "welcome"
    reply.add_message_authenticator()
    wire = reply.ReplyPacket()
    assert p.verify_reply(wire, auth, b"s3cret")
    assert p.decode_packet(wire).value("Reply-Message") == "welcome"


def test_accounting_request_authenticator() -> None:
    attrs = [p.attribute("Acct-Status-Type", "Start"), p.attribute("Acct-Session-Id", "abc")]
    raw = p.encode_request(Code.ACCOUNTING_REQUEST, 3, attrs, b"k")
    body = raw[:4] + bytes(16) + raw[20:]
    assert raw[4:20] == hashlib.md5(body + b"k").digest()
    assert p.verify_accounting_request(raw, b"k")
    assert not p.verify_accounting_request(raw, b"j")
    with_ma = p.encode_request(
        Code.DISCONNECT_REQUEST, 4, attrs, b"k", add_message_authenticator=True
    )
    assert p.verify_coa_request(with_ma, b"k")
    tampered = bytearray(with_ma)
    tampered[24] ^= 1  # inside the MA
    assert not p.verify_coa_request(bytes(tampered), b"k")
    resp = p.encode_response(
        Code.ACCOUNTING_RESPONSE, 3, [], b"k", raw[4:20], add_message_authenticator=False
    )
    assert p.verify_response(resp, raw[4:20], b"k", require_message_authenticator=False)
    assert not p.verify_reply(resp, raw[4:20], b"k")
    with pytest.raises(LocalProtocolError):
        p.encode_request(Code.ACCOUNTING_REQUEST, 1, [], b"k", bytes(16))
    with pytest.raises(LocalProtocolError):
        p.encode_request(Code.ACCESS_ACCEPT, 1, [], b"k")


def test_vendor_attribute_and_dictionary() -> None:
    assert DICTIONARY_PATH.exists()
    assert load_dictionary() is load_dictionary()
    attr = p.attribute("ADSL-Agent-Circuit-Id", b"dslam1 eth 1/1/1:100")
    assert attr[0] == Attr.VENDOR_SPECIFIC and attr[1][:4] == (3561).to_bytes(4, "big")
    pkt = p.RadiusPacket(1, 1, bytes(16), (attr, (26, b"\x00")))  # a broken VSA is ignored
    assert pkt.value("ADSL-Agent-Circuit-Id") == b"dslam1 eth 1/1/1:100"
    assert pkt.value("User-Name") is None
    assert p.attribute("NAS-Port-Type", "xDSL") == (61, b"\x00\x00\x00\x10")
    with pytest.raises(RemoteProtocolError):
        p.decode_value("NAS-Port", b"\x00")


def test_malformed_packets_raise_remote_errors() -> None:
    for raw in (b"", bytes(19), b"\x01\x00\x00\x13" + bytes(16), b"\x01\x00\x00\x30" + bytes(16)):
        with pytest.raises(RemoteProtocolError):
            p.decode_packet(raw)
    with pytest.raises(RemoteProtocolError):
        p.decode_packet(b"\x01\x00\x00\x16" + bytes(16) + b"\x01\x01")
    with pytest.raises(RemoteProtocolError):
        p.decode_packet(b"\x01\x00\x00\x16" + bytes(16) + b"\x01\x05")
    # Padding beyond Length is ignored (RFC 2865 section 3).
    assert p.decode_packet(REJ_73 + b"pad").code == Code.ACCESS_REJECT


attrs_st = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=253)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    attrs_st,
    st.integers(0, 255),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=1, max_size=32),
)
def test_request_round_trip(
    attrs: list[tuple[int, bytes]], ident: int, auth: bytes, secret: bytes
) -> None:
    attrs = [(t, v) for t, v in attrs if t not in (Attr.USER_PASSWORD, Attr.MESSAGE_AUTHENTICATOR)]
    if sum(len(v) + 2 for _, v in attrs) > 4000:
        return
    raw = p.encode_request(Code.ACCESS_REQUEST, ident, attrs, secret, auth)
    pkt = p.decode_packet(raw)
    assert pkt.identifier == ident and pkt.authenticator == auth
    assert list(pkt.attributes[1:]) == attrs
    assert p.verify_access_request(raw, secret)
    reply = p.encode_response(Code.ACCESS_ACCEPT, ident, attrs, secret, auth)
    assert p.verify_reply(reply, auth, secret)
    assert list(p.decode_packet(reply).attributes[1:]) == attrs


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=128), st.binary(min_size=1, max_size=20), st.binary(min_size=16, max_size=16)
)
def test_password_hiding_round_trip(password: bytes, secret: bytes, auth: bytes) -> None:
    hidden = p.hide_password(password, secret, auth)
    assert len(hidden) % 16 == 0 and len(hidden) >= 16
    assert p.unhide_password(hidden, secret, auth) == password.rstrip(b"\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(min_size=16, max_size=16))
def test_random_bytes_never_raise_unexpected(raw: bytes, auth: bytes) -> None:
    assert p.verify_reply(raw, auth, b"s") in (True, False)
    assert p.verify_request(raw, b"s") in (True, False)
    with contextlib.suppress(RemoteProtocolError):
        p.decode_packet(raw)
