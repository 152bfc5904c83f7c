"""The kernel's L2TP tunnels and sessions over generic netlink (family ``l2tp``,
linux/l2tp.h), through pyroute2's :class:`pyroute2.L2tp`.

Only what the LAC's kernel data plane needs: an L2TPv2 tunnel with UDP encapsulation on a
socket we own (``L2TP_ATTR_FD``: the kernel takes the data messages, RFC 2661 section 3.1,
and passes control messages, T=1, to the socket as before), PPP pseudowire sessions
(``L2TP_PWTYPE_PPP``, optional sequencing, RFC 2661 section 5.4), deletion, and per-session
statistics (``L2TP_ATTR_STATS``). Errors come out as :class:`OSError` with the kernel's errno.
"""

from __future__ import annotations

import errno
from typing import Any, Protocol

__all__ = [
    "L2TP_PWTYPE_PPP",
    "L2tpControl",
    "PyrouteL2tp",
    "family_available",
]

#: linux/l2tp.h enum l2tp_pwtype
L2TP_PWTYPE_PPP = 0x0007
_STATS = (
    "tx_packets",
    "tx_bytes",
    "tx_errors",
    "rx_packets",
    "rx_bytes",
    "rx_seq_discards",
    "rx_oos_packets",
    "rx_errors",
)


class L2tpControl(Protocol):
    """What :class:`~broker.dataplane.kernel.KernelSplice` asks of the kernel's L2TP."""

    def create_tunnel(
        self, tunnel_id: int, peer_tunnel_id: int, fd: int, local: tuple[str, int],
        peer: tuple[str, int],
    ) -> None: ...  # fmt: skip

    def delete_tunnel(self, tunnel_id: int) -> None: ...

    def create_session(
        self, tunnel_id: int, session_id: int, peer_session_id: int, sequencing: bool
    ) -> None: ...

    def delete_session(self, tunnel_id: int, session_id: int) -> None: ...

    def session_stats(self, tunnel_id: int, session_id: int) -> dict[str, int]: ...

    def close(self) -> None: ...


def _oserror(exc: Exception) -> OSError:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        return OSError(code, f"l2tp netlink: {exc}")
    return OSError(errno.EIO, f"l2tp netlink: {exc}")


class PyrouteL2tp:
    """:class:`L2tpControl` on pyroute2's generic netlink L2TP socket (root)."""

    def __init__(self) -> None:
        try:
            from pyroute2 import L2tp
        except ImportError as exc:  # pragma: no cover - pyroute2 is a dependency
            raise OSError(errno.ENOSYS, f"pyroute2 is missing: {exc}") from exc
        try:
            self._nl: Any = L2tp()
        except Exception as exc:  # NetlinkError(ENOENT): no "l2tp" family in this kernel
            raise _oserror(exc) from exc

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._nl, name)(*args, **kwargs)
        except OSError:
            raise
        except Exception as exc:  # pyroute2's NetlinkError carries the errno as .code
            raise _oserror(exc) from exc

    def create_tunnel(
        self, tunnel_id: int, peer_tunnel_id: int, fd: int, local: tuple[str, int],
        peer: tuple[str, int],
    ) -> None:  # fmt: skip
        # pyroute2 wants the endpoints even with a socket fd (they are not sent then)
        self._call(
            "create_tunnel",
            tunnel_id=tunnel_id,
            peer_tunnel_id=peer_tunnel_id,
            protocol=2,
            remote=peer[0],
            local=local[0],
            fd=fd,
            encap="udp",
            udp_sport=local[1] or 1701,
            udp_dport=peer[1] or 1701,
        )

    def delete_tunnel(self, tunnel_id: int) -> None:
        self._call("delete_tunnel", tunnel_id)

    def create_session(
        self, tunnel_id: int, session_id: int, peer_session_id: int, sequencing: bool
    ) -> None:
        self._call(
            "create_session",
            tunnel_id=tunnel_id,
            session_id=session_id,
            peer_session_id=peer_session_id,
            seq="both" if sequencing else None,
            pwtype=L2TP_PWTYPE_PPP,
        )

    def delete_session(self, tunnel_id: int, session_id: int) -> None:
        self._call("delete_session", tunnel_id, session_id)

    def session_stats(self, tunnel_id: int, session_id: int) -> dict[str, int]:
        msg = self._call("get_session", tunnel_id, session_id)
        stats = msg.get_attr("L2TP_ATTR_STATS")
        if stats is None:
            return {}
        return {name: int(stats.get_attr("L2TP_ATTR_" + name.upper()) or 0) for name in _STATS}

    def close(self) -> None:
        try:
            self._nl.close()
        except Exception:  # closing twice or after a failed bind
            return


def family_available() -> tuple[bool, str]:
    """Whether the kernel has the ``l2tp`` generic netlink family (module l2tp_netlink)."""
    try:
        nl = PyrouteL2tp()
    except OSError as exc:
        return False, f"no L2TP generic netlink family ({exc.strerror}): load l2tp_netlink"
    nl.close()
    return True, "L2TP generic netlink family present"
