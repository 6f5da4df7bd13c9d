"""REST batch ingestion throughput and request latency.

C clients, each on its own HTTP connection, POST ``/api/v1/datapoints/batch`` with B readings per
request back to back for D seconds. Readings go to fresh events, so afterwards the REST totals
of those events are compared with the number of readings the server answered 201 for.

    python bench/rest_ingest.py --clients 4 --batch 1000 --duration 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Api, base_parser, dumps, loads, log, run_main, summarize_ms, utc_iso


def batch_body(event_ids: list[str], batch: int, timestamps: bool) -> bytes:
    items: list[dict[str, Any]] = [
        {"value": round((i * 37 % 1000) / 10.0, 1), "event_public_id": event_ids[i % len(event_ids)]}
        for i in range(batch)
    ]
    if timestamps:
        base = datetime.now(UTC)
        for i, item in enumerate(items):
            item["timestamp"] = utc_iso(base + timedelta(microseconds=i))
    return dumps({"datapoints": items}).encode()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url) as api:
        token = await api.login(args.email, args.password)
        event_ids = await api.create_events("bench-rest", args.events or args.clients)

        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        accepted = 0
        rejected = 0
        requests = 0
        log(f"{args.clients} clients x {args.batch} readings/request for {args.duration:g}s")
        start = time.perf_counter()
        deadline = trio.current_time() + args.duration

        async def client(i: int) -> None:
            nonlocal accepted, rejected, requests
            body = batch_body(event_ids[i::args.clients] or event_ids, args.batch, args.timestamps)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            async with httpx.AsyncClient(base_url=args.base_url, timeout=args.timeout) as http:
                while trio.current_time() < deadline:
                    t0 = time.perf_counter()
                    try:
                        resp = await http.post("/api/v1/datapoints/batch", content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1
                        await trio.sleep(0.1)
                        continue
                    dt = time.perf_counter() - t0
                    requests += 1
                    statuses[str(resp.status_code)] += 1
                    if resp.status_code == 201:
                        latencies.append(dt)
                        out = loads(resp.content)
                        accepted += int(out.get("accepted", 0))
                        rejected += len(out.get("rejected") or ())

        async def progress() -> None:
            while True:
                await trio.sleep(5)
                el = time.perf_counter() - start
                log(f"  {accepted} readings accepted in {el:.0f}s ({accepted / el:,.0f}/s)")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress)
            async with trio.open_nursery() as clients:
                for i in range(args.clients):
                    clients.start_soon(client, i)
            nursery.cancel_scope.cancel()
        elapsed = time.perf_counter() - start
        log(f"accepted {accepted} readings in {elapsed:.1f}s; verifying through REST ...")
        persisted = 0
        for ev in event_ids:
            persisted += await api.count_datapoints(event_public_id=ev)

    errors = sum(n for s, n in statuses.items() if s != "201")
    return {
        "clients": args.clients,
        "batch": args.batch,
        "timestamps": args.timestamps,
        "elapsed_s": elapsed,
        "readings_per_s": accepted / elapsed,
        "requests": requests,
        "requests_per_s": requests / elapsed,
        "accepted": accepted,
        "rejected": rejected,
        "errors": errors,
        "statuses": dict(statuses),
        "latency": summarize_ms(latencies, (50, 90, 99)),
        "persisted": persisted,
        "verified": persisted == accepted,
    }


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (one connection each)")
    p.add_argument("--batch", type=int, default=1000, help="readings per request")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    p.add_argument("--events", type=int, default=0, help="fresh events (0 = one per client)")
    p.add_argument("--timestamps", action="store_true", help="send a per-reading timestamp")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    return p.parse_args()


if __name__ == "__main__":
    run_main("rest_ingest", parse_args(), main)
