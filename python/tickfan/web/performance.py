"""``/ws/performance-metrics`` (PROTOCOL.md section 7): a ``metrics`` message per interval.

The first ``metrics`` follows ``auth_success`` at once; then one every ``interval_ms``
(default 1000). ``set_interval`` changes the interval and restarts the period from that
moment (the next message comes ``interval_ms`` later); it has no reply. The figures come from
:class:`tickfan.perf.PerfMonitor` (trailing windows: rates over the last second, latency
percentiles over the last 10 s), so they do not depend on a client's interval.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from msgspec import Meta, Struct

from tickfan.perf import PerfMonitor
from tickfan.protocol import encode
from tickfan.session import Channel, Session

__all__ = ["PerformanceChannel", "SetInterval", "DEFAULT_INTERVAL_MS"]

DEFAULT_INTERVAL_MS = 1000
MIN_INTERVAL_MS = 250
MAX_INTERVAL_MS = 60_000
_TIMER = "performance_timer"


class SetInterval(Struct, tag="set_interval", tag_field="type", frozen=True):
    interval_ms: Annotated[int, Meta(ge=MIN_INTERVAL_MS, le=MAX_INTERVAL_MS)]


class PerformanceChannel(Channel):
    name = "performance_metrics"
    path = "/ws/performance-metrics"
    messages = (SetInterval,)

    def __init__(self, monitor: PerfMonitor) -> None:
        self.monitor = monitor

    async def on_authenticated(self, session: Session) -> None:
        self._send(session)
        self._schedule(session, DEFAULT_INTERVAL_MS)

    async def on_message(self, session: Session, message: Struct) -> None:
        if isinstance(message, SetInterval):
            self._schedule(session, message.interval_ms)

    def on_close(self, session: Session) -> None:
        timer = session.state.pop(_TIMER, None)
        if timer is not None:
            timer.cancel()

    def _send(self, session: Session) -> None:
        session.send(encode(self.monitor.metrics()))

    def _schedule(self, session: Session, interval_ms: int) -> None:
        old = session.state.pop(_TIMER, None)
        if old is not None:
            old.cancel()
        session.state[_TIMER] = asyncio.get_running_loop().call_later(
            interval_ms / 1000.0, self._tick, session, interval_ms
        )

    def _tick(self, session: Session, interval_ms: int) -> None:
        if session.closing:
            return
        self._send(session)
        self._schedule(session, interval_ms)
