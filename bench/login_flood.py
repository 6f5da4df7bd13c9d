"""Logins per second, and how ``GET /health`` answers meanwhile.

C clients log in back to back for D seconds (bcrypt at the server's cost, ~0.35 s per check at
12 rounds) while one more client asks ``/health`` every 50 ms on its own connection. A login
flood must not stall the rest of the server: bcrypt runs in worker threads, and the figure that
shows it is the health latency next to the login rate.

    python bench/login_flood.py --base-url http://127.0.0.1:8000 --concurrency 8 --duration 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import base_parser, log, run_main, summarize_ms


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logins: list[float] = []
    health: list[float] = []
    statuses: Counter[str] = Counter()
    body = {"email": args.email, "password": args.password}
    deadline = trio.current_time() + args.duration

    async def login_client() -> None:
        async with httpx.AsyncClient(base_url=args.base_url, timeout=60) as http:
            while trio.current_time() < deadline:
                t0 = time.perf_counter()
                resp = await http.post("/api/v1/auth/login", json=body)
                statuses[str(resp.status_code)] += 1
                if resp.status_code == 200:
                    logins.append(time.perf_counter() - t0)

    async def health_probe() -> None:
        async with httpx.AsyncClient(base_url=args.base_url, timeout=60) as http:
            await trio.sleep(1.0)  # once the flood is under way
            while trio.current_time() < deadline:
                t0 = time.perf_counter()
                resp = await http.get("/health")
                statuses[f"health {resp.status_code}"] += 1
                health.append(time.perf_counter() - t0)
                await trio.sleep(0.05)

    log(f"{args.concurrency} clients logging in for {args.duration:g}s, /health every 50 ms")
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(args.concurrency):
            nursery.start_soon(login_client)
        nursery.start_soon(health_probe)
    elapsed = time.perf_counter() - start
    return {
        "bench": "login_flood", "concurrency": args.concurrency, "duration_s": elapsed,
        "logins": len(logins), "logins_per_s": len(logins) / elapsed,
        "login_latency": summarize_ms(logins), "health_latency": summarize_ms(health, (50, 99, 100)),
        "statuses": dict(statuses),
    }


if __name__ == "__main__":
    parser = base_parser(__doc__ or "")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    run_main("login_flood", parser.parse_args(), main)
