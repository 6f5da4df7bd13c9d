"""Cross-instance fan-out latency: a controller on instance A, subscribers on instance B.

Two phases on one fresh event each: ``same`` (S subscribers on A, where the controller sends)
and ``cross`` (S subscribers on B, so every reading goes A -> PostgreSQL commit -> NATS -> B ->
browsers). Latency is a reading's receive time minus its send time (one machine, one clock:
commit, bus and fan-out included), as in ``stream_latency.py``, whose subscriber this reuses.

    python bench/cross_instance.py --base-url http://127.0.0.1:8001 \\
        --other-url http://127.0.0.1:8002 --subscribers 50 --rate 50 --duration 20

The subscribers do not offer permessage-deflate: trio-websocket (0.12) negotiates no
extensions, so these figures are for uncompressed frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Api,
    ControllerStats,
    base_parser,
    log,
    percentile,
    run_controller,
    run_main,
    summarize_ms,
    ws_url,
)
from stream_latency import Clock, SubStats, stream_frames, subscriber


async def phase(args: argparse.Namespace, token: str, event_id: str, sub_base: str) -> dict[str, Any]:
    stream_url = ws_url(sub_base, "/ws/datapoints/stream", token=token, event_public_id=event_id)
    ctrl_url = ws_url(args.base_url, "/ws/controller/telemetry", token=token)
    subs = [SubStats() for _ in range(args.subscribers)]
    ctrl = ControllerStats()
    clock = Clock(t0=time.perf_counter(), warm=float("inf"))
    async with trio.open_nursery() as nursery:
        for st in subs:
            await nursery.start(subscriber, stream_url, st, clock)
        clock.t0, clock.warm = time.perf_counter(), args.warmup
        await run_controller(
            ctrl_url, stream_frames(event_id, args.batch, clock), ctrl, window=args.window,
            deadline=trio.current_time() + args.duration, frame_interval=args.batch / args.rate,
        )
        with trio.move_on_after(args.drain):
            while any(s.delivered < ctrl.accepted and s.failure is None for s in subs):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    lat = sorted(x for st in subs for x in st.latencies)
    delivered = [st.delivered for st in subs]
    return {
        "subscribers_on": sub_base,
        "acked": ctrl.accepted,
        "ack_latency": summarize_ms(ctrl.ack_latencies),
        "latency": {
            "n": len(lat),
            **{f"p{p}_ms": (percentile(lat, p) or 0.0) * 1000 for p in (50, 90, 99)},
            "max_ms": (lat[-1] * 1000) if lat else None,
        },
        "complete_subscribers": sum(1 for d in delivered if d == ctrl.accepted),
        "lag_frames": sum(s.lag_frames for s in subs),
        "out_of_order": sum(s.out_of_order for s in subs),
        "failures": sorted({s.failure for s in subs if s.failure})[:3],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url) as api:
        token = await api.login(args.email, args.password)
        same_event, cross_event = await api.create_events("bench-cross", 2)
    log(f"same instance: {args.subscribers} subscribers on {args.base_url}, {args.rate:g} readings/s")
    same = await phase(args, token, same_event, args.base_url)
    log(f"cross instance: {args.subscribers} subscribers on {args.other_url}")
    cross = await phase(args, token, cross_event, args.other_url)
    return {"subscribers": args.subscribers, "rate": args.rate, "batch": args.batch,
            "duration_s": args.duration, "permessage_deflate": False, "same": same, "cross": cross}


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--other-url", required=True, help="instance B (the subscribers' side)")
    p.add_argument("--subscribers", type=int, default=50)
    p.add_argument("--rate", type=float, default=50.0, help="readings per second")
    p.add_argument("--batch", type=int, default=1, help="readings per telemetry frame")
    p.add_argument("--window", type=int, default=4, help="most unacked frames")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sending per phase")
    p.add_argument("--warmup", type=float, default=1.0, help="first seconds left out of latency")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait after sending")
    return p.parse_args()


if __name__ == "__main__":
    run_main("cross_instance", parse_args(), main)
