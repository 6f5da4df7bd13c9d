"""Prometheus metrics of one running server (``/metrics``, docs/operations.md#metrics).

Each server has its own :class:`~prometheus_client.CollectorRegistry`: several servers run in
one test process, and nothing mutable lives outside the actor tree. The hot path pays nothing
it did not pay before:

- counts the actors keep as plain integers (per submission, per committed batch, per subscriber
  and batch) and gauges of the tree's state (inbox depths, connections) are read only when
  scraped, by :class:`TreeCollector`;
- the recorder histograms are observed once per committed batch (:meth:`Metrics.observe_commit`);
- HTTP requests are counted once each, where the access line is written (``webmacs.server``),
  with the route's URL rule as label (never the raw path: bounded cardinality).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from webmacs import __version__
from webmacs.actors.tally import IngestTally

if TYPE_CHECKING:
    from webmacs.actors.tree import ActorTree

# generate_latest writes the classic text format (names escaped to underscores), which every
# Prometheus reads; newer clients label it 1.0.0, which Prometheus before 3.0 does not know.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTE_KEY = "webmacs.route"  # the ASGI scope's URL rule, set by the app once routed
UNMATCHED = "(unmatched)"  # 404s and requests answered before routing
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The registry and the instruments that are updated as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tally = IngestTally(on_commit=self.observe_commit)
        self.batch_size = Histogram(
            "webmacs_recorder_batch_size", "Readings per recorder commit (one transaction).",
            buckets=BATCH_BUCKETS, registry=self.registry)
        self.commit_seconds = Histogram(
            "webmacs_recorder_commit_seconds",
            "Time to store and commit one recorder batch, retries included.",
            buckets=COMMIT_BUCKETS, registry=self.registry)
        self.http = HttpMetrics(self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Info("webmacs_build", "The running webmacs.", registry=self.registry).info(
            {"version": __version__, "python": platform.python_version()})

    def observe_commit(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def watch(self, tree: ActorTree) -> None:
        """Report the tree's counts and gauges at every scrape."""
        self.registry.register(TreeCollector(tree))

    def render(self) -> bytes:
        """The exposition text (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class HttpMetrics:
    """Requests by route, method and status, and their duration (WebSockets: counted, their
    connection time is not a request duration). Label children are bound once per combination
    and cached, so a request costs a dict lookup, an increment and an observation."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "webmacs_http_requests", "HTTP requests and WebSocket handshakes answered.",
            ["route", "method", "status"], registry=registry)
        self._duration = Histogram(
            "webmacs_http_request_duration_seconds", "Time from request to the response's end.",
            ["route", "method"], buckets=HTTP_BUCKETS, registry=registry)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, scope: MutableMapping[str, Any], status: int | None, seconds: float) -> None:
        route = scope.get(ROUTE_KEY) or UNMATCHED
        websocket = scope.get("type") == "websocket"
        method = "GET" if websocket else scope.get("method", "GET")
        if method not in METHODS:
            method = "OTHER"  # methods are client input: keep the label set bounded
        key = (route, method, "disconnected" if status is None else str(status))
        children = self._children.get(key)
        if children is None:
            duration = None if websocket else self._duration.labels(route, method)
            children = self._children[key] = (self._requests.labels(*key), duration)
        children[0].inc()
        if children[1] is not None:
            children[1].observe(seconds)


def route_label(rule: str) -> str:
    """Every REST path is registered with and without its trailing slash: one label for both."""
    return rule[:-1] if len(rule) > 1 and rule.endswith("/") else rule


class TreeCollector:
    """Counts and gauges read from the actor tree when scraped (the hot path keeps plain ints)."""

    def __init__(self, tree: ActorTree) -> None:
        self.tree = tree

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are checked by the tests; collect() reads live state

    def collect(self) -> Iterator[Metric]:
        tree, tally, hub = self.tree, self.tree.router.tally, self.tree.hub
        for name, doc, value in (
            ("webmacs_readings_received", "Readings submitted for storage (WebSocket and REST).",
             tally.received),
            ("webmacs_readings_committed", "Readings stored and committed.", tally.committed),
            ("webmacs_readings_rejected", "Readings the store refused (unknown or deleted event).",
             tally.rejected),
            ("webmacs_readings_resent", "Readings of resent frames answered from their first ack.",
             tally.resent),
            ("webmacs_readings_failed", "Readings not stored (database unavailable, shutdown).",
             tally.failed),
            ("webmacs_readings_broadcast", "Readings offered to subscribers (per subscriber).",
             hub.broadcast),
            ("webmacs_subscriber_readings_dropped",
             "Readings dropped for slow subscribers (announced to them by a lag frame).",
             hub.dropped),
            ("webmacs_bus_readings_missed", "Readings the bus lost before they reached this instance.",
             hub.missed),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        depth = GaugeMetricFamily("webmacs_actor_inbox_depth", "Messages waiting in an actor's inbox.",
                                  labels=["actor"])
        for actor, queued in tree.inbox_depths().items():
            depth.add_metric([actor], queued)
        yield depth
        yield GaugeMetricFamily("webmacs_subscribers_connected", "Open datapoint stream WebSockets.",
                                value=tree.connected.get("subscriber", 0))
        yield GaugeMetricFamily("webmacs_controllers_connected", "Open controller telemetry WebSockets.",
                                value=tree.connected.get("controller", 0))
        yield GaugeMetricFamily("webmacs_actors_escalated", "Actors past their restart limit.",
                                value=len(tree.supervisor.escalated))
        lag = GaugeMetricFamily("webmacs_event_loop_lag_seconds",
                                "How late a 10 ms sleep wakes (about the last minute).", labels=["stat"])
        for stat, ms in tree.loop_lag.summary().items():
            if stat in ("p50_ms", "p99_ms", "max_ms"):
                lag.add_metric([stat.removesuffix("_ms")], ms / 1000)
        yield lag
