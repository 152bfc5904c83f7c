"""Adapters: the only package that imports ``twisted.internet`` (DESIGN.md section 2, ring 2)."""
