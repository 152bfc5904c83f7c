"""Daemon configuration (``broker.yaml``): frozen dataclasses and a loader with located errors."""

from broker.config.loader import ConfigError, load_config
from broker.config.model import BrokerConfig

__all__ = ["BrokerConfig", "ConfigError", "load_config"]
