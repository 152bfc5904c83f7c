"""l2tp-broker: a RADIUS-integrated compulsory tunneling broker (L2TP Access Concentrator)."""

__version__ = "0.1.0"
