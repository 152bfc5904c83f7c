"""RADIUS: dictionaries, packet codec, RFC 2868 tunnel attributes, sans-I/O client engine.

Pure ring (DESIGN.md section 2): no sockets, no clock. See :mod:`broker.radius.packet`,
:mod:`broker.radius.tunnel` and :mod:`broker.radius.client`.
"""
