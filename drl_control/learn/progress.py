"""What a person watches while a run trains: the success window and the console progress bar.

`SUCCESS_WINDOW` is the one number behind every training success rate shown: the trainer's
progress reports (console bar, the ROS `~/train` feedback, learner status) and the learning-curve
plot average over the same last N training episodes, and both say so.

The bar is tqdm's, but its rate is not tqdm's own: tqdm measures the rate between its updates, so a
bar made at the first report (or fed absolute step counts) shows thousands of steps in a few
milliseconds. Here the first rate is the run's (steps since training started / wall time since
then), later ones a smoothed rate between reports, and the ETA follows from it. A report whose
interval rate is more than `_REGIME` times off the smoothed one starts over from it: when
`learning_starts` ends, gradient steps cut the rate 20-30x at once (Push: ~430 -> ~15 steps/s,
measured), and smoothing alone showed a 10x-too-short ETA for minutes.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

SUCCESS_WINDOW = 100  # training episodes behind a displayed success rate (console, ROS feedback, plot)
SUCCESS_LABEL = f"success (last {SUCCESS_WINDOW} ep.)"
_SMOOTHING = 0.3  # weight of the newest interval in the displayed rate
_REGIME = 3.0  # an interval this many times faster or slower than the smoothed rate replaces it


def _rate_bar(total: int, initial: int, file: IO[str], desc: str | None) -> Any:
    from tqdm import tqdm

    class RateBar(tqdm):
        """A tqdm bar whose rate (and so ETA) is set by the caller."""

        rate: float | None = None

        @property
        def format_dict(self) -> dict[str, Any]:
            d = super().format_dict
            if self.rate:
                d["rate"] = self.rate
            return d

    return RateBar(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True, file=file, desc=desc,
                   smoothing=0, mininterval=0.5)


class TrainingBar:
    """Console bar of a run: steps of `total`, rate, ETA, and the windowed success rate."""

    def __init__(self, total: int, *, file: IO[str] | None = None, desc: str | None = None) -> None:
        self.total = int(total)
        self._file = file or sys.stderr
        self._desc = desc
        self._bar: Any = None  # made at the first report: a refusal before it prints only its error line
        self._last: tuple[int, float] | None = None
        self.rate: float | None = None

    def update(self, timesteps: int, fps: float, success_rate: float, episodes: int | None = None) -> None:
        """One report: `fps` is the run's own rate since its training started."""
        now = time.monotonic()
        if self._last is None or not self.rate:
            self.rate = fps if fps > 0 and math.isfinite(fps) else None
        elif now > self._last[1] and timesteps > self._last[0]:
            interval = (timesteps - self._last[0]) / (now - self._last[1])
            changed = not self.rate / _REGIME < interval < self.rate * _REGIME
            self.rate = interval if changed else _SMOOTHING * interval + (1 - _SMOOTHING) * self.rate
        self._last = (timesteps, now)
        if self._bar is None:
            self._bar = _rate_bar(self.total, timesteps, self._file, self._desc)
        bar = self._bar
        bar.rate = self.rate
        bar.n = timesteps
        sr = "-" if math.isnan(success_rate) else f"{success_rate:.2f}"
        eps = "" if episodes is None else f"  ep {episodes}"
        bar.set_postfix_str(f"{SUCCESS_LABEL} {sr}{eps}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
