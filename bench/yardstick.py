"""Run the shared load generator against a fresh server at its defaults, as users run it.

    python bench/yardstick.py fanout --duration 30
    python bench/yardstick.py ingest-ws --duration 20 --server reference --reference-dir /tmp/ref

Each run gets a fresh PostgreSQL database (created here, dropped at the end) and a fresh server:
``webmacs serve`` with default settings (access log on, bcrypt cost 12, compression as clients
negotiate it) or, with ``--server reference``, the WebMACS v2 reference on uvicorn, installed as
``../shared/bench/README.md`` describes. Everything after the scenario goes to ``loadgen.py``
unchanged. The loadgen's JSON result (server CPU and RSS included, persisted counts verified
with ``count(*)``) is printed as the last line, with ``server`` and ``scenario`` added.
Optional: ``--profile SECONDS`` records a py-spy profile of the server (raw format) next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT.parent / "shared" / "bench" / "loadgen.py"
PG = "postgresql://postgres@127.0.0.1:5432"
# loadgen's default row count reads ``datapoints.event_public_id`` (the reference's schema); ours
# keys datapoints by ``event_id``. Without this, psql fails, and loadgen falls back to the
# server's own API total.
WEBMACS_COUNT_SQL = ("SELECT count(*) FROM datapoints d JOIN events e ON e.id = d.event_id "
                     "WHERE e.public_id IN ({event_ids})")


def _psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True)


def _start(
    kind: str, db: str, port: int, workdir: Path, reference_dir: Path | None
) -> subprocess.Popen[bytes]:
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    if kind == "webmacs":
        exe = Path(sys.executable).parent / "webmacs"
        env = {**os.environ, "DATABASE_URL": f"{PG}/{db}", "PORT": str(port), "HOST": "127.0.0.1"}
        cmd = [str(exe), "serve"]
        cwd = workdir
    else:
        assert reference_dir is not None, "--reference-dir is needed for the reference"
        env = {**os.environ, "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
               "SECRET_KEY": "some-long-secret-0123456789abcdef"}
        cmd = [str(reference_dir / "venv" / "bin" / "uvicorn"), "webmacs_backend.main:app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        cwd = reference_dir / "backend"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario")
    parser.add_argument("--server", choices=["webmacs", "reference"], default="webmacs")
    parser.add_argument("--reference-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy record this many seconds")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs loadgen.py")
    args, rest = parser.parse_known_args()

    db = f"yardstick_{uuid.uuid4().hex[:10]}"
    _psql(f'CREATE DATABASE "{db}"')
    workdir = Path(tempfile.mkdtemp(prefix="yardstick-"))
    proc = _start(args.server, db, args.port, workdir, args.reference_dir)
    spy = None
    try:
        if args.profile and shutil.which("py-spy"):
            spy = subprocess.Popen(["py-spy", "record", "-p", str(proc.pid), "-r", "200", "-f", "raw",
                                    "-d", str(args.profile), "-o", str(workdir / "profile.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = subprocess.run(
            [args.python, str(LOADGEN), args.scenario, "--base-url", f"http://127.0.0.1:{args.port}",
             "--email", "admin@webmacs.io", "--password", "admin123", "--server-pid", str(proc.pid),
             "--pg-dsn", f"{PG}/{db}",
             *(["--pg-count-sql", WEBMACS_COUNT_SQL] if args.server == "webmacs" else []), *rest],
            capture_output=True, text=True, check=False,
        )
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise SystemExit(f"loadgen printed no result:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        result = json.loads(lines[-1])
        result["yardstick"] = {"server": args.server, "scenario": args.scenario, "args": rest,
                               "workdir": str(workdir)}
        if spy is not None:
            spy.wait(timeout=args.profile + 30)
        print(json.dumps(result))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
