"""WebSocket telemetry ingestion throughput, verified through REST.

N controllers connect to ``/ws/controller/telemetry?token=...`` and send frames of B readings with
``seq``, keeping at most K frames unacked each, for D seconds (or until a total count). Readings go
to fresh events created for the run, so afterwards the REST totals of those events must equal the
number of readings the server acked: that is the "0 lost, 0 duplicated" check.

    python bench/ws_ingest.py --controllers 4 --batch 100 --window 4 --duration 30
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Api, base_parser, log, run_controllers, run_main, summarize_ms


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url) as api:
        token = await api.login(args.email, args.password)
        n_events = args.events or args.controllers
        event_ids = await api.create_events("bench-ws", n_events)
        stop = f"{args.total} readings" if args.total else f"{args.duration:g}s"
        log(f"{args.controllers} controllers x {args.batch} readings/frame, window {args.window}, "
            f"{n_events} fresh events, until {stop}")
        stats, elapsed = await run_controllers(
            args.base_url, token, event_ids, controllers=args.controllers, batch=args.batch,
            window=args.window, duration=None if args.total else args.duration, total=args.total,
            timestamps=args.timestamps,
            frame_interval=args.controllers * args.batch / args.rate if args.rate else None,
        )
        acked = sum(s.accepted for s in stats)
        log(f"acked {acked} readings in {elapsed:.1f}s; verifying through REST ...")
        persisted = 0
        for ev in event_ids:
            persisted += await api.count_datapoints(event_public_id=ev)

    errors: Counter[str] = Counter()
    for s in stats:
        errors.update(s.error_details)
    per_controller = [s.accepted / elapsed for s in stats]
    return {
        "controllers": args.controllers,
        "batch": args.batch,
        "window": args.window,
        "timestamps": args.timestamps,
        "offered_rate": args.rate,
        "elapsed_s": elapsed,
        "readings_per_s": acked / elapsed,
        "per_controller_readings_per_s_min": min(per_controller),
        "per_controller_readings_per_s_max": max(per_controller),
        "frames": sum(s.frames for s in stats),
        "readings_sent": sum(s.readings_sent for s in stats),
        "acks": sum(s.acks for s in stats),
        "acked_readings": acked,
        "rejected": sum(s.rejected for s in stats),
        "errors": sum(s.errors for s in stats),
        "error_details": dict(errors),
        "unacked_frames": sum(s.unacked for s in stats),
        "connection_failures": [s.failure for s in stats if s.failure],
        "ack_latency": summarize_ms([x for s in stats for x in s.ack_latencies], (50, 90, 99)),
        "persisted": persisted,
        "lost": max(0, acked - persisted),
        "extra_persisted": max(0, persisted - acked),
        "verified": persisted == acked,
    }


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--controllers", type=int, default=4, help="concurrent controller connections")
    p.add_argument("--batch", type=int, default=100, help="readings per frame")
    p.add_argument("--window", type=int, default=4, help="most unacked frames per controller")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to send (ignored with --total)")
    p.add_argument("--total", type=int, default=None, help="send this many readings in all instead")
    p.add_argument("--events", type=int, default=0, help="fresh events (0 = one per controller)")
    p.add_argument("--timestamps", action="store_true", help="send a per-reading timestamp")
    p.add_argument("--rate", type=float, default=None,
                   help="readings/s offered in all (paced frames; default: as fast as acked)")
    return p.parse_args()


if __name__ == "__main__":
    run_main("ws_ingest", parse_args(), main)
