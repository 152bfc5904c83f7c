"""Accounting I/O ring: the durable sqlite spool and the Twisted accounting service."""
