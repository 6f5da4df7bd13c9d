"""Latency of the (future) time-series endpoint ``POST /api/v1/datapoints/series``.

Body: ``{"event_public_ids": [...], "minutes": M, "max_points": P}``, or ``since``/``until``
instead of ``minutes``. Events default to every event that has data (from ``/datapoints/latest``,
at most ``--max-events``); ``--seed-rows N`` ingests N readings first. If the endpoint does not
exist yet (404/405) the JSON line says so in ``error`` and the exit status is still 0.

    python bench/series.py --minutes 60 --max-points 1000 --requests 100
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Api, BenchError, base_parser, loads, log, run_main, seed_rows, summarize_ms


def count_points(body: Any) -> tuple[int, int]:
    """(series, points) of a response whose exact shape is not fixed yet: the points are the
    innermost lists of point-like items (objects with a value, or [time, value] pairs)."""

    def is_point(x: Any) -> bool:
        if isinstance(x, dict):
            return any(k in x for k in ("value", "v", "avg", "mean", "y", "min", "max"))
        return isinstance(x, list | tuple) and 2 <= len(x) <= 6 and not isinstance(x[0], dict | list)

    if isinstance(body, dict) and isinstance(body.get("series"), list) and all(
        isinstance(s, dict) and isinstance(s.get("points"), list) for s in body["series"]
    ):  # the shape webmacs answers: {"series": [{"event_public_id", "points": [...]}, ...]}
        return len(body["series"]), sum(len(s["points"]) for s in body["series"])

    series = points = 0

    def walk(x: Any) -> None:
        nonlocal series, points
        if isinstance(x, list):
            if x and all(is_point(i) for i in x):
                series += 1
                points += len(x)
                return
            for i in x:
                walk(i)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)

    walk(body)
    return series, points


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url, timeout=args.timeout) as api:
        await api.login(args.email, args.password)
        seeded = None
        if args.seed_rows:
            seeded = await seed_rows(
                api, args.base_url, args.seed_rows, events=args.seed_events, with_experiment=False,
            )
        event_ids = args.event_id or (seeded["event_ids"] if seeded else None)
        if not event_ids:
            latest = await api.call("GET", "/api/v1/datapoints/latest")
            event_ids = [row["event_public_id"] for row in latest][: args.max_events]
        if not event_ids:
            raise BenchError("no datapoints on the server: pass --seed-rows N or --event-id")
        body: dict[str, Any] = {"event_public_ids": event_ids, "max_points": args.max_points}
        if args.since:
            body["since"] = args.since
            if args.until:
                body["until"] = args.until
        else:
            body["minutes"] = args.minutes
        out: dict[str, Any] = {"events": len(event_ids), "request": {k: v for k, v in body.items()
                                                                    if k != "event_public_ids"}}
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        series = points = nbytes = None
        log(f"{args.requests} x POST /api/v1/datapoints/series over {len(event_ids)} events")
        for i in range(args.warmup + args.requests):
            t0 = time.perf_counter()
            try:
                resp = await api.raw("POST", "/api/v1/datapoints/series", json=body)
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            dt = time.perf_counter() - t0
            statuses[str(resp.status_code)] += 1
            if resp.status_code in (404, 405):
                out["error"] = f"series endpoint not available (HTTP {resp.status_code}: {resp.text[:200]})"
                out["statuses"] = dict(statuses)
                return out
            if resp.status_code != 200:
                if i == 0:
                    out["first_error"] = f"HTTP {resp.status_code}: {resp.text[:300]}"
                continue
            if i >= args.warmup:
                latencies.append(dt)
            if points is None:
                nbytes = len(resp.content)
                parsed = loads(resp.content)
                series, points = count_points(parsed)
                if isinstance(parsed, dict) and "bucket_seconds" in parsed:
                    out["bucket_seconds"] = parsed["bucket_seconds"]
    out.update({
        "requests": args.requests,
        "latency": summarize_ms(latencies, (50, 90, 99)),
        "series": series,
        "points": points,
        "response_bytes": nbytes,
        "errors": sum(v for k, v in statuses.items() if k != "200"),
        "statuses": dict(statuses),
    })
    if seeded:
        out["seed"] = {k: seeded[k] for k in ("rows", "seconds", "readings_per_s")}
    return out


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--event-id", action="append", help="event public_id (repeatable); default: all with data")
    p.add_argument("--max-events", type=int, default=8, help="most events when taken from /latest")
    p.add_argument("--minutes", type=int, default=60, help="window ending now (ignored with --since)")
    p.add_argument("--since", default=None, help="ISO 8601 start (with offset) instead of --minutes")
    p.add_argument("--until", default=None, help="ISO 8601 end (with --since)")
    p.add_argument("--max-points", type=int, default=1000, help="max_points of the request")
    p.add_argument("--requests", type=int, default=100, help="measured requests")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured requests first")
    p.add_argument("--seed-rows", type=int, default=0, help="first ingest this many rows (fresh events)")
    p.add_argument("--seed-events", type=int, default=8, help="events the seeded rows are spread over")
    p.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout (s)")
    return p.parse_args()


if __name__ == "__main__":
    run_main("series", parse_args(), main)
