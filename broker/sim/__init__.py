"""Simulators (pure, sans-I/O): subscriber-side PPP client and other protocol emulators."""
