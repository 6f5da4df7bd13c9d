"""The in-process bus: the embedded default, one process, no network.

``publish`` hands the same row tuple to every subscription of the subject on this broker: no
copy, no encoding (the hub encodes each row once for its subscribers, as it always did).
Several :class:`InProcessBus` on one :class:`LocalBroker` behave like instances on one NATS
server, which is how tests simulate more than one instance in a process.
"""

from __future__ import annotations

from typing import Any

from webmacs.bus.base import (
    CONTROL_MAX_PENDING,
    DEFAULT_MAX_PENDING,
    BusClosed,
    ChannelSubscription,
    Control,
    ControlSubscription,
    Numbering,
    Rows,
    new_instance_id,
)


class LocalBroker:
    def __init__(self) -> None:
        self.subscriptions: dict[str, list[ChannelSubscription]] = {}
        self.controls: dict[str, list[ControlSubscription]] = {}


class InProcessBus:
    def __init__(self, broker: LocalBroker | None = None, instance_id: str | None = None) -> None:
        # An explicit broker is shared: it stands for several instances on one server.
        self._distributed = broker is not None
        self.broker = broker or LocalBroker()
        self._numbering = Numbering(instance_id or new_instance_id())
        self._own: list[ChannelSubscription] = []
        self._own_controls: list[ControlSubscription] = []
        self.closed = False

    @property
    def instance_id(self) -> str:
        return self._numbering.origin

    @property
    def distributed(self) -> bool:
        return self._distributed

    async def publish_control(self, subject: str, kind: str, payload: dict[str, Any]) -> None:
        if self.closed:
            raise BusClosed
        msg = Control(self.instance_id, kind, payload)
        for sub in self.broker.controls.get(subject, ()):
            sub.offer(msg)

    async def subscribe_control(
        self, subject: str, max_pending: int = CONTROL_MAX_PENDING
    ) -> ControlSubscription:
        if self.closed:
            raise BusClosed
        sub = ControlSubscription(subject, max_pending, self._forget_control)
        self.broker.controls.setdefault(subject, []).append(sub)
        self._own_controls.append(sub)
        return sub

    def _forget_control(self, sub: ControlSubscription) -> None:
        subs = self.broker.controls.get(sub.subject, [])
        if sub in subs:
            subs.remove(sub)
        if sub in self._own_controls:
            self._own_controls.remove(sub)

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
        for control in list(self._own_controls):
            self._forget_control(control)
            control.end()
