"""``webmacs simulate``: demo controllers streaming signals to a running server."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

import click
import trio

from webmacs.cli.common import CliError, first_leaf

if TYPE_CHECKING:
    from webmacs.simulator.client import Simulation


def _base_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise click.BadParameter("must be http://host[:port] or https://…")
    return value


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, callback=_base_url,
              help="The server's base URL.")
@click.option("--email", envvar="WEBMACS_EMAIL", default="admin@webmacs.io", show_default=True,
              help="Login email (env WEBMACS_EMAIL).")
@click.option("--password", envvar="WEBMACS_PASSWORD", default="admin123",
              show_default="the development admin's", help="Login password (env WEBMACS_PASSWORD).")
@click.option("--token", envvar="WEBMACS_TOKEN",
              help="An API token (wm_…, env WEBMACS_TOKEN) instead of --email/--password; with "
                   "scope telemetry its events must exist already.")
@click.option("--controllers", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Controllers, one WebSocket each.")
@click.option("--rate", type=click.FloatRange(0, 1000, min_open=True), default=10.0, show_default=True,
              help="Readings per second per event.")
@click.option("--duration", type=click.FloatRange(0, min_open=True),
              help="Seconds to run (default: until Ctrl-C).")
@click.option("--batch-window", type=click.FloatRange(0.001, 60), default=0.1, show_default=True,
              help="Seconds of readings coalesced into one frame.")
@click.option("--events-per-controller", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Events per controller (temperature, pressure, valve, then again).")
@click.option("--name-prefix", default="sim", show_default=True,
              help="Event names: <prefix><k>_temperature, …")
@click.option("--id-prefix", help="controller_id prefix: <prefix>-<k> (default sim-<hostname>).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Lowest level logged (on stderr).")
def simulate(url: str, email: str, password: str, token: str | None, controllers: int, rate: float,
             duration: float | None, batch_window: float, events_per_controller: int,
             name_prefix: str, id_prefix: str | None, log_level: str) -> int:
    """Stream demo signals from N controllers over WebSockets (with seq, acks and resends).

    Each controller's events are created if missing (sine temperature, sawtooth pressure, step
    valve actuator). Ctrl-C (or --duration) stops it after the last acks, with a summary line per
    controller on stdout: sent, acked, resent, rejected (readings). A second Ctrl-C stops at once.
    """
    # Imported here: httpx and the client are not needed to start ``webmacs serve``.
    from webmacs.simulator.client import SimConfig, Simulation, SimulatorError, default_id_prefix, summary

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore", "trio-websocket"):  # their DEBUG lines show the token
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = SimConfig(url=url, email=email, password=password, token=token or None,
                       controllers=controllers, rate=rate,
                       duration=duration, batch_window=batch_window,
                       events_per_controller=events_per_controller, name_prefix=name_prefix,
                       id_prefix=id_prefix or default_id_prefix())
    sim = Simulation(config)
    problem: str | None = None
    try:
        trio.run(_run_until_interrupted, sim)
    except* SimulatorError as group:
        problem = str(first_leaf(group))
    if sim.controllers:
        click.echo("\n".join(summary(sim.results())))
    if problem is not None:
        raise CliError(problem)
    return 0


async def _run_until_interrupted(sim: Simulation) -> None:
    """The first Ctrl-C (or SIGTERM) stops producing and drains the acks; a second one quits."""
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for _ in signals:
                    if stop.is_set():
                        nursery.cancel_scope.cancel()
                        return
                    logging.getLogger("webmacs.simulator").info(
                        "stopping: waiting for the last acks (Ctrl-C again to quit now)")
                    stop.set()

            nursery.start_soon(watch)
            await sim.run(stop)
            nursery.cancel_scope.cancel()
