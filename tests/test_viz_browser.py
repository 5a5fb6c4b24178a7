"""The browser view (drl_control.viz): a recording served by viser, opened by a real headless
Chromium (Debian package, software GL). The screenshot must show the arm, and the viewer's scene
must hold the link poses of the recording's last joint state (read back by the mcap package)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from drl_control.record.writer import Recorder
from drl_control.robot import iiwa14, kinematics
from drl_control.robot.links import link_poses

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Two seconds of the arm swinging from home to a pose in front of it, with goal and object."""
    spec = iiwa14()
    path = tmp_path_factory.mktemp("view") / "swing.mcap"
    last = np.array([0.5, 0.7, 0.2, -1.2, 0.3, 1.0, 0.4])
    with Recorder(path, start_ns=0) as rec:
        rec.set_goal([0.55, 0.2, 0.35])
        rec.set_object([0.5, -0.15, 0.02])
        for i, s in enumerate(np.linspace(0.0, 1.0, 51)):
            t = i * 40_000_000
            rec.joint_state(t, spec.joint_names, (1 - s) * spec.home + s * last)
            rec.markers(t)
    return path


@pytest.fixture(scope="module")
def view(recording):
    from drl_control.viz.view import RecordingView

    view = RecordingView(recording, port=free_port())
    stop = threading.Event()
    thread = threading.Thread(target=view.serve, args=(stop,), daemon=True)
    thread.start()
    yield view
    stop.set()
    thread.join(5)
    view.stop()


def last_joint_state(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        states = [m for _, _, _, m in reader.iter_decoded_messages(topics=["/joint_states"])]
    return np.array(states[-1].position)


def test_scene_holds_the_last_joint_state(view, recording) -> None:
    q = last_joint_state(recording)
    scene = view.view.scene_link_poses()
    expected = link_poses(dict(zip(iiwa14().joint_names, q)))
    assert set(expected) - {"iiwa_link_0"} <= set(scene)
    for link, pose in scene.items():
        np.testing.assert_allclose(pose, expected[link], atol=1e-5, err_msg=link)
    np.testing.assert_allclose(scene["iiwa_link_ee"][:3, 3], kinematics.forward(q)[:3, 3], atol=2e-3)
    np.testing.assert_allclose(view.view.goal.position, [0.55, 0.2, 0.35], atol=1e-6)
    assert view.view.goal.visible and view.view.object.visible


def test_slider_moves_the_arm(view) -> None:
    view.show_time(0.0)
    first = view.view.scene_link_poses()["iiwa_link_ee"][:3, 3]
    np.testing.assert_allclose(first, kinematics.forward(iiwa14().home)[:3, 3], atol=2e-3)
    view.show_time(view.traj.t[-1])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)")
def test_headless_chromium_shows_the_arm(view, tmp_path: Path) -> None:
    import imageio.v3 as iio

    shot = tmp_path / "view.png"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700", "--virtual-time-budget=6000",
           f"--screenshot={shot}", view.view.url]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert shot.is_file(), run.stderr[-2000:]
    image = iio.imread(shot)[..., :3].astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    # The URDF's orange links (1.0 0.42 0.04), shaded and possibly still fading in: warm hues. The page's
    # grey grid, white background and blue/green GUI have none.
    arm = (r - b > 50) & (r > g) & (g > b)
    assert image.std() > 10, "a blank page"
    assert arm.mean() > 0.01, f"the arm covers {arm.mean():.2%} of the screenshot"
    rows, cols = np.nonzero(arm)
    assert np.ptp(rows) > 0.2 * image.shape[0] and np.ptp(cols) > 0.15 * image.shape[1], "the arm is framed large"
