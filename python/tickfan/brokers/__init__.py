"""The broker seam: one ABC (:mod:`tickfan.brokers.base`), one implementation per backend.

Every implementation passes the same contract suite (``tests/brokers/test_contract.py``).
"""

from tickfan.brokers.base import Broker, Event, Node

__all__ = ["Broker", "Event", "Node"]
