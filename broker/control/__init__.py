"""Operations interface: HTTP+JSON control API, Prometheus metrics, and the CLI's client."""
