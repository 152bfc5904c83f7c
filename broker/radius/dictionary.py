"""The project's RADIUS dictionary (``dictionaries/`` at the repository root), read once.

The files are in FreeRADIUS format (RFC 2865-2869, 5176, DSL Forum vendor 3561) and are read
by pyrad. ``L2TP_BROKER_DICTIONARY`` may point at another top-level dictionary file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pyrad.dictionary import Dictionary

__all__ = ["DICTIONARY_PATH", "load_dictionary"]

#: The top-level dictionary file shipped with the project.
DICTIONARY_PATH = Path(__file__).resolve().parents[2] / "dictionaries" / "dictionary"


@functools.cache
def load_dictionary(path: str | None = None) -> Dictionary:
    """Read the dictionary (once per path) and return the shared pyrad ``Dictionary``."""
    chosen = path or os.environ.get("L2TP_BROKER_DICTIONARY") or str(DICTIONARY_PATH)
    return Dictionary(chosen)
