"""Durable storage for notifications and price alerts: one ABC, one implementation per backend.

``SqliteStore`` (the default, a file in the data dir) is the only backend so far; a Redis store
for multi-node deployments would implement the same :class:`Store` and pass the same contract
tests (``tests/test_stores.py``).
"""

from tickfan.stores.base import Alert, FiredAlert, Notification, Store
from tickfan.stores.sqlite import SqliteStore

__all__ = ["Alert", "FiredAlert", "Notification", "Store", "SqliteStore"]
