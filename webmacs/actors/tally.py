"""What the ingest path counts for ``/metrics``: plain integers, added to once per submission or
per committed batch, never per reading (the hot path costs ~30 µs a reading in all; an addition
per batch is free, a Prometheus call per reading would not be). They are read at scrape time.

Every reading handed to the router ends as exactly one of committed, rejected (the store refused
it: unknown or deleted event), resent (a frame already committed, answered from its first ack)
or failed (not stored: database unavailable, shutdown), so ``received`` minus the four is what
is in flight.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

# (readings in the committed batch, seconds its store call took): the histograms of /metrics.
CommitObserver = Callable[[int, float], None]


@attrs.define
class IngestTally:
    received: int = 0
    committed: int = 0
    rejected: int = 0
    resent: int = 0
    failed: int = 0
    on_commit: CommitObserver | None = None

    def batch_done(self, size: int, committed: int, rejected: int, resent: int, seconds: float) -> None:
        """A recorder committed a batch of ``size`` readings in ``seconds``."""
        self.committed += committed
        self.rejected += rejected
        self.resent += resent
        if size and self.on_commit is not None:
            self.on_commit(size, seconds)
