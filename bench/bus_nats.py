"""NATS bus micro-benchmark: nats-py in its own thread vs through trio-asyncio.

Unlike the load scripts, this one imports the server package: it measures a component, the
bus (``webmacs/bus/nats_bus.py``), against the way it was not built (a minimal trio-asyncio
equivalent, below), on the same wire format (``webmacs/bus/wire.py``).

* round trip: publish one batch, wait for it on this process's own subscription (p50/p99);
* throughput: batches/s published and received back, at most ``--window`` in flight.

    .venv/bin/python bench/bus_nats.py --mode thread
    .venv/bin/pip install trio-asyncio   # only for the comparison; webmacs does not use it
    .venv/bin/python bench/bus_nats.py --mode trio-asyncio

One JSON line on stdout. Measures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import trio

from webmacs.bus.base import Batch, Numbering
from webmacs.bus.wire import decode, encode
from webmacs.storage.records import DatapointRecord

T0 = datetime(2026, 12, 3, tzinfo=UTC)


def make_rows(k: int) -> tuple[DatapointRecord, ...]:
    return tuple(
        DatapointRecord(str(uuid.uuid4()), i + 0.5, T0 + timedelta(seconds=i), "event-" + "x" * 28,
                        None) for i in range(k)
    )


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


async def measure(publish: Callable[[], Awaitable[None]], receive: Callable[[], Awaitable[object]],
                  rtt_n: int, tput_n: int, window: int) -> dict[str, float]:
    for _ in range(50):  # warm up
        await publish()
        await receive()
    rtts = []
    for _ in range(rtt_n):
        t = time.perf_counter()
        await publish()
        await receive()
        rtts.append((time.perf_counter() - t) * 1000)
    in_flight = trio.Semaphore(window)

    async def pump() -> None:
        for _ in range(tput_n):
            await in_flight.acquire()
            await publish()

    t = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        for _ in range(tput_n):
            await receive()
            in_flight.release()
    elapsed = time.perf_counter() - t
    return {"rtt_p50_ms": round(pct(rtts, 0.5), 3), "rtt_p99_ms": round(pct(rtts, 0.99), 3),
            "batches_per_s": round(tput_n / elapsed)}


async def run_thread(url: str, rows: tuple[DatapointRecord, ...],
                     args: argparse.Namespace) -> dict[str, float]:
    from webmacs.bus.nats_bus import NatsBus

    bus = await NatsBus.open(url, wait_connected=5)
    subject = f"bench.{uuid.uuid4().hex}"
    try:
        sub = await bus.subscribe(subject, max_pending=args.window * 2)
        return await measure(lambda: bus.publish(subject, rows), sub.receive,
                             args.n, args.batches, args.window)
    finally:
        await bus.aclose()


async def run_trio_asyncio(url: str, rows: tuple[DatapointRecord, ...],
                           args: argparse.Namespace) -> dict[str, float]:
    import nats
    import trio_asyncio
    from nats.aio.msg import Msg

    subject = f"bench.{uuid.uuid4().hex}"
    numbering = Numbering("bench")
    send, recv = trio.open_memory_channel[Batch](args.window * 2)
    async with trio_asyncio.open_loop():
        nc = await trio_asyncio.aio_as_trio(nats.connect)(url)

        async def on_message(msg: Msg) -> None:  # runs on the Trio thread (trio-asyncio's loop)
            send.send_nowait(decode(msg.data))

        await trio_asyncio.aio_as_trio(nc.subscribe)(subject, cb=on_message)
        await trio_asyncio.aio_as_trio(nc.flush)()
        aio_publish = trio_asyncio.aio_as_trio(nc.publish)

        async def publish() -> None:
            await aio_publish(subject, encode(numbering.stamp(rows)))

        try:
            return await measure(publish, recv.receive, args.n, args.batches, args.window)
        finally:
            await trio_asyncio.aio_as_trio(nc.close)()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["thread", "trio-asyncio"], default="thread")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--rows", type=int, default=10, help="readings per batch")
    parser.add_argument("-n", type=int, default=2000, help="round trips")
    parser.add_argument("--batches", type=int, default=20000, help="batches for the throughput run")
    parser.add_argument("--window", type=int, default=256, help="batches in flight")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    run = run_thread if args.mode == "thread" else run_trio_asyncio
    figures = trio.run(run, args.url, rows, args)
    print(json.dumps({"mode": args.mode, "rows_per_batch": args.rows,
                      "batch_bytes": len(encode(Batch("bench", 0, 0, rows))), **figures}))


if __name__ == "__main__":
    main()
