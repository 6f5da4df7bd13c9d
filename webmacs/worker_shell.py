"""The process shell of ``webmacs serve --workers N``: spawn, poll, signal, wait.

Each worker is ``python -m webmacs serve --reuse-port`` (the same code path as a single
``webmacs serve``, with its own bus instance id) in its own process group, so a terminal's
Ctrl-C reaches only this parent, which forwards it once. Every decision (restart, backoff,
give up) is :class:`~webmacs.workers.WorkerPolicy`'s; this module only carries them out.

If this parent is killed with SIGKILL its workers keep serving: stop them by their process
group (``kill -TERM -<pid>`` of each), or let systemd's ``KillMode=control-group`` do it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from webmacs.workers import Exited, WorkerPolicy

log = logging.getLogger("webmacs.workers")

POLL_S = 0.1
STOP_TIMEOUT_S = 30.0  # a worker's graceful shutdown (flush, close sockets, in-flight requests)


def worker_command(log_level: str, access_log: bool) -> list[str]:
    command = [sys.executable, "-m", "webmacs", "serve", "--reuse-port", "--log-level", log_level]
    if not access_log:
        command.append("--no-access-log")
    return command


def supervise(
    command: list[str], env: Mapping[str, str], policy: WorkerPolicy, *,
    stop_timeout: float = STOP_TIMEOUT_S,
) -> int:
    """Run the pool until SIGTERM/SIGINT (forwarded to every worker, then waited for: exit 0 if
    all stopped cleanly) or until the policy gives up (exit 1)."""
    procs: dict[int, subprocess.Popen[bytes]] = {}
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not received and policy.gave_up is None:
            for slot in policy.due(time.monotonic()):
                _spawn(slot, command, env, policy, procs)
            for slot, proc in list(procs.items()):
                code = proc.poll()
                if code is not None:
                    del procs[slot]
                    _log_exit(policy.exited(slot, code, time.monotonic()), proc.pid)
            time.sleep(POLL_S)
        policy.stop()
        sig = received[0] if received else signal.SIGTERM
        if received:
            log.info("received %s, stopping %d workers", signal.Signals(sig).name, len(procs))
        codes = _stop_all(procs, sig, stop_timeout)
        if policy.gave_up is not None:
            print(f"webmacs: giving up: {policy.gave_up}", file=sys.stderr, flush=True)
            return 1
        # A worker still starting when the signal came dies of it before its handlers are in
        # place (status -signal): it had nothing to flush, so that is a clean stop too.
        return 0 if all(code in (0, -sig) for code in codes) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _spawn(slot: int, command: list[str], env: Mapping[str, str], policy: WorkerPolicy,
           procs: dict[int, subprocess.Popen[bytes]]) -> None:
    now = time.monotonic()
    policy.started(slot, now)
    try:
        proc = subprocess.Popen(command, env={**env, "WEBMACS_WORKER": str(slot)}, process_group=0)
    except OSError as exc:
        log.error("worker %d could not be started: %s", slot, exc)
        _log_exit(policy.exited(slot, 127, now), None)
        return
    procs[slot] = proc
    log.info("worker %d started (pid %d)", slot, proc.pid)


def _log_exit(exited: Exited, pid: int | None) -> None:
    what = f"worker {exited.slot} (pid {pid}) exited with status {exited.returncode} " \
           f"after {exited.uptime:.1f} s"
    if exited.restart_in is not None:
        log.warning("%s%s; restarting in %.1f s", what,
                    " at startup" if exited.early else "", exited.restart_in)
    else:
        log.info("%s", what)


def _stop_all(procs: dict[int, subprocess.Popen[bytes]], sig: int, timeout: float) -> list[int]:
    for proc in procs.values():
        proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    codes = []
    for slot, proc in procs.items():
        try:
            codes.append(proc.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            log.warning("worker %d (pid %d) did not stop within %.0f s: killed", slot, proc.pid,
                        timeout)
            proc.kill()
            codes.append(proc.wait())
    for slot, code in zip(procs, codes, strict=True):
        log.info("worker %d stopped (status %d)", slot, code)
    return codes
