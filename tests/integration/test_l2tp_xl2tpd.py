"""Interop: our LAC (L2tpEndpoint + L2tpUdpAdapter in a Twisted reactor) against xl2tpd as LNS.

Two network namespaces joined by a veth pair; xl2tpd (Debian package) runs in one as LNS with
tunnel authentication (challenge) and hidden AVPs on; ``ops.lab.l2tp_probe`` runs in the other.
The probe's ICRQ carries hidden Called/Calling Number AVPs (RFC 2661 4.3), the calling number
spanning three MD5 blocks: xl2tpd logging the plain values proves it revealed them with the
shared secret (an independent implementation agreeing with our hiding). xl2tpd answers the ICCN by
starting pppd, which fails on this kernel (no /dev/ppp), so xl2tpd clears the call with a CDN:
the probe must report a SessionClosed from the peer with its result code and no error. The
tunnel then idles with a short HELLO interval (keepalives acknowledged) and is closed with
our StopCCN. The last test swaps roles: xl2tpd as LAC dials our endpoint in the LNS role.
"""

from __future__ import annotations

import pytest

from ops.lab.l2tp_probe import run_in_netns, start_in_netns
from ops.lab.netns import namespaces, poll, veth
from ops.lab.xl2tpd import Xl2tpd, Xl2tpdConfig
from tests.support import require_binary, require_root

SECRET = "interop-secret-x"
LAC_ADDR, LNS_ADDR = "192.0.2.1", "192.0.2.2"
#: Longer than one MD5 block once hidden (2 + 38 octets): exercises the RFC 2661 4.3 chain.
CALLING = "access-node-7 eth 1/1/12:100 00005e0053"


def _clean_counters(run_counters: dict[str, object]) -> None:
    adapter = run_counters["adapter"]
    endpoint = run_counters["endpoint"]
    assert isinstance(adapter, dict) and isinstance(endpoint, dict)
    assert adapter["engine_errors"] == 0 and adapter["callback_errors"] == 0
    for key in ("malformed", "protocol_errors", "internal_errors", "auth_failed"):
        assert endpoint.get(key, 0) == 0, (key, endpoint)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_our_lac_against_xl2tpd_auth_hidden_avps_and_peer_cdn() -> None:
    require_root()
    require_binary("xl2tpd")
    with namespaces("lac", "xl2") as (lac, lns):
        veth(lac, lns, f"{LAC_ADDR}/24", f"{LNS_ADDR}/24")
        cfg = Xl2tpdConfig(listen_addr=LNS_ADDR, secret=SECRET, hidden=True)
        with Xl2tpd(lns, cfg) as xl2tpd:
            run = run_in_netns(
                lac,
                [
                    "--local", LAC_ADDR,
                    "--peer", LNS_ADDR,
                    "--secret", SECRET,
                    "--hide",
                    "--calling-number", CALLING,
                    "--called-number", "wholesale-svc",
                    "--until", "session-closed",
                    "--hello-interval", "0.5",
                    "--hold", "1.5",
                    "--stop",
                    "--timeout", "20",
                ],
                timeout=30,
            )  # fmt: skip
            log_ok = poll(lambda: "Connection closed to" in xl2tpd.log(), 5)
            log = xl2tpd.log()

    assert not run.timed_out, (run.events, run.stderr[-2000:])
    assert run.exit_reason == "done" and run.returncode == 0, (run.events, run.stderr[-2000:])
    assert "Traceback" not in run.stderr

    # Tunnel up with tunnel authentication in both directions.
    up = run.one("TunnelEstablished")
    assert up["peer_host_name"] == cfg.host_name
    assert "chalresp_avp: Challenge reply found" in log
    assert "Connection established to" in log

    # The call reached ICRP (session established after our ICCN) ...
    sess = run.one("SessionEstablished")
    assert sess["tunnel_id"] == up["tunnel_id"] and sess["peer_session_id"] != 0
    assert "Sending ICRP" in log
    # ... with hidden AVPs xl2tpd could reveal.
    assert f"dialing number '{CALLING}'" in log
    assert "dialed number 'wholesale-svc'" in log
    assert "Invalid Hidden AVP" not in log

    # xl2tpd could not start pppd and cleared the call: a CDN from the peer, handled cleanly.
    closed = run.one("SessionClosed")
    assert closed["session_id"] == sess["session_id"]
    assert closed["by_peer"] is True and closed["during_setup"] is False
    assert isinstance(closed["result"], int) and 1 <= closed["result"] <= 11
    _clean_counters(run.one("counters"))

    # While idle we sent HELLOs (RFC 2661 5.5); xl2tpd acknowledged each one in time.
    assert "message type 6 (Hello)" in log
    assert run.one("counters")["endpoint"]["retransmits"] == 0

    # Our StopCCN closed the tunnel on xl2tpd's side too.
    assert run.one("TunnelClosed")["reason"] == "local"
    assert log_ok, log[-3000:]
    assert "peer closing for reason 1" in log


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_xl2tpd_with_a_different_secret_is_refused() -> None:
    """Tunnel authentication really is checked: a wrong secret never gives TunnelEstablished."""
    require_root()
    require_binary("xl2tpd")
    with namespaces("lac", "xl2") as (lac, lns):
        veth(lac, lns, f"{LAC_ADDR}/24", f"{LNS_ADDR}/24")
        with Xl2tpd(lns, Xl2tpdConfig(listen_addr=LNS_ADDR, secret="the-lns-secret")):
            run = run_in_netns(
                lac,
                [
                    "--local", LAC_ADDR,
                    "--peer", LNS_ADDR,
                    "--secret", "not-the-lns-secret",
                    "--until", "tunnel-closed",
                    "--timeout", "15",
                ],
                timeout=25,
            )  # fmt: skip
    assert not run.timed_out, run.events
    assert run.of("TunnelEstablished") == []
    closed = run.one("TunnelClosed")
    assert closed["during_setup"] is True
    assert closed["reason"] == "auth-failed", closed
    assert "Traceback" not in run.stderr


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_xl2tpd_lac_against_our_lns() -> None:
    """The LNS role against a real LAC: xl2tpd dials our endpoint (tunnel authentication both
    ways), places a call that we accept, then clears it when its pppd fails."""
    require_root()
    require_binary("xl2tpd")
    with namespaces("xlac", "lns") as (lac, lns):
        veth(lac, lns, f"{LAC_ADDR}/24", f"{LNS_ADDR}/24")
        probe = start_in_netns(
            lns,
            [
                "--lns",
                "--local", LNS_ADDR,
                "--host-name", "our-lns",
                "--secret", SECRET,
                "--hide",
                "--until", "session-closed",
                "--timeout", "20",
            ],
        )  # fmt: skip
        listening = poll(lambda: probe.seen("listening"), 15)
        cfg = Xl2tpdConfig(
            listen_addr=LAC_ADDR, secret=SECRET, host_name="xl2tpd-lac", lac_peer=LNS_ADDR
        )
        with Xl2tpd(lac, cfg) as xl2tpd:
            run = probe.wait(30)
            log = xl2tpd.log()

    assert listening, run.events
    assert not run.timed_out and run.exit_reason == "done", (run.events, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    incoming = run.one("IncomingTunnel")
    assert incoming["peer_host_name"] == "xl2tpd-lac"
    assert run.one("TunnelEstablished")["tunnel_id"] == incoming["tunnel_id"]
    # xl2tpd checked our Challenge Response (in SCCRP) and we checked its one (in SCCCN).
    assert "chalresp_avp: Challenge reply found" in log
    assert "Connection established to" in log
    session = run.one("SessionEstablished")
    assert session["params"]["serial"] == 1
    assert "Call established with" in log
    closed = run.one("SessionClosed")
    assert closed["session_id"] == session["session_id"] and closed["by_peer"] is True
    counters = run.one("counters")
    assert counters["adapter"]["engine_errors"] == 0
    for key in ("malformed", "protocol_errors", "internal_errors", "auth_failed"):
        assert counters["endpoint"].get(key, 0) == 0, (key, counters)
