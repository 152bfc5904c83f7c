"""Hostile RADIUS against a running broker: a forging proxy in front of the real FreeRADIUS
answers every Access-Request first with forged replies (wrong Response Authenticator, no
Message-Authenticator, an old genuine Access-Reject replayed under the new id, truncated,
oversized), then with the genuine reply, then replays the genuine reply. Every forgery is
dropped and counted and the call completes with the genuine reply. Disconnect-Requests from
an unknown client, with a wrong secret, truncated or oversized get no answer and the session
is kept; a genuine one still works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.lab.broker_lab import LAC_ADDR
from ops.lab.hostile import STRANGER, HostileLab, disconnect_request
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

FORGED_KINDS = ("wrong-auth", "no-ma", "replayed", "oversized")


@pytest.fixture(scope="module")
def lab() -> Iterator[HostileLab]:
    require_root()
    for binary in ("freeradius", "l2tpns"):
        require_binary(binary)
    lab = HostileLab(radius_proxy=True, retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_forged_and_replayed_replies_dropped_call_completes(lab: HostileLab) -> None:
    before = lab.metrics()
    proxy_before = lab.proxy_report()
    report = lab.subscribers(3, user_template="user{i}@isp-a.example", rate=10, timeout=90)
    assert report["up"] == 3 and report["failed"] == 0, report["_output"][-2000:]
    proxy = lab.proxy_report()
    assert proxy["have_old_reply"], "FreeRADIUS gave the proxy no Access-Reject to replay"
    calls = proxy["genuine_replies"] - proxy_before["genuine_replies"]
    assert calls >= 3
    sent = {k: v - proxy_before["forged_sent"].get(k, 0) for k, v in proxy["forged_sent"].items()}
    assert all(sent[k] == calls for k in (*FORGED_KINDS, "truncated", "replayed-genuine")), sent
    d = delta(before, lab.metrics())
    assert d.get("radius/accepts", 0) == 3 and d.get("radius/rejects", 0) == 0, d
    # Every datagram but the 3 accepted replies is dropped and counted: the forgeries sent
    # before a genuine reply fail verification (wrong authenticator, no MA, replayed old
    # reply, Length beyond 4096) or do not parse (truncated); a replay after the answer
    # matches no request. (A retransmission on a slow machine makes the proxy answer twice;
    # the sums still hold.)
    to_broker = sum(sent.values()) + calls
    dropped = sum(d.get(f"radius/{k}", 0) for k in ("forged_replies", "malformed", "unknown_reply"))
    assert dropped == to_broker - 3, (d, sent)
    assert d.get("radius/forged_replies", 0) + d.get("radius/malformed", 0) >= 3 * 5, d
    assert d.get("radius/malformed", 0) >= 3 and d.get("radius/unknown_reply", 0) >= 3, d


def test_disconnect_requests_from_strangers_dropped_session_kept(lab: HostileLab) -> None:
    proc, _ = lab.subscribers(
        1, user_template="user{i}@isp-a.example", rate=10, hold=-1,
        extra=["--first-index", "20"], background=True,
    )  # fmt: skip
    try:
        assert poll(
            lambda: [r for r in lab.control("/sessions") if r["state"] == "spliced"], 40, 0.3
        ), lab.broker_log()[-3000:]
        session = next(r for r in lab.control("/sessions") if r["state"] == "spliced")
        user = session["username"]
        secret = lab.secret_values["dynauth"].encode()
        genuine = disconnect_request(user, secret)
        attempts = [
            ("lns-a", f"{STRANGER}:0", genuine),  # a client the broker does not know
            ("lac", f"{LAC_ADDR}:0", disconnect_request(user, b"wrong-secret")),
            ("lac", f"{LAC_ADDR}:0", genuine[:15]),  # truncated
            ("lac", f"{LAC_ADDR}:0", genuine[:2] + b"\x13\x00" + genuine[4:] + bytes(4800)),
        ]
        for ns, source, payload in attempts:
            out = lab.run_in(
                ns, "udp", "--target", f"{LAC_ADDR}:3799", "--source", source,
                "--wait", "1.0", payload.hex(),
            )  # fmt: skip
            assert out["answers"] == [], (source, out)
            assert [r["id"] for r in lab.control("/sessions")] == [session["id"]]
        out = lab.run_in(
            "lac", "udp", "--target", f"{LAC_ADDR}:3799", "--source", f"{LAC_ADDR}:0",
            "--wait", "3.0", genuine.hex(),
        )  # fmt: skip
        assert len(out["answers"]) == 1 and out["answers"][0][:2] == "29", out  # Disconnect-ACK
        assert poll(lambda: lab.control("/sessions") == [], 20, 0.3)
    finally:
        stop_process(proc)
