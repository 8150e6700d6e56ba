"""The broker seam: one ABC (:mod:`tickfan.brokers.base`), one implementation per backend.

:func:`broker_from_config` is the one place that picks a broker for ``--broker``. Every
implementation passes the same contract suite (``tests/brokers/test_contract.py``).
"""

from __future__ import annotations

from tickfan.brokers.base import Broker, Event, Node
from tickfan.brokers.memory import MemoryBroker
from tickfan.config import Config
from tickfan.errors import ConfigError
from tickfan.stores import SqliteStore

__all__ = ["Broker", "Event", "Node", "MemoryBroker", "broker_from_config", "STORE_FILE"]

STORE_FILE = "tickfan.db"
"""The memory broker's SQLite file in the data dir: notifications, alerts and bot states."""


def broker_from_config(config: Config) -> Broker:
    """The broker ``config.broker`` names (``memory``: SQLite in ``config.data_dir``;
    ``redis://``: :class:`tickfan.brokers.redis.RedisBroker`, state in that Redis)."""
    if config.broker == "memory":
        return MemoryBroker(
            SqliteStore(config.data_dir / STORE_FILE), max_alerts_per_user=config.max_alerts_per_user
        )
    if config.broker.startswith(("redis://", "rediss://")):
        from tickfan.brokers.redis import RedisBroker

        return RedisBroker(config)
    raise ConfigError(f"unknown broker {config.broker!r}")
