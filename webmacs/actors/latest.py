"""Sans-IO: the latest datapoint per event, in event order, kept by the hub."""

from __future__ import annotations

from collections.abc import Iterable

from webmacs.storage.records import DatapointRecord


class LatestValues:
    """One row per event: the largest timestamp; a tie goes to the row committed last.

    ``order`` lists events in creation order (what ``/datapoints/latest`` returns). Each event
    remembers the publish sequence number of its last update, so a reload from the database
    (after a delete) never overwrites a reading committed after the reload's snapshot.
    """

    def __init__(self) -> None:
        self.order: dict[str, None] = {}
        self.values: dict[str, DatapointRecord] = {}
        self.updated_at: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.seq = 0

    def load(self, event_ids: Iterable[str], rows: Iterable[DatapointRecord]) -> None:
        for event_id in event_ids:
            self.order[event_id] = None
        for row in rows:
            self.values[row.event_public_id] = row

    def update(self, rows: Iterable[DatapointRecord]) -> None:
        self.seq += 1
        for row in rows:
            event_id = row.event_public_id
            if event_id in self.deleted:
                continue
            if event_id not in self.order:
                self.order[event_id] = None
            current = self.values.get(event_id)
            if current is None or row.timestamp >= current.timestamp:
                self.values[event_id] = row
                self.updated_at[event_id] = self.seq

    def event_created(self, event_id: str) -> None:
        self.deleted.discard(event_id)
        self.order.setdefault(event_id, None)

    def event_deleted(self, event_id: str) -> None:
        self.order.pop(event_id, None)
        self.values.pop(event_id, None)
        self.deleted.add(event_id)

    def reload(self, rows: Iterable[DatapointRecord], snapshot_seq: int) -> None:
        """Replace values with a database snapshot taken when ``seq`` was ``snapshot_seq``."""
        fresh = {r.event_public_id: r for r in rows}
        for event_id in list(self.values):
            if self.updated_at.get(event_id, 0) <= snapshot_seq and event_id not in fresh:
                del self.values[event_id]
        for event_id, row in fresh.items():
            if event_id in self.deleted:
                continue
            if self.updated_at.get(event_id, 0) <= snapshot_seq:
                self.values[event_id] = row
                self.order.setdefault(event_id, None)

    def snapshot(self) -> list[DatapointRecord]:
        return [self.values[e] for e in self.order if e in self.values]
