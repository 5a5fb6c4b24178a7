"""`drl-control view`: the arm in a web browser, from a recording (time slider) or live (ros/view_feed.py).

Why viser: it ships its built web client in the wheel (nothing to fetch or compile), loads the URDF's
visual geometry through yourdfpy, and updates the scene over a websocket from plain Python, which a
recording's slider and a live ROS subscription both need. (rerun's viewer was the other candidate:
its URDF loading goes through a separate data-loader plugin and its web viewer is a wasm bundle
served apart from the data, more moving parts for the same picture.)
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drl_control.record.reader import RecordingError
from drl_control.robot.description import arm_urdf_path
from drl_control.robot.links import iiwa14_tree

ROBOT_ROOT = "/robot"
# The workspace the tasks use (base frame): the arm on the left, the table area in front of it.
CAMERA_POSITION = (1.25, -1.05, 0.9)
CAMERA_LOOK_AT = (0.3, 0.0, 0.4)
GOAL_COLOR = (30, 200, 60)
OBJECT_COLOR = (50, 100, 230)
PATH_COLOR = (240, 200, 30)


class SceneView:
    """One viser server showing one arm; `show()` moves it (thread-safe, any thread)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8080, urdf_text: str | None = None) -> None:
        import viser
        import yourdfpy
        from viser.extras import ViserUrdf

        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.port = self.server.get_port()
        self.server.scene.set_up_direction("+z")
        self.server.gui.configure_theme(control_width="small", show_share_button=False)
        self.server.initial_camera.position = CAMERA_POSITION
        self.server.initial_camera.look_at = CAMERA_LOOK_AT
        self.server.initial_camera.up = (0.0, 0.0, 1.0)
        text = urdf_text or arm_urdf_path().read_text()
        urdf = yourdfpy.URDF.load(io.StringIO(text))
        self.robot = ViserUrdf(self.server, urdf, root_node_name=ROBOT_ROOT)
        self.joint_names = list(self.robot.get_actuated_joint_names())
        self.server.scene.add_grid("/ground", width=2.0, height=2.0, cell_size=0.1, position=(0.3, 0.0, 0.0))
        self.goal = self.server.scene.add_icosphere("/goal", radius=0.025, color=GOAL_COLOR, visible=False)
        self.object = self.server.scene.add_box("/object", dimensions=(0.04, 0.04, 0.04), color=OBJECT_COLOR,
                                                visible=False)
        self._path: Any = None
        self._lock = threading.Lock()
        self.positions: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def show(self, positions: Mapping[str, float], goal: Sequence[float] | None = None,
             object_position: Sequence[float] | None = None, path: np.ndarray | None = None) -> None:
        """Arm at `positions` (joint name -> rad; others stay), goal/object (None: hidden), ee path (N, 3)."""
        with self._lock:
            self.positions.update({k: float(v) for k, v in positions.items()})
            self.robot.update_cfg(np.array([self.positions.get(n, 0.0) for n in self.joint_names]))
            self._place(self.goal, goal)
            self._place(self.object, object_position)
            if path is not None:
                self._show_path(np.asarray(path, dtype=float).reshape(-1, 3))

    @staticmethod
    def _place(handle: Any, position: Sequence[float] | None) -> None:
        if position is None or not np.all(np.isfinite(position)):
            handle.visible = False
        else:
            handle.position = tuple(float(v) for v in position)
            handle.visible = True

    def _show_path(self, points: np.ndarray) -> None:
        if self._path is not None:
            self._path.remove()
            self._path = None
        if len(points) >= 2:
            segments = np.stack([points[:-1], points[1:]], axis=1)
            self._path = self.server.scene.add_line_segments("/ee_path", segments, PATH_COLOR, thickness=0.006)

    def scene_link_poses(self) -> dict[str, np.ndarray]:
        """Pose of every link as the viser scene holds it (its frames composed from the root), base frame.

        ViserUrdf names each link's frame by its chain below the root link: /robot/visual/link_1/link_2/...
        """
        import viser.transforms as vtf

        parent_of = {joint.child: joint.parent for joint in iiwa14_tree()}
        poses = {}
        for link in parent_of:
            chain = [link]
            while parent_of.get(chain[-1]) in parent_of:
                chain.append(parent_of[chain[-1]])
            pose, name = np.eye(4), f"{ROBOT_ROOT}/visual"
            for part in reversed(chain):
                name += "/" + part
                handle = self.server.scene.get_handle_by_name(name)
                if handle is None:
                    raise LookupError(f"viewer scene has no frame {name}")
                local = np.eye(4)
                local[:3, :3] = vtf.SO3(np.asarray(handle.wxyz)).as_matrix()
                local[:3, 3] = handle.position
                pose = pose @ local
            poses[link] = pose
        return poses

    def stop(self) -> None:
        self.server.stop()


class RecordingView:
    """A recording in the browser: a time slider and a play box; it opens at the last joint state."""

    def __init__(self, path: str | Path, *, host: str = "127.0.0.1", port: int = 8080, rate: float = 1.0) -> None:
        from drl_control.record.reader import read_recording, trajectory

        self.traj = traj = trajectory(read_recording(path))
        if len(traj.t) == 0:
            raise RecordingError(f"{path}: the recording holds no joint state")
        self.rate = rate
        self.view = SceneView(host=host, port=port, urdf_text=traj.urdf or None)
        gui = self.view.server.gui
        gui.add_markdown(f"**{Path(path).name}**: {len(traj.t)} joint states, {traj.t[-1]:.1f} s"
                         + (" (recording cut short)" if traj.truncated else ""))
        self.slider = gui.add_slider("time (s)", 0.0, float(max(traj.t[-1], 1e-3)), 0.01, float(traj.t[-1]))
        self.playing = gui.add_checkbox("play", False)
        self.slider.on_update(lambda _event: self.show_time(self.slider.value))
        self.show_index(len(traj.t) - 1)

    def show_index(self, i: int) -> None:
        traj = self.traj
        k = int(np.searchsorted(traj.goal_t, traj.t[i], side="right")) - 1 if len(traj.goal_t) else -1
        goal = traj.goals[k] if k >= 0 else None
        obj = traj.objects[k] if k >= 0 else None
        self.view.show(dict(zip(traj.joint_names, traj.q[i])), goal, obj, traj.ee[: i + 1])

    def show_time(self, t: float) -> None:
        self.show_index(max(0, min(int(np.searchsorted(self.traj.t, t, side="right")) - 1, len(self.traj.t) - 1)))

    def serve(self, stop: threading.Event) -> None:
        """Until `stop`: advance the slider while "play" is ticked (wraps at the end)."""
        period = 0.05
        while not stop.wait(period):
            if self.playing.value:
                nxt = self.slider.value + period * self.rate
                self.slider.value = 0.0 if nxt > self.traj.t[-1] else nxt  # fires on_update

    def stop(self) -> None:
        self.view.stop()
