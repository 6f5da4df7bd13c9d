"""Read latency of the datapoint queries a dashboard makes.

M requests each (sequential, one connection, after a short warm-up) of:

* ``unfiltered``  GET /api/v1/datapoints?page=1&page_size=25
* ``by_event``    ... &event_public_id=<event>
* ``by_experiment`` ... &experiment_public_id=<experiment>
* ``time_range``  ... &since=<newest - window>&until=<newest + 1 us>
* ``latest``      GET /api/v1/datapoints/latest

against the data already in the server, or after ``--seed-rows N`` (events + an experiment,
N readings ingested over WebSocket telemetry, experiment stopped). Without ``--event-id`` /
``--experiment-id`` the event of the first row of ``/latest`` and the newest experiment are used.

    python bench/queries.py --requests 200 [--seed-rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Api, BenchError, base_parser, log, parse_ts, run_main, seed_rows, summarize_ms, utc_iso


async def measure(api: Api, path: str, params: dict[str, Any], n: int, warmup: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    rows = total = None
    for i in range(warmup + n):
        t0 = time.perf_counter()
        try:
            resp = await api.raw("GET", path, params=params)
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
            continue
        dt = time.perf_counter() - t0
        statuses[str(resp.status_code)] += 1
        if resp.status_code != 200:
            continue
        if i >= warmup:
            latencies.append(dt)
        if rows is None:
            body = resp.json()
            if isinstance(body, list):
                rows = len(body)
            else:
                rows, total = len(body["data"]), body["total"]
    out = summarize_ms(latencies, (50, 90, 99))
    out.update({"rows": rows, "total": total, "errors": sum(v for k, v in statuses.items() if k != "200")})
    if out["errors"]:
        out["statuses"] = dict(statuses)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url, timeout=args.timeout) as api:
        await api.login(args.email, args.password)
        seeded = None
        if args.seed_rows:
            seeded = await seed_rows(
                api, args.base_url, args.seed_rows, events=args.seed_events,
                controllers=args.seed_controllers, batch=args.seed_batch, stop_running=args.stop_running,
            )
        event_id = args.event_id or (seeded["event_ids"][0] if seeded else None)
        experiment_id = args.experiment_id or (seeded["experiment_id"] if seeded else None)
        latest = await api.call("GET", "/api/v1/datapoints/latest")
        if not latest:
            raise BenchError("no datapoints on the server: pass --seed-rows N")
        if event_id is None:
            event_id = latest[0]["event_public_id"]
        if experiment_id is None:
            page = await api.call("GET", "/api/v1/experiments", params={"page": 1, "page_size": 1})
            experiment_id = page["data"][0]["public_id"] if page["data"] else "none"
        newest = await api.call("GET", "/api/v1/datapoints", params={"page": 1, "page_size": 1})
        table_rows = newest["total"]
        until_ts = parse_ts(newest["data"][0]["timestamp"]) + timedelta(microseconds=1)
        since_ts = until_ts - timedelta(seconds=args.window)
        base = {"page": 1, "page_size": args.page_size}
        span = {"since": utc_iso(since_ts), "until": utc_iso(until_ts)}
        cases: dict[str, tuple[str, dict[str, Any]]] = {
            "unfiltered": ("/api/v1/datapoints", base),
            "by_event": ("/api/v1/datapoints", {**base, "event_public_id": event_id}),
            "by_experiment": ("/api/v1/datapoints", {**base, "experiment_public_id": experiment_id}),
            "time_range": ("/api/v1/datapoints", {**base, **span}),
            "latest": ("/api/v1/datapoints/latest", {}),
        }
        results: dict[str, Any] = {}
        for name, (path, params) in cases.items():
            log(f"{name}: {args.requests} x GET {path} {params}")
            results[name] = await measure(api, path, params, args.requests, args.warmup)
            r = results[name]
            log(f"  p50 {r.get('p50_ms', float('nan')):.1f} ms, p99 {r.get('p99_ms', float('nan')):.1f} ms, "
                f"total {r['total']}")
    out: dict[str, Any] = {
        "table_rows": table_rows,
        "requests_each": args.requests,
        "page_size": args.page_size,
        "event_id": event_id,
        "experiment_id": experiment_id,
        "time_window_s": args.window,
        **results,
    }
    if seeded:
        out["seed"] = {k: seeded[k] for k in ("rows", "seconds", "readings_per_s")}
    return out


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200, help="measured requests per query")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured requests before each query")
    p.add_argument("--page-size", type=int, default=25, help="page_size of the list queries")
    p.add_argument("--event-id", default=None, help="event for the by_event query")
    p.add_argument("--experiment-id", default=None, help="experiment for the by_experiment query")
    p.add_argument("--window", type=float, default=10.0, help="time_range width (s) ending at the newest row")
    p.add_argument("--seed-rows", type=int, default=0, help="first ingest this many rows (new experiment)")
    p.add_argument("--seed-events", type=int, default=8, help="events the seeded rows are spread over")
    p.add_argument("--seed-controllers", type=int, default=2, help="telemetry connections for seeding")
    p.add_argument("--seed-batch", type=int, default=1000, help="readings per frame for seeding")
    p.add_argument("--stop-running", action="store_true", help="stop a running experiment before seeding")
    p.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout (s)")
    return p.parse_args()


if __name__ == "__main__":
    run_main("queries", parse_args(), main)
