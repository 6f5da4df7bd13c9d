"""The in-process bus: the embedded default, one process, no network.

``publish`` hands the same row tuple to every subscription of the subject on this broker: no
copy, no encoding (the hub encodes each row once for its subscribers, as it always did).
Several :class:`InProcessBus` on one :class:`LocalBroker` behave like instances on one NATS
server, which is how tests simulate more than one instance in a process.
"""

from __future__ import annotations

from webmacs.bus.base import (
    DEFAULT_MAX_PENDING,
    BusClosed,
    ChannelSubscription,
    Numbering,
    Rows,
    new_instance_id,
)


class LocalBroker:
    def __init__(self) -> None:
        self.subscriptions: dict[str, list[ChannelSubscription]] = {}


class InProcessBus:
    def __init__(self, broker: LocalBroker | None = None, instance_id: str | None = None) -> None:
        self.broker = broker or LocalBroker()
        self._numbering = Numbering(instance_id or new_instance_id())
        self._own: list[ChannelSubscription] = []
        self.closed = False

    @property
    def instance_id(self) -> str:
        return self._numbering.origin

    async def publish(self, subject: str, rows: Rows) -> None:
        if self.closed:
            raise BusClosed
        if not rows:
            return
        batch = self._numbering.stamp(rows)
        for sub in self.broker.subscriptions.get(subject, ()):
            sub.offer(batch)

    async def subscribe(
        self, subject: str, max_pending: int = DEFAULT_MAX_PENDING
    ) -> ChannelSubscription:
        if self.closed:
            raise BusClosed
        sub = ChannelSubscription(subject, max_pending, self._forget)
        self.broker.subscriptions.setdefault(subject, []).append(sub)
        self._own.append(sub)
        return sub

    def _forget(self, sub: ChannelSubscription) -> None:
        subs = self.broker.subscriptions.get(sub.subject, [])
        if sub in subs:
            subs.remove(sub)
        if sub in self._own:
            self._own.remove(sub)

    async def aclose(self) -> None:
        self.closed = True
        for sub in list(self._own):
            self._forget(sub)
            sub.end()
