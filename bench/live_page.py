"""How smoothly the live page (``/``) draws under a busy stream, measured in headless Chromium.

Creates fresh events, opens the page, logs in through its form, charts those events (and only
those), then records every animation frame's timestamp while telemetry controllers feed
``--rate`` readings/s spread over the events. Prints frame intervals (p50/p95/p99/max) before
and during the feed, late and dropped frames, the page's main-thread busy share, the JS heap,
and how many readings the charts hold. It measures; it does not assert.

    python bench/live_page.py --base-url http://127.0.0.1:8010 --events 8 --rate 1000 --duration 20

Needs Playwright (a test dependency) and Debian's Chromium (``--chromium``); never
``playwright install``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from common import Api, BenchError, base_parser, emit, log, percentile, run_controllers

FRAME_MS = 1000 / 60
# Records each animation frame's timestamp in the page (a callback of its own, beside the page's).
RECORD_FRAMES = """() => {
    const run = window.benchRun = (window.benchRun || 0) + 1;  // a newer recording ends this one
    window.benchFrames = [];
    const tick = (t) => {
        if (window.benchRun === run) { window.benchFrames.push(t); requestAnimationFrame(tick); } };
    requestAnimationFrame(tick); }"""


def frame_figures(stamps: list[float]) -> dict[str, Any]:
    """Intervals between animation frames; "late" is over 1.5 frames, "dropped" the frames missed."""
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    if not gaps:
        return {"frames": len(stamps)}
    return {
        "frames": len(stamps),
        "fps": len(gaps) / (sum(gaps) / 1000),
        "p50_ms": percentile(gaps, 50), "p95_ms": percentile(gaps, 95), "p99_ms": percentile(gaps, 99),
        "max_ms": gaps[-1],
        "late_frames": sum(1 for g in gaps if g > 1.5 * FRAME_MS),
        "dropped_frames": sum(max(0, round(g / FRAME_MS) - 1) for g in gaps),
    }


def metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def record(page: Any, seconds: float) -> list[float]:
    page.evaluate(RECORD_FRAMES)
    page.wait_for_timeout(seconds * 1000)
    stamps: list[float] = page.evaluate("() => { window.benchRun += 1; return window.benchFrames; }")
    return stamps


async def setup(args: argparse.Namespace) -> tuple[str, list[str], list[str]]:
    async with Api(args.base_url) as api:
        token = await api.login(args.email, args.password)
        ids = await api.create_events("bench-page", args.events)
        page = await api.call("GET", "/api/v1/events", params={"page_size": 1000})
        names = [e["name"] for e in page["data"] if e["public_id"] in ids]
    return token, ids, names


def main(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    token, ids, names = trio.run(setup, args)
    log(f"{args.events} fresh events; opening {args.base_url}/ in {args.chromium}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium,
                                     args=["--no-sandbox", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(f"{args.base_url}/")
        page.get_by_label("Email").fill(args.email)
        page.get_by_label("Password").fill(args.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_function("() => window.webmacsDebug.state() === 'connected'", timeout=30000)
        for box in page.locator("article.tile input[aria-label^='Chart ']").all():
            if box.is_checked():
                box.uncheck()
        for name in names[:args.charts]:
            page.get_by_label(f"Chart {name}", exact=True).check()
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")

        log("idle frames ...")
        idle = record(page, args.idle)

        stats_box: dict[str, Any] = {}

        def feed() -> None:
            frame_interval = args.controllers * args.batch / args.rate
            stats_box["result"] = trio.run(lambda: run_controllers(
                args.base_url, token, ids, controllers=args.controllers, batch=args.batch, window=8,
                duration=args.duration, frame_interval=frame_interval))

        draws_before = page.evaluate("window.webmacsDebug.draws()")
        before = metrics(cdp)
        started = time.perf_counter()
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        log(f"feeding {args.rate} readings/s over {args.events} events for {args.duration:g}s ...")
        busy = record(page, args.duration)
        elapsed = time.perf_counter() - started
        after = metrics(cdp)
        draws = page.evaluate("window.webmacsDebug.draws()") - draws_before
        pacing = page.evaluate("window.webmacsDebug.pacing()")
        feeder.join(timeout=120)
        page.wait_for_timeout(500)  # the last readings reach the page
        points = page.evaluate("(ids) => ids.map((id) => window.webmacsDebug.chartPoints(id))", ids)
        dropped = page.evaluate("window.webmacsDebug.dropped()")
        state = page.evaluate("window.webmacsDebug.state()")
        browser.close()

    if "result" not in stats_box:
        raise BenchError("the telemetry feed did not finish")
    stats, feed_s = stats_box["result"]
    failures = [s.failure for s in stats if s.failure]
    if failures:
        raise BenchError(f"telemetry failed: {failures[0]}")
    acked = sum(s.accepted for s in stats)
    mib = 1024 * 1024
    return {
        "events": args.events, "charts": args.charts, "offered_rate": args.rate, "duration_s": args.duration,
        "readings_acked": acked, "acked_per_s": acked / feed_s,
        "idle": frame_figures(idle), "busy": frame_figures(busy),
        "chart_draws_per_s": draws / elapsed, "pacing_gap_ms_at_end": pacing,
        "main_thread_busy_share": (after["TaskDuration"] - before["TaskDuration"]) / elapsed,
        **{f"{kind.lower()}_share": (after[f"{kind}Duration"] - before[f"{kind}Duration"]) / elapsed
           for kind in ("Script", "Layout", "RecalcStyle")},
        "js_heap_used_mib_before": before["JSHeapUsedSize"] / mib,
        "js_heap_used_mib_after": after["JSHeapUsedSize"] / mib,
        "chart_points_per_event": [p for p in points if p is not None],
        "lag_dropped_readings": dropped, "stream_state_at_end": state,
    }


def parse() -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8, help="fresh events charted")
    parser.add_argument("--charts", type=int, default=8, help="how many of those events are charted")
    parser.add_argument("--rate", type=float, default=1000, help="readings per second, all events")
    parser.add_argument("--batch", type=int, default=50, help="readings per telemetry frame")
    parser.add_argument("--controllers", type=int, default=1, help="telemetry connections")
    parser.add_argument("--duration", type=float, default=20, help="seconds of feed")
    parser.add_argument("--idle", type=float, default=3, help="seconds of frames recorded before the feed")
    parser.add_argument("--width", type=int, default=1600, help="viewport width")
    parser.add_argument("--height", type=int, default=1200, help="viewport height")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser executable")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    try:
        emit({"bench": "live_page", **main(arguments)})
    except BenchError as exc:
        emit({"bench": "live_page", "error": str(exc)})
        sys.exit(1)
