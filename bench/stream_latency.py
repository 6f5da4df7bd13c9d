"""Live-stream latency: controller -> server -> browser, with optional stalled browsers.

S subscribers open ``/ws/datapoints/stream?event_public_id=<fresh event>``; one controller sends R
readings/s to that event over ``/ws/controller/telemetry`` (frames of B readings with ``seq``). Each
reading's value is its send time (seconds on this process's monotonic clock since the run
started), so a subscriber's latency for a reading is its receive time minus its value: commit,
fan-out and delivery included. ``--stalled N`` adds N subscribers that never read their socket
(tiny TCP receive buffer, no reads after the handshake); the figures are those of the healthy ones.

    python bench/stream_latency.py --subscribers 50 --rate 1000 --duration 20 [--stalled 1]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
import trio_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    WS_MAX_MESSAGE,
    Api,
    ControllerStats,
    FrameFactory,
    base_parser,
    close_code,
    dumps,
    loads,
    log,
    percentile,
    run_controller,
    run_main,
    summarize_ms,
    ws_failure,
    ws_url,
)


@dataclass
class Clock:
    """Send times are seconds since ``t0`` (set when the controller starts); readings sent in the
    first ``warm`` seconds are left out of the latency figures."""

    t0: float = 0.0
    warm: float = 0.0


@dataclass
class SubStats:
    delivered: int = 0
    frames: int = 0
    lag_frames: int = 0
    dropped: int = 0
    out_of_order: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    close_code: int | None = None
    failure: str | None = None


async def subscriber(
    url: str, st: SubStats, clock: Clock, *, task_status: trio.TaskStatus[None]
) -> None:
    started = False
    last = float("-inf")
    try:
        async with trio_websocket.open_websocket_url(
            url, max_message_size=WS_MAX_MESSAGE, receive_buffer_size=65536,
            connect_timeout=30, disconnect_timeout=5,
        ) as ws:
            hello = loads(await ws.get_message())
            if hello.get("type") != "connected":
                st.failure = f"unexpected first frame {hello!r:.100}"
            task_status.started()
            started = True
            while True:
                raw = await ws.get_message()
                now = time.perf_counter() - clock.t0
                msg = loads(raw)
                kind = msg.get("type")
                if kind == "datapoints_batch":
                    dps = msg["datapoints"]
                    st.frames += 1
                    st.delivered += len(dps)
                    lat = st.latencies
                    warm = clock.warm
                    for dp in dps:
                        v = dp["value"]
                        if v < last:
                            st.out_of_order += 1
                        last = v
                        if v >= warm:
                            lat.append(now - v)
                elif kind == "lag":
                    st.lag_frames += 1
                    st.dropped += int(msg.get("dropped", 0))
    except Exception as exc:
        st.close_code = close_code(exc)
        st.failure = ws_failure(exc)
        if st.failure is None:
            raise
    finally:
        if not started:
            task_status.started()


async def open_stalled(nursery: trio.Nursery, url: str, rcvbuf: int) -> trio_websocket.WebSocketConnection:
    """A subscriber that never reads: small SO_RCVBUF set before connect (so the window stays
    small), a zero-size message queue so trio-websocket's reader blocks on the first message and
    stops reading the socket. The server's sends then fill both TCP buffers and block."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    family, kind, proto, _, addr = (await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = trio.socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect(addr)
    resource = parts.path + ("?" + parts.query if parts.query else "")
    return await trio_websocket.wrap_client_stream(
        nursery, trio.SocketStream(sock), parts.netloc, resource,
        message_queue_size=0, max_message_size=WS_MAX_MESSAGE, receive_buffer_size=4096,
    )


async def drain_stalled(ws: trio_websocket.WebSocketConnection, st: SubStats, timeout: float) -> None:
    """After the run, read what a stalled subscriber was sent, to learn how the server closed it."""
    with trio.move_on_after(timeout):
        try:
            while True:
                msg = loads(await ws.get_message())
                if msg.get("type") == "datapoints_batch":
                    st.frames += 1
                    st.delivered += len(msg["datapoints"])
                elif msg.get("type") == "lag":
                    st.lag_frames += 1
                    st.dropped += int(msg.get("dropped", 0))
        except trio_websocket.ConnectionClosed as exc:
            st.close_code = exc.reason.code if exc.reason else None
            return
    st.failure = "still open after the run (drain timed out)"


def stream_frames(event_id: str, batch: int, clock: Clock) -> FrameFactory:
    def frame(seq: int) -> tuple[str, int]:
        v = time.perf_counter() - clock.t0
        return dumps({"seq": seq, "datapoints": [{"value": v, "event_public_id": event_id}] * batch}), batch

    return frame


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with Api(args.base_url) as api:
        token = await api.login(args.email, args.password)
        (event_id,) = await api.create_events("bench-stream", 1)
    stream_url = ws_url(args.base_url, "/ws/datapoints/stream", token=token, event_public_id=event_id)
    ctrl_url = ws_url(args.base_url, "/ws/controller/telemetry", token=token)
    subs = [SubStats() for _ in range(args.subscribers)]
    stalled = [SubStats() for _ in range(args.stalled)]
    ctrl = ControllerStats()
    clock = Clock(t0=time.perf_counter(), warm=float("inf"))
    frame_interval = args.batch / args.rate

    async with trio.open_nursery() as nursery:
        log(f"opening {args.subscribers} subscribers on a fresh event ...")
        for st in subs:
            await nursery.start(subscriber, stream_url, st, clock)
        failed = [s.failure for s in subs if s.failure]
        if failed:
            log(f"{len(failed)} subscribers failed to open: {failed[0]}")
        stalled_ws = []
        for _ in range(args.stalled):
            stalled_ws.append(await open_stalled(nursery, stream_url, args.stalled_rcvbuf))
        if args.stalled:
            log(f"opened {args.stalled} stalled subscribers (SO_RCVBUF {args.stalled_rcvbuf}, never read)")
        log(f"controller: {args.rate} readings/s as {1 / frame_interval:g} frames/s of {args.batch}, "
            f"{args.duration:g}s (latency ignores the first {args.warmup:g}s)")

        async def progress() -> None:
            while True:
                await trio.sleep(5)
                got = sum(s.delivered for s in subs) / max(1, len(subs))
                log(f"  sent {ctrl.readings_sent}, acked {ctrl.accepted}, mean delivered/sub {got:,.0f}")

        nursery.start_soon(progress)
        clock.t0, clock.warm = time.perf_counter(), args.warmup
        await run_controller(
            ctrl_url, stream_frames(event_id, args.batch, clock), ctrl, window=args.window,
            deadline=trio.current_time() + args.duration, frame_interval=frame_interval,
        )
        log(f"controller done: {ctrl.accepted} readings acked; draining subscribers ...")
        with trio.move_on_after(args.drain):
            while any(s.delivered < ctrl.accepted and s.failure is None for s in subs):
                await trio.sleep(0.05)
        if stalled_ws:
            log("draining stalled subscribers to read their close codes ...")
            async with trio.open_nursery() as drains:
                for ws, st in zip(stalled_ws, stalled, strict=True):
                    drains.start_soon(drain_stalled, ws, st, args.drain)
        nursery.cancel_scope.cancel()

    all_lat = sorted(x for st in subs for x in st.latencies)
    per_sub_p99 = [percentile(sorted(st.latencies), 99) for st in subs if st.latencies]
    delivered = [st.delivered for st in subs]
    lat = summarize_ms([], ())
    if all_lat:
        lat = {
            "n": len(all_lat),
            "p50_ms": percentile(all_lat, 50) * 1000,  # type: ignore[operator]
            "p90_ms": percentile(all_lat, 90) * 1000,  # type: ignore[operator]
            "p99_ms": percentile(all_lat, 99) * 1000,  # type: ignore[operator]
            "max_ms": all_lat[-1] * 1000,
            "mean_ms": sum(all_lat) / len(all_lat) * 1000,
            "worst_subscriber_p99_ms": max(per_sub_p99) * 1000,  # type: ignore[type-var,operator]
        }
    return {
        "subscribers": args.subscribers,
        "stalled": args.stalled,
        "rate": args.rate,
        "batch": args.batch,
        "duration_s": args.duration,
        "controller": {
            "frames": ctrl.frames, "readings_sent": ctrl.readings_sent, "acked": ctrl.accepted,
            "errors": ctrl.errors, "rejected": ctrl.rejected, "unacked_frames": ctrl.unacked,
            "failure": ctrl.failure,
            "achieved_rate": ctrl.accepted / args.duration,
            "ack_latency": summarize_ms(ctrl.ack_latencies),
        },
        "latency": lat,
        "delivered_per_subscriber": {
            "expected": ctrl.accepted,
            "min": min(delivered, default=0),
            "max": max(delivered, default=0),
            "mean": sum(delivered) / max(1, len(delivered)),
            "complete": sum(1 for d in delivered if d == ctrl.accepted),
        },
        "data_frames_per_subscriber_mean": sum(s.frames for s in subs) / max(1, len(subs)),
        "lag_frames": sum(s.lag_frames for s in subs),
        "dropped": sum(s.dropped for s in subs),
        "out_of_order": sum(s.out_of_order for s in subs),
        "closes": sum(1 for s in subs if s.failure),
        "close_codes": dict(Counter(str(s.close_code) for s in subs if s.failure)),
        "failures": sorted({s.failure for s in subs if s.failure})[:5],
        "stalled_subscribers": [
            {"delivered": s.delivered, "lag_frames": s.lag_frames, "dropped": s.dropped,
             "close_code": s.close_code, "note": s.failure}
            for s in stalled
        ],
    }


def parse_args() -> argparse.Namespace:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=50, help="healthy stream subscribers")
    p.add_argument("--rate", type=float, default=1000.0, help="readings per second sent by the controller")
    p.add_argument("--batch", type=int, default=100, help="readings per telemetry frame")
    p.add_argument("--window", type=int, default=4, help="most unacked frames")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sending")
    p.add_argument("--warmup", type=float, default=1.0, help="first seconds left out of latency")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for readings after sending")
    p.add_argument("--stalled", type=int, default=0, help="extra subscribers that never read")
    p.add_argument("--stalled-rcvbuf", type=int, default=4096, help="SO_RCVBUF of stalled subscribers")
    return p.parse_args()


if __name__ == "__main__":
    run_main("stream_latency", parse_args(), main)
