"""The README's timings, measured and printed with the machine they were measured on.

    .venv/bin/python benchmarks/time_readme.py [--repeat 3] [--only demo]

Each timed command runs as a user runs it (the venv's `drl-control`, a fresh working directory
under /tmp, so nothing lands in the repository) and the whole command's wall time is taken. The
demo's own training and deployment times come from its summary.json. The last lines are the
sentence the README quotes: median, min-max, the machine (CPU model, cores, memory) and the load
average before the run, since a number measured beside other work is not the machine's number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DRL_CONTROL = [sys.executable, "-m", "drl_control.cli"]  # the venv's drl-control, also with PYTHONPATH set

# name -> (command, what the README says it is); "{out}" is a fresh directory per run
COMMANDS = {
    "demo": ([*DRL_CONTROL, "demo", "--out", "{out}/demo"], "make demo after set-up"),
    "expert": ([*DRL_CONTROL, "expert", "--env", "DrlControl/IiwaPush-v0", "--episodes", "100",
                "--seed", "0"], "100 expert Push episodes"),
}


def machine() -> str:
    """"<CPU model>, N CPUs, M GiB, <OS>, Python x.y"."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
        memory = f", {mem_kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = ""
    return (f"{model}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def time_once(command: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="drl_time_") as tmp:
        argv = [a.replace("{out}", tmp) for a in command]
        t0 = time.monotonic()
        subprocess.run(argv, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        summary = Path(tmp, "demo", "summary.json")
        parts = json.loads(summary.read_text()).get("times_s", {}) if summary.is_file() else {}
    return wall, parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(COMMANDS), action="append", help="time only these (repeatable)")
    args = parser.parse_args()
    where = machine()
    print(f"machine: {where}")
    for name in args.only or sorted(COMMANDS):
        command, what = COMMANDS[name]
        load = os.getloadavg()[0]
        walls, parts = [], []
        for i in range(args.repeat):
            wall, part = time_once(command)
            walls.append(wall)
            parts.append(part)
            print(f"  {name} run {i + 1}: {wall:.1f} s {' '.join(f'{k} {v:.1f}' for k, v in part.items())}", flush=True)
        extra = ""
        if parts and parts[0]:
            extra = ", " + ", ".join(f"{k.removesuffix('_s')} {statistics.median(p[k] for p in parts):.0f} s"
                                     for k in parts[0])
        print(f"{what}: {statistics.median(walls):.0f} s (median of {len(walls)}, {min(walls):.0f}-{max(walls):.0f} s"
              f"{extra}) on {where}, load average {load:.1f} before the runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
