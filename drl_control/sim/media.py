"""Episode videos from off-screen frames (imageio)."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 25.0) -> Path:
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, [np.asarray(f, dtype=np.uint8) for f in frames], duration=1000.0 / fps, loop=0)
    return path
