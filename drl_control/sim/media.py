"""Episode videos for people: off-screen frames of the workspace with the goal and a text overlay.

`EpisodeRecorder` renders an env's PyBullet world with the TinyRenderer (no display needed) at
640x480 by default, framed on the workspace. The task's own goal marker is small and half
transparent (it is there for the GUI); the recorder adds a visual-only sphere (no collision shape,
so physics does not see it) of the same colour, opaque and larger, that follows the goal. Each
frame carries an overlay: episode, step, distance to goal and success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

DEFAULT_SIZE = (640, 480)
GOAL_RADIUS = 0.025  # m: visible at 640x480 from the default camera, small beside the 5 cm success radius
GOAL_RGBA = (0.1, 0.85, 0.1, 1.0)


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 25.0) -> Path:
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, [np.asarray(f, dtype=np.uint8) for f in frames], duration=1000.0 / fps, loop=0)
    return path


def overlay(frame: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """`frame` with `lines` of (text, colour) on a dark box in its top-left corner."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    size = max(12, image.height // 26)
    try:
        font: Any = ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image, "RGBA")
    pad, step = size // 2, int(size * 1.3)
    width = max(draw.textlength(text, font=font) for text, _ in lines)
    draw.rectangle((0, 0, width + 2 * pad, len(lines) * step + 2 * pad), fill=(0, 0, 0, 150))
    for i, (text, colour) in enumerate(lines):
        draw.text((pad, pad + i * step), text, fill=colour, font=font)
    return np.asarray(image)


class EpisodeRecorder:
    """Frames of a drl_control goal env (any wrapper of IiwaGoalEnv) for a GIF."""

    def __init__(self, env: Any, size: tuple[int, int] = DEFAULT_SIZE) -> None:
        width, height = size
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, got {size}")
        self.env = env.unwrapped
        self.size = (int(width), int(height))
        self.frames: list[np.ndarray] = []
        self.episode = 0
        self.step = 0
        world = self.env.world
        self.marker = world.create_sphere_marker(GOAL_RADIUS, np.asarray(self.env.task.goal), GOAL_RGBA)

    def new_episode(self) -> None:
        """Call after a reset: the next frame is step 0 of the next episode."""
        self.episode += 1
        self.step = 0

    def capture(self, info: dict | None = None) -> np.ndarray:
        """Render the current state (with the overlay) and keep the frame; call after each step."""
        if self.episode == 0:
            self.new_episode()
        task = self.env.task
        goal = np.asarray(task.goal, dtype=float)
        self.step += 1
        self.env.world.set_base_pose(self.marker, goal)
        distance = float(np.linalg.norm(np.asarray(task.achieved_goal(), dtype=float) - goal))
        success = bool(info["is_success"]) if info and "is_success" in info else distance < task.distance_threshold
        frame = self.env.world.render(*self.size)
        frame = overlay(frame, [
            (f"episode {self.episode}  step {self.step}", (255, 255, 255)),
            (f"distance to goal {distance * 100:.1f} cm", (255, 255, 255)),
            ("success" if success else "not yet", (90, 230, 90) if success else (255, 190, 80)),
        ])
        self.frames.append(frame)
        return frame

    def save(self, path: str | Path) -> Path:
        return write_gif(self.frames, path, fps=self.env.metadata.get("render_fps", 25))
