"""L2TP version 2 (RFC 2661): codec for control and data messages, hidden AVPs.

The reliable-delivery layer and the tunnel/session state machines build on
:mod:`broker.l2tp.codec`; see :mod:`broker.l2tp.constants` for every wire number.
"""
