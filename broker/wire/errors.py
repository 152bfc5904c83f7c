"""Protocol errors that say whose fault they are and what to answer.

A :class:`RemoteProtocolError` means the peer sent something invalid: the adapter logs it
once with the peer, counts it and drops the input. A :class:`LocalProtocolError` means our
own caller asked for something the protocol forbids (a bug on our side). ``result_code``
and ``error_code`` carry what to send back where the protocol has such a field (L2TP
Result Code AVP, RADIUS Error-Cause).
"""

from __future__ import annotations


class ProtocolError(Exception):
    def __init__(
        self, message: str, *, result_code: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.error_code = error_code


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids."""
