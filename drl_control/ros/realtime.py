"""Real-time scheduling for control nodes (Linux): SCHED_FIFO for every thread of the process.

A controller's command period jitter on a busy machine is dominated by the OS scheduler, not by
the node's own work (see benchmarks/bench_controller.py); real-time priority is the usual remedy
(ros2_control's controller manager does the same). Needs CAP_SYS_NICE or an `rtprio` limit;
without them this reports why and leaves scheduling alone.
"""

from __future__ import annotations

import os


def set_realtime_priority(priority: int) -> str:
    """Put every existing thread (DDS threads included) under SCHED_FIFO `priority`; returns what happened."""
    if priority <= 0:
        return ""
    if not hasattr(os, "sched_setscheduler"):
        return "real-time priority is not supported on this platform"
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, ValueError) as exc:
        return f"could not set SCHED_FIFO priority {priority}: {exc} (needs CAP_SYS_NICE or an rtprio limit)"
    return f"SCHED_FIFO priority {priority} on {len(tids)} threads"
