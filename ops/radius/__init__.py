"""FreeRADIUS lab configuration (users file, generated radiusd.conf tree)."""
