"""CPU seconds (user + system) of a process and all its descendants, from /proc (Linux).

For ``webmacs serve --workers N``: the loadgen's ``--server-pid`` counts one process, so take
this before and after a run and subtract (a worker that exited meanwhile is not counted).

    python bench/tree_cpu.py PID   ->  {"bench":"tree_cpu","pid":…,"processes":3,"cpu_s":12.34}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, own CPU seconds) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu(root: int) -> tuple[int, float]:
    stats = {int(p.name): s for p in Path("/proc").iterdir()
             if p.name.isdigit() and (s := _stat(int(p.name))) is not None}
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return len(tree & stats.keys()), sum(stats[p][1] for p in tree if p in stats)


if __name__ == "__main__":
    pid = int(sys.argv[1])
    count, cpu = tree_cpu(pid)
    print(json.dumps({"bench": "tree_cpu", "pid": pid, "processes": count, "cpu_s": round(cpu, 2)}))
