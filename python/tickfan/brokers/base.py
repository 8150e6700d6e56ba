"""The broker ABC: what the nodes of one deployment share, and the node it drives.

A *node* is one worker process: its :class:`tickfan.hub.Hub` owns the core and the sockets. The
broker carries what must look the same from every node:

* **ticks.** :meth:`Broker.ingest` validates a batch and publishes it. Every node, the ingesting
  one included, applies every published batch once, in publish order, through
  :meth:`Node.apply`; so ``seq`` is contiguous per symbol across the deployment and every node's
  frames and candles are the same at the same position.
* **per-user events.** A bot's new state (:class:`~tickfan.bots.BotState`) or a stored
  notification (:class:`~tickfan.stores.Notification`; a fired price alert is one, kind
  ``price_alert``) reaches every node through :meth:`Node.deliver`, which pushes it to that
  user's sockets there and nowhere else.
* **durable per-user state.** Notifications, alerts and bot states live in :attr:`Broker.store`,
  a :class:`~tickfan.stores.Store`. Decision: writes go through the broker, because a write must
  also publish its event (and an alert must be armed where ticks are checked); reads go straight
  to the store, because a read has nothing to tell other nodes. Each broker brings the store its
  durability needs (the memory broker: SQLite in the data dir; a cluster broker: its shared
  one), so one store contract suite covers that state for every broker.

Delivery guarantees, for every implementation (``tests/brokers/test_contract.py``):

* A batch is all or nothing: a refused batch (``TickRejected``, one message per bad tick)
  publishes nothing and changes nothing.
* :meth:`Broker.ingest` returns after the batch is published and after every alert it fired is
  committed together with its notification; so an acknowledged batch fired its alerts exactly
  once, and a batch whose call failed (process killed, broker down) may be retried: an alert
  that already fired is gone and never fires again.
* With the same ``idempotency_key``, a retried batch is published once; the retry gets the
  first call's answer.
* An event is delivered after the state it describes is stored, at most once per node, in
  the order its writes committed for one user. A socket that connects later reads the state
  from the store.
* The epoch changes only when the broker's tick state is lost (a new process with the memory
  broker); ``seq`` then restarts at 1.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Protocol

from tickfan.bots import BotState
from tickfan.stores.base import Alert, Direction, Notification, Store

__all__ = ["Broker", "Event", "Node"]

Event = BotState | Notification
"""A per-user event: a bot's new state, or a stored notification."""


class Node(Protocol):
    """What a broker drives: one process's hub. Called on the event loop; none of it awaits."""

    def apply(self, ticks: Sequence[Any]) -> int:
        """Validate and apply a batch to the local core and fan it out; return how many ticks.

        All or nothing: raises ``TickRejected`` (every bad tick's index and message) and
        changes nothing. ``ticks`` are ``(symbol, price, size, ts)``; a malformed item is refused.
        """

    def deliver(self, user_id: str, event: Event) -> None:
        """Push a per-user event to that user's sockets on this node (none: nothing happens)."""

    def new_epoch(self, epoch: str) -> None:
        """The broker's tick state was lost: seq restarts; market-data sockets must resubscribe."""

    def checkpoint(self) -> Any:
        """The core's tick state at this node's position (``Core.checkpoint``)."""

    def restore(self, state: Any) -> None:
        """Replace the core with one loaded from a ``checkpoint`` (sockets must resubscribe)."""


class Broker(abc.ABC):
    """Ticks, per-user events and per-user state of a deployment (see module doc)."""

    store: Store
    """Notifications, alerts and bot states; read them here, write them through the broker."""

    checks_clock: bool = False
    """True when :meth:`ingest` refuses far-future ticks against the ingesting node's clock
    before publishing; the nodes then apply published batches without checking their own."""

    # --- lifecycle ------------------------------------------------------------------------

    @abc.abstractmethod
    async def start(self, node: Node) -> None:
        """Open the store, load what the node needs, then drive ``node`` until :meth:`stop`."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Finish pending commits, stop driving the node, close the store."""

    @property
    @abc.abstractmethod
    def epoch(self) -> str:
        """The current epoch (``subscribed.epoch``): changes when tick state is lost."""

    @abc.abstractmethod
    async def ready(self) -> bool:
        """Whether ingest and writes would succeed now (``/readyz``)."""

    # --- ticks ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def ingest(self, ticks: Sequence[Any], idempotency_key: str | None = None) -> int:
        """Validate, publish and apply a batch; return how many ticks it held.

        ``TickRejected`` if any tick is invalid, before anything is published. Returns once the
        batch is published and the alerts it fired are committed with their notifications.
        A ``idempotency_key`` already answered returns that answer and publishes nothing; a
        refused batch does not use up its key.
        """

    # --- per-user writes -----------------------------------------------------------------------

    @abc.abstractmethod
    async def put_bot(self, user_id: str, bot_id: str, status: str, detail: Any) -> BotState:
        """Store a bot's status (stamped now) and publish it; ``ValueError`` for a bad status."""

    @abc.abstractmethod
    async def notify(
        self, user_id: str, kind: str, title: str, body: str, data: Any
    ) -> Notification:
        """Store an unread notification (stamped now), then publish it."""

    @abc.abstractmethod
    async def add_alert(self, user_id: str, symbol: str, direction: Direction, level: float) -> Alert:
        """Store and arm an alert. ``UnknownSymbol``; ``InvalidArgument`` (direction, level)."""

    @abc.abstractmethod
    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        """Disarm and delete the user's alert; False if unknown, another user's, or fired."""
