"""``webmacs simulate``: its sans-IO parts (signals, sampling, the frame book) and the whole
simulator against a real ``webmacs serve`` (both backends), through its Python API and its CLI.

The integration tests judge the simulator by the database: every reading the server acked is
stored exactly once, also when the connection is cut while acks are in flight."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
import trio
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, _free_port
from hypothesis import given, settings
from hypothesis import strategies as st

from webmacs.simulator.backoff import Backoff
from webmacs.simulator.client import SimConfig, Simulation, SimulatorError, summary
from webmacs.simulator.plan import Sampler, controller_events, controller_id
from webmacs.simulator.protocol import Ack, Command, ErrorReply, Unknown, parse_reply, telemetry_url
from webmacs.simulator.signals import SHAPES, Signal, sawtooth, sine, step
from webmacs.simulator.unacked import FrameBook, Tally

# ---------------------------------------------------------------- signals

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(shape=st.sampled_from(SHAPES), a=finite, b=finite, t=st.floats(0, 1e7),
       period=st.floats(0.01, 1e4), phase=st.floats(0, 1))
def test_every_signal_stays_inside_its_range(shape: str, a: float, b: float, t: float, period: float,
                                             phase: float) -> None:
    lo, hi = min(a, b), max(a, b)
    value = Signal(shape, lo, hi, period, phase).at(t)  # type: ignore[arg-type]
    assert lo <= value <= hi


@pytest.mark.parametrize("shape", SHAPES)
def test_signals_repeat_with_their_period(shape: str) -> None:
    sig = Signal(shape, 15, 85, period=8, phase=0.3)  # type: ignore[arg-type]
    for t in (0.0, 0.7, 3.1, 5.55):
        assert sig.at(t) == pytest.approx(sig.at(t + 8), abs=1e-9)
        assert sig.at(t) == pytest.approx(sig.at(t + 80), abs=1e-9)


def test_sine_starts_mid_range_rising() -> None:
    assert sine(0, 15, 85, 4) == pytest.approx(50)
    assert sine(1, 15, 85, 4) == pytest.approx(85)
    assert sine(3, 15, 85, 4) == pytest.approx(15)
    assert sine(0, 15, 85, 4, phase=0.25) == pytest.approx(85)


def test_sawtooth_ramps_up_then_drops() -> None:
    values = [sawtooth(t / 10, 0, 4, 2) for t in range(20)]
    assert values == sorted(values) and values[0] == 0 and values[-1] == pytest.approx(3.8)
    assert sawtooth(2.0, 0, 4, 2) == 0  # back to the bottom


def test_step_is_low_then_high() -> None:
    assert {step(t / 10, 0, 1, 2) for t in range(10)} == {0}
    assert {step(t / 10, 0, 1, 2) for t in range(10, 20)} == {1}


def test_a_signal_refuses_an_empty_range_or_period() -> None:
    with pytest.raises(ValueError):
        Signal("sine", 2, 1, 1)
    with pytest.raises(ValueError):
        Signal("sine", 0, 1, 0)


# ---------------------------------------------------------------- plan and sampling


def test_each_controller_gets_its_own_named_events() -> None:
    specs = controller_events(2, 4)
    assert [s.name for s in specs] == ["sim2_temperature", "sim2_pressure", "sim2_valve",
                                       "sim2_temperature_2"]
    assert [(s.type, s.signal.shape) for s in specs[:3]] == [
        ("sensor", "sine"), ("sensor", "sawtooth"), ("actuator", "step")]
    assert specs[0].create_body() == {"name": "sim2_temperature", "min_value": 15.0,
                                      "max_value": 85.0, "unit": "°C", "type": "sensor"}
    assert len({s.signal.phase for s in specs}) == 4


def test_controller_ids_are_what_the_server_accepts() -> None:
    assert controller_id("sim-lab.host", 3) == "sim-lab.host-3"
    assert controller_id("sim-ünï côde", 1) == "sim--n-c-de-1"
    long = controller_id("x" * 100, 12)
    assert len(long) == 64 and long.endswith("-12")
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", controller_id("---", 1))


def test_sampler_hands_out_every_instant_once_even_after_a_late_wakeup() -> None:
    s = Sampler(rate=10)
    assert s.due(0.0) == [0.0]
    assert s.due(0.05) == []
    assert s.next_at() == pytest.approx(0.1)
    late = s.due(1.0)  # woke up 0.9 s late: every missed sample, each with its own time
    assert late == pytest.approx([n / 10 for n in range(1, 11)])
    assert s.due(1.55, limit=2) == pytest.approx([1.1, 1.2])
    assert s.due(1.55) == pytest.approx([1.3, 1.4, 1.5])


def test_backoff_doubles_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(first=0.1, cap=1.0, jitter=0.5, uniform=lambda lo, hi: lo)
    assert [b.delay() for _ in range(6)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    b.reset()
    assert b.delay() == pytest.approx(0.05)
    assert Backoff(uniform=lambda lo, hi: hi).delay() == pytest.approx(0.1)


# ---------------------------------------------------------------- protocol


def test_telemetry_url_keeps_scheme_port_and_prefix() -> None:
    assert telemetry_url("http://h:8000", "t.k", "c-1") == \
        "ws://h:8000/ws/controller/telemetry?token=t.k&controller_id=c-1"
    assert telemetry_url("https://lab.example/webmacs/", "t", "c").startswith(
        "wss://lab.example/webmacs/ws/controller/telemetry?")


def test_replies_are_parsed_and_unknown_ones_ignored() -> None:
    assert parse_reply('{"type":"ack","seq":4,"accepted":1,"rejected":[{"index":1,"detail":"x"}]}') \
        == Ack(4, 1, ("x",))
    assert parse_reply('{"type":"error","seq":null,"detail":"Malformed JSON frame."}') == \
        ErrorReply(None, "Malformed JSON frame.")
    cmd = parse_reply('{"type":"command","id":"i","event_public_id":"e","value":1.0,"timestamp":"t"}')
    assert cmd == Command("i", "e", 1.0, "t")
    for raw in ("nonsense", "[1]", '{"type":"pong"}', '{"type":"ack","seq":"x"}'):
        assert isinstance(parse_reply(raw), Unknown)


# ---------------------------------------------------------------- the frame book


def readings(n: int, event: str = "e") -> list[dict[str, object]]:
    return [{"value": float(i), "event_public_id": event} for i in range(n)]


def test_frames_are_numbered_from_first_seq_and_kept_verbatim() -> None:
    book = FrameBook(first_seq=1000, window=2)
    a, b, c = (book.add(readings(3)) for _ in range(3))
    assert a is not None and b is not None and c is not None
    assert (a.seq, b.seq, c.seq) == (1000, 1001, 1002)
    assert orjson.loads(a.text) == {"seq": 1000, "datapoints": readings(3)}
    assert book.take(0) == [a, b]  # the window
    assert book.take(0) == []
    book.on_ack(Ack(1000, 3, ()))
    assert book.take(0) == [c]
    assert book.add([]) is None


def test_acks_count_accepted_and_rejected_readings_once() -> None:
    book = FrameBook()
    frame = book.add(readings(4))
    assert frame is not None and book.take(0) == [frame]
    book.on_ack(Ack(frame.seq, 3, ("Event not found.",)))
    book.on_ack(Ack(frame.seq, 3, ("Event not found.",)))  # a second ack: a stray
    assert (book.tally.sent, book.tally.acked, book.tally.rejected) == (4, 3, 1)
    assert book.tally.stray_acks == 1 and book.unacked_frames == 0


def test_after_a_disconnect_unacked_frames_go_again_first_unchanged() -> None:
    book = FrameBook(window=3)
    frames = [book.add(readings(2)) for _ in range(3)]
    assert book.take(0) == frames
    book.on_ack(Ack(frames[0].seq, 2, ()))  # type: ignore[union-attr]
    book.on_disconnect()
    newer = book.add(readings(2))
    assert book.take(0) == [frames[1], frames[2], newer]
    assert (book.tally.sent, book.tally.resent) == (8, 4)


def test_a_transient_error_frame_sends_the_frame_again_later() -> None:
    book = FrameBook(retry_after=0.5)
    frame = book.add(readings(2))
    assert frame is not None and book.take(0) == [frame]
    assert book.on_error(ErrorReply(frame.seq, "Database unavailable."), now=10.0)
    assert book.take(10.2) == [] and book.next_retry() == 10.5
    assert book.take(10.5) == [frame] and book.tally.resent == 2


def test_a_frame_refused_for_good_is_counted_rejected() -> None:
    book = FrameBook()
    frame = book.add(readings(5))
    assert frame is not None and book.take(0) == [frame]
    assert book.on_error(ErrorReply(frame.seq, "Batch too large: 5 datapoints (limit 4)."), 0)
    assert not book.on_error(ErrorReply(None, "Malformed JSON frame."), 0)
    assert book.tally.rejected == 5 and book.unacked_frames == 0 and book.tally.errors == 2


def test_a_full_backlog_drops_new_readings_and_says_so() -> None:
    book = FrameBook(max_backlog=5)
    assert book.add(readings(3)) is not None
    assert book.add(readings(3)) is None
    assert book.tally.dropped == 3 and book.unacked_readings == 3
    assert "dropped 3" in book.tally.line()


class ModelServer:
    """The server's exactly-once rule (contract §8) over a list: a known seq gets its first ack."""

    def __init__(self) -> None:
        self.first_acks: dict[int, str] = {}
        self.rows: list[tuple[int, int]] = []  # (seq, index) of each stored reading

    def receive(self, text: str) -> str:
        frame = orjson.loads(text)
        seq = frame["seq"]
        if seq not in self.first_acks:
            bad = [i for i, d in enumerate(frame["datapoints"]) if d["value"] < 0]
            good = [i for i in range(len(frame["datapoints"])) if i not in bad]
            self.rows += [(seq, i) for i in good]
            self.first_acks[seq] = orjson.dumps({
                "type": "ack", "seq": seq, "accepted": len(good),
                "rejected": [{"index": i, "event_public_id": "e", "detail": "bad"} for i in bad],
            }).decode()
        return self.first_acks[seq]


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["add", "send", "deliver", "reply", "drop"]),
                                st.integers(1, 5)), max_size=80),
       window=st.integers(1, 4))
def test_every_reading_is_settled_exactly_once_whatever_the_disconnects(
        steps: list[tuple[str, int]], window: int) -> None:
    book, server = FrameBook(first_seq=7, window=window), ModelServer()
    wire: deque[str] = deque()  # client → server
    back: deque[str] = deque()  # server → client
    made, bad = 0, 0

    def send() -> None:
        wire.extend(f.text for f in book.take(0))
        assert book.in_flight <= window

    for op, n in steps:
        if op == "add":  # n readings, the last one refused by the server when n is odd
            items = [{"value": (-1.0 if n % 2 and i == n - 1 else float(i)), "event_public_id": "e"}
                     for i in range(n)]
            book.add(items)
            made, bad = made + n, bad + n % 2
        elif op == "send":
            send()
        elif op == "deliver":
            for _ in range(min(n, len(wire))):
                back.append(server.receive(wire.popleft()))
        elif op == "reply":
            for _ in range(min(n, len(back))):
                reply = parse_reply(back.popleft())
                assert isinstance(reply, Ack)
                book.on_ack(reply)
        else:  # the connection drops: whatever is on the wire, either way, is lost
            wire.clear()
            back.clear()
            book.on_disconnect()
    wire.clear()  # and a last drop, then a good connection at last
    back.clear()
    book.on_disconnect()
    while book.unacked_frames:
        send()
        while wire:
            reply = parse_reply(server.receive(wire.popleft()))
            assert isinstance(reply, Ack)
            book.on_ack(reply)
    assert len(server.rows) == len(set(server.rows)) == made - bad
    assert (book.tally.sent, book.tally.acked, book.tally.rejected) == (made, made - bad, bad)
    assert book.tally.stray_acks == 0


def test_summary_has_a_line_per_controller_and_a_total() -> None:
    from webmacs.simulator.client import Result

    lines = summary([Result("a", Tally(sent=3, acked=3)), Result("b", Tally(sent=2, acked=1, resent=1,
                                                                             rejected=1))])
    assert lines == ["a: sent 3, acked 3, resent 0, rejected 0",
                     "b: sent 2, acked 1, resent 1, rejected 1",
                     "total: sent 5, acked 4, resent 1, rejected 1"]


async def test_a_controller_samples_at_its_rate_into_frames_of_its_window(
        autojump_clock: trio.testing.MockClock) -> None:
    """The producer alone, on virtual time: no connection, so every frame waits in the book."""
    from webmacs.simulator.client import Controller

    specs = controller_events(1)
    events = [(f"ev{i}", spec) for i, spec in enumerate(specs)]
    config = sim_config("http://unused", rate=10.0, batch_window=0.25, window=100)
    controller = Controller("c-1", events, config, auth=None)  # type: ignore[arg-type]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(controller._produce, stop)
        await trio.sleep(1.99)
        stop.set()
    frames = [orjson.loads(f.text) for f in controller.book.take(0)]
    # A frame every 0.25 s with the samples (every 0.1 s, from t = 0) due by then, 3 events
    # each; the samples of 1.8 and 1.9 were due after the last frame, when stop came first.
    assert [len(f["datapoints"]) for f in frames] == [3, 6, 9, 6, 9, 6, 9, 6]
    assert [f["seq"] - frames[0]["seq"] for f in frames] == list(range(8))
    readings = [d for f in frames for d in f["datapoints"]]
    for eid, spec in events:
        mine = [d for d in readings if d["event_public_id"] == eid]
        stamps = [d["timestamp"] for d in mine]
        assert len(mine) == 18 and stamps == sorted(set(stamps))
        assert all(spec.signal.lo <= d["value"] <= spec.signal.hi for d in mine)


# ---------------------------------------------------------------- against a real server


def engine_for(database_url: str) -> sa.Engine:
    return sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))


def stored(database_url: str) -> tuple[int, int, list[str]]:
    """Rows, distinct (event, timestamp) pairs, and the names of events with an out-of-range value."""
    engine = engine_for(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM datapoints")).scalar_one()
            distinct = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT DISTINCT event_id, timestamp FROM datapoints) d")).scalar_one()
            outside = conn.execute(sa.text(
                "SELECT DISTINCT e.name FROM datapoints d JOIN events e ON e.id = d.event_id "
                "WHERE d.value < e.min_value OR d.value > e.max_value")).scalars().all()
    finally:
        engine.dispose()
    return rows, distinct, list(outside)


def sim_config(url: str, **kw: object) -> SimConfig:
    base: dict[str, object] = {"url": url, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                               "controllers": 2, "rate": 20.0, "batch_window": 0.05,
                               "id_prefix": "sim-test"}
    return SimConfig(**{**base, **kw})  # type: ignore[arg-type]


def total(sim: Simulation) -> Tally:
    t = Tally()
    for r in sim.results():
        t.add(r.tally)
    return t


async def test_the_server_stores_exactly_the_readings_it_acked(
        live_server: LiveServer, database_url: str) -> None:
    sim = Simulation(sim_config(live_server.base_url, duration=2.0))
    await sim.run()
    t = total(sim)
    assert t.acked >= 2 * 3 * 30  # 2 controllers x 3 events x 20/s x 2 s, give or take a start-up
    assert (t.unacked, t.rejected, t.resent, t.dropped) == (0, 0, 0, 0) and t.sent == t.acked
    rows, distinct, outside = stored(database_url)
    assert rows == distinct == t.acked
    assert outside == []


async def test_a_second_run_reuses_the_events_and_never_reuses_a_seq(
        live_server: LiveServer, database_url: str) -> None:
    first = Simulation(sim_config(live_server.base_url, controllers=1, duration=1.0))
    await first.run()
    second = Simulation(sim_config(live_server.base_url, controllers=1, duration=1.0))
    await second.run()
    assert second.controllers[0].events == first.controllers[0].events
    # Same controller_id: had the second run counted from the first run's seqs, the server
    # would have answered its frames with old acks and stored nothing.
    rows, _, _ = stored(database_url)
    assert rows == total(first).acked + total(second).acked


class CuttableProxy:
    """A TCP proxy in front of the server that a test can make deaf (server → client bytes
    dropped, so acks are lost after the commit) and then cut (every connection closed)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.deaf = False
        self.connections = 0
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    def cut(self) -> None:
        self.deaf = False
        for scope in self._scopes:
            scope.cancel()

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, server, False, nursery.cancel_scope)
                nursery.start_soon(self._pump, server, client, True, nursery.cancel_scope)
        self._scopes.discard(scope)
        for stream in (client, server):
            await stream.aclose()

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream, replies: bool,
                    done: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                if not (replies and self.deaf):
                    await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        done.cancel()


async def test_a_cut_connection_and_a_revoked_token_lose_and_duplicate_nothing(
        live_server: LiveServer, database_url: str) -> None:
    proxy = CuttableProxy(live_server.port)

    revoked: list[str] = []

    async def deafen_then_cut() -> None:
        await trio.sleep(1.5)
        proxy.deaf = True  # the server commits and acks; the acks never arrive
        await trio.sleep(0.6)
        # And the token is revoked meanwhile: the reconnect gets 401, logs in again, resends.
        import httpx

        revoked.append(sim.controllers[0].auth.token)
        async with httpx.AsyncClient(base_url=live_server.base_url) as http:
            resp = await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {revoked[0]}"})
            assert resp.status_code == 200
        proxy.cut()

    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        sim = Simulation(sim_config(f"http://127.0.0.1:{proxy.port}", duration=4.0))
        nursery.start_soon(deafen_then_cut)
        await sim.run()
        nursery.cancel_scope.cancel()  # the proxy
    assert all(c.connects >= 2 for c in sim.controllers)
    assert sim.controllers[0].auth.token not in ("", revoked[0])
    t = total(sim)
    assert t.resent > 0 and t.unacked == 0 and t.sent == t.acked
    rows, distinct, _ = stored(database_url)
    assert rows == distinct == t.acked
    # The resends were answered from the server's record, not stored again.
    replays = sum(int(n) for n in re.findall(r"(\d+) resends answered from their first ack",
                                             live_server.output()))
    assert replays > 0


async def test_wrong_password_is_a_simulator_error(live_server: LiveServer) -> None:
    with pytest.raises(SimulatorError, match=r"^login failed: Invalid email or password\.$"):
        await Simulation(sim_config(live_server.base_url, password="nope", duration=1)).run()


# ---------------------------------------------------------------- the command line

SUMMARY = re.compile(r"^(\S+): sent (\d+), acked (\d+), resent (\d+), rejected (\d+)$")


def simulate_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "webmacs", "simulate", "--url", url, "--email", ADMIN_EMAIL,
            "--rate", "10", "--batch-window", "0.05", "--id-prefix", "sim-cli", *args]


def parse_summary(stdout: str, controllers: int) -> int:
    """The total acked of the summary, after checking its shape."""
    lines = stdout.strip().splitlines()
    matches = [SUMMARY.match(line) for line in lines]
    assert len(lines) == controllers + 1 and all(matches), stdout
    names = [m.group(1) for m in matches if m]
    assert names == [*(f"sim-cli-{k}" for k in range(1, controllers + 1)), "total"]
    acked = [int(m.group(3)) for m in matches if m]
    assert sum(acked[:-1]) == acked[-1] > 0
    return acked[-1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_runs_for_its_duration_and_prints_the_summary(
        live_server: LiveServer, database_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        simulate_cmd(live_server.base_url, "--controllers", "2", "--duration", "2"),
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "WEBMACS_PASSWORD": ADMIN_PASSWORD},
    )
    assert proc.returncode == 0, proc.stderr
    assert parse_summary(proc.stdout, 2) == stored(database_url)[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_ctrl_c_stops_cleanly_with_the_summary(
        live_server: LiveServer, database_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        simulate_cmd(live_server.base_url, "--controllers", "1", "--password", ADMIN_PASSWORD),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    err = ""
    while "streaming" not in err and time.monotonic() < deadline:
        err += proc.stderr.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0, err + rest
    assert "stopping" in rest and "Traceback" not in rest
    assert parse_summary(out, 1) == stored(database_url)[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_wrong_password_is_one_line_and_exit_1(live_server: LiveServer, tmp_path: Path) -> None:
    proc = subprocess.run(simulate_cmd(live_server.base_url, "--password", "wrong-password"),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "webmacs: login failed: Invalid email or password."
    assert proc.stdout == ""


def test_cli_unreachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    proc = subprocess.run(simulate_cmd(url, "--duration", "1"), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"webmacs: cannot reach {url}"), proc.stderr


@pytest.mark.parametrize(("flag", "value"), [("--rate", "0"), ("--url", "ftp://x"), ("--url", "localhost")])
def test_cli_refuses_a_bad_option_in_one_line(flag: str, value: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from webmacs.cli import main

    assert main(["simulate", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err


# ---------------------------------------------------------------- the documented minimal client


def documented_client() -> str:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = doc[doc.index("## 6. A minimal client"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```\n")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_minimal_client_of_the_docs_streams_and_acks_commands(
        live_server: LiveServer, database_url: str, tmp_path: Path) -> None:
    import httpx

    script = tmp_path / "client.py"
    script.write_text(documented_client())
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:
        login = await http.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ids = []
        for name, type_ in (("doc-sensor", "sensor"), ("doc-valve", "actuator")):
            resp = await http.post("/api/v1/events", headers=headers, json={
                "name": name, "min_value": 0, "max_value": 100, "unit": "u", "type": type_})
            ids.append(resp.json()["public_id"])
        env = {**os.environ, "WEBMACS_URL": live_server.base_url, "SENSOR_EVENT_ID": ids[0],
               "ACTUATOR_EVENT_IDS": ids[1], "WEBMACS_PASSWORD": ADMIN_PASSWORD}
        with (tmp_path / "client.out").open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                while "declared 1 events for commands" not in live_server.output():
                    assert proc.poll() is None, (tmp_path / "client.out").read_text()
                    await trio.sleep(0.1)
                resp = await http.post("/api/v1/datapoints", headers=headers,
                                       json={"event_public_id": ids[1], "value": 0.5})
                assert resp.status_code == 201
                await trio.sleep(2.5)
            finally:
                proc.kill()
                proc.wait()
        output = (tmp_path / "client.out").read_text()
        assert re.search(rf"^command {ids[1]} 0\.5$", output, re.M), output
        page = await http.get("/api/v1/datapoints", headers=headers,
                              params={"event_public_id": ids[0]})
        assert page.json()["total"] >= 2
    with trio.fail_after(10):  # the server logs the closed session's figures
        while not re.search(r"\[boiler-1\]: closed .* 1 acked", live_server.output()):
            await trio.sleep(0.1)
