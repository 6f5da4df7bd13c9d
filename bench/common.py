"""Shared helpers for the webmacs load scripts.

Everything here talks to a live server through its public interfaces only: REST over HTTP
(httpx) and the two WebSockets (trio-websocket). Nothing imports the server package.

Conventions of every script:

* one command, ``--base-url`` / ``--email`` / ``--password`` plus scenario parameters;
* human progress on stderr (:func:`log`);
* exactly one JSON line of figures on stdout at the end (:func:`emit`), also on failure
  (then with an ``error`` field and exit status 1);
* benchmarks measure, they never assert timings.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import trio
import trio_websocket

try:  # orjson is much faster; the scripts work without it.
    import orjson

    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

except ImportError:  # pragma: no cover - depends on the environment

    def loads(data: str | bytes) -> Any:
        return json.loads(data)

    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"))


DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_EMAIL = "admin@webmacs.io"
DEFAULT_PASSWORD = "admin123"
WS_MAX_MESSAGE = 16 * 1024 * 1024

_T0 = time.monotonic()


class BenchError(Exception):
    """A failure that ends a run; reported in the JSON line's ``error`` field."""


# --------------------------------------------------------------------------- output


def log(msg: str) -> None:
    """Human progress, on stderr."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 3)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def emit(result: dict[str, Any]) -> None:
    """The one JSON line of figures, on stdout. Floats are rounded to 3 decimals."""
    print(json.dumps(_clean(result), separators=(",", ":"), default=str), flush=True)


def run_main(
    bench: str, args: argparse.Namespace, main: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]
) -> None:
    """Run ``main(args)`` under trio; emit its figures, or an ``error`` line and exit 1."""
    try:
        result = trio.run(main, args)
    except KeyboardInterrupt:
        emit({"bench": bench, "error": "interrupted"})
        sys.exit(130)
    except BenchError as exc:
        emit({"bench": bench, "error": str(exc)})
        sys.exit(1)
    except Exception as exc:
        emit({"bench": bench, "error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc
    emit({"bench": bench, **result})


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="server root (no /api/v1)")
    parser.add_argument("--email", default=DEFAULT_EMAIL, help="login email")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="login password")
    return parser


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) with linear interpolation; ``values`` must be sorted."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    k = (len(values) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (k - lo))


def summarize_ms(seconds: Iterable[float], pcts: Sequence[float] = (50, 99)) -> dict[str, Any]:
    """Count, mean, percentiles and max of durations given in seconds, reported in milliseconds."""
    vals = sorted(seconds)
    out: dict[str, Any] = {"n": len(vals)}
    if not vals:
        return out
    for p in pcts:
        out[f"p{p:g}_ms"] = percentile(vals, p) * 1000.0  # type: ignore[operator]
    out["mean_ms"] = sum(vals) / len(vals) * 1000.0
    out["max_ms"] = vals[-1] * 1000.0
    return out


# --------------------------------------------------------------------------- HTTP


def ws_url(base_url: str, path: str, **params: Any) -> str:
    """``http(s)://host/x`` + ``/ws/...`` -> ``ws(s)://host/x/ws/...?params`` (lists repeat)."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode([(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])])
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))


def utc_iso(ts: datetime) -> str:
    """ISO 8601 in UTC with ``+00:00`` and microseconds, as the contract wants."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Api:
    """A small REST client: base URL, Bearer token, JSON, retries for setup calls."""

    def __init__(self, base_url: str, timeout: float = 120.0, max_connections: int = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def login(self, email: str, password: str) -> str:
        resp = await self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password})
        self.token = str(resp["access_token"])
        return self.token

    async def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)

    async def call(
        self, method: str, path: str, *, expect: Iterable[int] = (200, 201), retries: int = 4, **kw: Any
    ) -> Any:
        """A setup call: retried on transport errors and 5xx (a server may be restarting)."""
        expected = set(expect)
        last = ""
        for attempt in range(retries + 1):
            try:
                resp = await self.raw(method, path, **kw)
            except httpx.TransportError as exc:
                last = f"{method} {path}: {type(exc).__name__}: {exc}"
            else:
                if resp.status_code in expected:
                    return resp.json() if resp.content else None
                last = f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}"
                if resp.status_code < 500:
                    raise BenchError(last)
            if attempt < retries:
                log(f"retrying after {last}")
                await trio.sleep(0.5 * 2**attempt)
        raise BenchError(last)

    # ---- resources used by the benchmarks

    async def create_event(self, name: str, unit: str = "u") -> str:
        body = {"name": name, "min_value": -1e12, "max_value": 1e12, "unit": unit, "type": "sensor"}
        return str((await self.call("POST", "/api/v1/events", json=body))["public_id"])

    async def create_events(self, prefix: str, n: int) -> list[str]:
        tag = uuid.uuid4().hex[:8]
        return [await self.create_event(f"{prefix}-{tag}-{i}") for i in range(n)]

    async def running_experiments(self) -> list[dict[str, Any]]:
        page = await self.call("GET", "/api/v1/experiments", params={"page": 1, "page_size": 100})
        return [e for e in page["data"] if e.get("stopped_on") is None]

    async def create_experiment(self, prefix: str, stop_running: bool = False) -> str:
        running = await self.running_experiments()
        if running and not stop_running:
            names = ", ".join(repr(e["name"]) for e in running)
            raise BenchError(f"experiment {names} is running; stop it or pass --stop-running")
        for exp in running:
            log(f"stopping running experiment {exp['name']!r}")
            await self.stop_experiment(exp["public_id"])
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return str((await self.call("POST", "/api/v1/experiments", json={"name": name}))["public_id"])

    async def stop_experiment(self, public_id: str) -> None:
        await self.call("PUT", f"/api/v1/experiments/{public_id}/stop")

    async def count_datapoints(self, **filters: str) -> int:
        params = {"page": 1, "page_size": 1, **filters}
        return int((await self.call("GET", "/api/v1/datapoints", params=params))["total"])


# --------------------------------------------------------------------------- WebSockets


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaf_exceptions(sub)]
    return [exc]


def ws_failure(exc: BaseException) -> str | None:
    """A one-line description if ``exc`` (or every leaf of an exception group) is a WebSocket or
    network failure; ``None`` for anything else (a bug to re-raise)."""
    descriptions = []
    for leaf in leaf_exceptions(exc):
        if isinstance(leaf, trio_websocket.ConnectionRejected):
            descriptions.append(f"handshake rejected: HTTP {leaf.status_code} {(leaf.body or b'')[:200]!r}")
        elif isinstance(leaf, trio_websocket.ConnectionClosed):
            code, why = getattr(leaf.reason, "code", None), getattr(leaf.reason, "reason", "") or ""
            descriptions.append(f"closed: {code} {why}".rstrip())
        elif isinstance(leaf, trio_websocket.HandshakeError | OSError | trio.BrokenResourceError):
            descriptions.append(f"{type(leaf).__name__}: {leaf}")
        else:
            return None
    return "; ".join(descriptions)


def close_code(exc: BaseException) -> int | None:
    for leaf in leaf_exceptions(exc):
        if isinstance(leaf, trio_websocket.ConnectionClosed) and leaf.reason is not None:
            return int(leaf.reason.code)
    return None


# --------------------------------------------------------------------------- telemetry controller

FrameFactory = Callable[[int], tuple[str, int]]
"""``seq -> (frame text, number of readings in it)``."""


@dataclass
class ControllerStats:
    frames: int = 0
    readings_sent: int = 0
    acks: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    unacked: int = 0
    error_details: Counter[str] = field(default_factory=Counter)
    ack_latencies: list[float] = field(default_factory=list)
    started: float | None = None
    last_ack: float | None = None
    failure: str | None = None


def constant_frames(event_ids: Sequence[str], batch: int, timestamps: bool) -> FrameFactory:
    """Frames of ``batch`` readings spread round-robin over ``event_ids``.

    Without timestamps the datapoints array is serialised once and reused, so the client spends
    its CPU on the wire, not on JSON; with ``timestamps`` every reading gets its own measurement
    time (frame send time + index microseconds).
    """
    events = list(event_ids)
    values = [round((i * 37 % 1000) / 10.0, 1) for i in range(batch)]
    if not timestamps:
        body = dumps([{"value": values[i], "event_public_id": events[i % len(events)]} for i in range(batch)])

        def frame(seq: int) -> tuple[str, int]:
            return f'{{"seq":{seq},"datapoints":{body}}}', batch

        return frame

    def frame_ts(seq: int) -> tuple[str, int]:
        base = datetime.now(UTC)
        items = [
            {
                "value": values[i],
                "event_public_id": events[i % len(events)],
                "timestamp": utc_iso(base + timedelta(microseconds=i)),
            }
            for i in range(batch)
        ]
        return dumps({"seq": seq, "datapoints": items}), batch

    return frame_ts


async def run_controller(
    url: str,
    make_frame: FrameFactory,
    stats: ControllerStats,
    *,
    window: int = 4,
    deadline: float | None = None,
    max_frames: int | None = None,
    frame_interval: float | None = None,
    drain_timeout: float = 60.0,
) -> None:
    """One telemetry controller: frames with ``seq``, at most ``window`` unacked.

    Sends until ``deadline`` (``trio.current_time()``) or ``max_frames``, paced every
    ``frame_interval`` seconds if given, then waits up to ``drain_timeout`` for the remaining acks.
    Connection failures are recorded in ``stats.failure``, never raised.
    """
    credit = trio.Semaphore(window)
    sent_at: dict[int, float] = {}
    done_sending = False
    all_acked = trio.Event()

    async def receiver(ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            msg = loads(await ws.get_message())
            now = time.perf_counter()
            kind = msg.get("type")
            if kind not in ("ack", "error"):
                continue
            seq = msg.get("seq")
            t = sent_at.pop(seq, None) if seq is not None else None
            if kind == "ack":
                stats.acks += 1
                stats.accepted += int(msg.get("accepted", 0))
                stats.rejected += len(msg.get("rejected") or ())
                if t is not None:
                    stats.ack_latencies.append(now - t)
                stats.last_ack = now
            else:
                stats.errors += 1
                stats.error_details[str(msg.get("detail"))] += 1
            credit.release()
            if done_sending and not sent_at:
                all_acked.set()

    try:
        async with trio_websocket.open_websocket_url(
            url, max_message_size=WS_MAX_MESSAGE, receive_buffer_size=65536,
            connect_timeout=30, disconnect_timeout=10,
        ) as ws, trio.open_nursery() as nursery:
            nursery.start_soon(receiver, ws)
            stats.started = time.perf_counter()
            seq = 0
            next_t = trio.current_time()
            while max_frames is None or seq < max_frames:
                if deadline is not None and trio.current_time() >= deadline:
                    break
                await credit.acquire()
                if deadline is not None and trio.current_time() >= deadline:
                    break
                seq += 1
                text, n = make_frame(seq)
                sent_at[seq] = time.perf_counter()
                await ws.send_message(text)
                stats.frames += 1
                stats.readings_sent += n
                if frame_interval:
                    next_t = max(next_t + frame_interval, trio.current_time() - frame_interval)
                    await trio.sleep_until(next_t)
            done_sending = True
            if not sent_at:
                all_acked.set()
            with trio.move_on_after(drain_timeout):
                await all_acked.wait()
            nursery.cancel_scope.cancel()
    except Exception as exc:
        stats.failure = ws_failure(exc)
        if stats.failure is None:
            raise
    stats.unacked = len(sent_at)


async def run_controllers(
    base_url: str,
    token: str,
    event_ids: Sequence[str],
    *,
    controllers: int,
    batch: int,
    window: int,
    duration: float | None = None,
    total: int | None = None,
    timestamps: bool = False,
    progress_every: float = 5.0,
    frame_interval: float | None = None,
) -> tuple[list[ControllerStats], float]:
    """``controllers`` concurrent controllers over ``event_ids`` (each gets a share, round-robin).

    Stops after ``duration`` seconds or ``total`` readings (split over the controllers, rounded up
    to whole frames); each sends a frame every ``frame_interval`` seconds if given. Returns the
    per-controller stats and the wall time from start to last ack.
    """
    url = ws_url(base_url, "/ws/controller/telemetry", token=token)
    stats = [ControllerStats() for _ in range(controllers)]
    shares = [list(event_ids[i::controllers]) or [event_ids[i % len(event_ids)]] for i in range(controllers)]
    frames_each = None
    if total is not None:
        frames_total = math.ceil(total / batch)
        frames_each = [frames_total // controllers + (1 if i < frames_total % controllers else 0)
                       for i in range(controllers)]
    start = time.perf_counter()
    deadline = trio.current_time() + duration if duration is not None else None

    async def progress() -> None:
        while True:
            await trio.sleep(progress_every)
            acc = sum(s.accepted for s in stats)
            el = time.perf_counter() - start
            log(f"  {acc} readings acked in {el:.0f}s ({acc / el:,.0f}/s)")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(progress)
        async with trio.open_nursery() as workers:
            for i in range(controllers):
                workers.start_soon(
                    lambda i=i: run_controller(
                        url, constant_frames(shares[i], batch, timestamps), stats[i], window=window,
                        deadline=deadline, max_frames=frames_each[i] if frames_each else None,
                        frame_interval=frame_interval,
                    )
                )
        nursery.cancel_scope.cancel()
    last = max((s.last_ack for s in stats if s.last_ack is not None), default=time.perf_counter())
    return stats, max(last - start, 1e-9)


async def seed_rows(
    api: Api,
    base_url: str,
    rows: int,
    *,
    events: int = 8,
    controllers: int = 2,
    batch: int = 1000,
    window: int = 4,
    stop_running: bool = False,
    with_experiment: bool = True,
) -> dict[str, Any]:
    """Create events (and a running experiment), ingest ``rows`` readings over WebSocket
    telemetry as fast as the server acks them, then stop the experiment."""
    assert api.token
    event_ids = await api.create_events("bench-seed", events)
    experiment_id = await api.create_experiment("bench-seed", stop_running) if with_experiment else None
    log(f"seeding {rows} rows over {events} events with {controllers} controllers ...")
    stats, elapsed = await run_controllers(
        base_url, api.token, event_ids, controllers=controllers, batch=batch, window=window, total=rows,
    )
    if experiment_id:
        await api.stop_experiment(experiment_id)
    failures = [s.failure for s in stats if s.failure]
    if failures:
        raise BenchError(f"seeding failed: {failures[0]}")
    acked = sum(s.accepted for s in stats)
    log(f"seeded {acked} rows in {elapsed:.1f}s ({acked / elapsed:,.0f}/s)")
    return {
        "rows": acked, "seconds": elapsed, "readings_per_s": acked / elapsed,
        "experiment_id": experiment_id, "event_ids": event_ids,
    }
