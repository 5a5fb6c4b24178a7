"""Recordings (drl_control.record): rosbag2-compatible MCAP read back with an independent reader (the
mcap package + mcap_ros2's decoder), eval --record end to end, plot, bad paths and files, a writer
killed mid-recording."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from artifact_util import untrained_artifact
from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader, make_reader
from mcap_ros2.decoder import DecoderFactory

from drl_control.cli import main
from drl_control.robot import iiwa14, kinematics

ENV = "DrlControl/IiwaPush-v0"  # has an object: its pose goes to tf and markers
EPISODES = 2
LINKS = [f"iiwa_link_{i}" for i in range(8)] + ["iiwa_link_ee"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """An (untrained) exported SAC Push policy: what it does does not matter, that it is recorded does."""
    return untrained_artifact(ENV, tmp_path_factory.mktemp("art") / "policy")


@pytest.fixture(scope="module")
def recording(artifact, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "eval.mcap"
    assert main(["eval", str(artifact), "--episodes", str(EPISODES), "--record", str(path)]) == 0
    return path


def read_all(path: Path) -> list[tuple]:
    """(schema, channel, message, decoded) in FILE order, by the mcap package (not our reader)."""
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return list(reader.iter_decoded_messages(log_time_order=False))


def tf_pose(transforms: dict[str, object], link: str) -> np.ndarray:
    """Compose TF from `link` up to iiwa_link_0 (child frame -> transform message)."""
    pose = np.eye(4)
    while link != "iiwa_link_0":
        t = transforms[link]
        q, p = t.transform.rotation, t.transform.translation
        x, y, z, w = q.x, q.y, q.z, q.w
        local = np.eye(4)
        local[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
        local[:3, 3] = [p.x, p.y, p.z]
        pose = local @ pose
        link = t.header.frame_id
    return pose


def test_eval_recording_is_a_ros2_bag_with_consistent_content(recording: Path) -> None:
    with open(recording, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None  # closed properly: summary + index
    assert summary.chunk_indexes, "messages are written in chunks"
    for schema in summary.schemas.values():
        assert schema.encoding == "ros2msg" and schema.name.count("/msg/") == 1, schema.name
    assert all(c.message_encoding == "cdr" and "offered_qos_profiles" in c.metadata
               for c in summary.channels.values())
    types = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
    assert types == {"/robot_description": "std_msgs/msg/String", "/joint_states": "sensor_msgs/msg/JointState",
                     "/tf": "tf2_msgs/msg/TFMessage", "/markers": "visualization_msgs/msg/MarkerArray",
                     "/policy/action": "std_msgs/msg/Float64MultiArray", "/policy/episode": "std_msgs/msg/String"}
    tf_schema = next(s for s in summary.schemas.values() if s.name == "tf2_msgs/msg/TFMessage").data.decode()
    assert "MSG: geometry_msgs/msg/TransformStamped" in tf_schema and "MSG: builtin_interfaces/msg/Time" in tf_schema

    messages = read_all(recording)
    assert messages[0][1].topic == "/robot_description"
    assert '<robot name="iiwa14">' in messages[0][3].data
    times = [m[2].log_time for m in messages]
    assert times == sorted(times), "file order is time order (one clock)"
    by_topic: dict[str, list] = {}
    for _, channel, message, decoded in messages:
        by_topic.setdefault(channel.topic, []).append((message.log_time, decoded))
    steps = len(by_topic["/policy/episode"])
    assert steps >= EPISODES and len(by_topic["/policy/action"]) == steps
    assert len(by_topic["/joint_states"]) == len(by_topic["/tf"]) == len(by_topic["/markers"]) == steps + EPISODES
    period = np.diff([t for t, _ in by_topic["/joint_states"]])
    assert np.all(period > 0) and np.median(period) == pytest.approx(40e6, rel=1e-3)  # 25 Hz sim time

    spec = iiwa14()
    import yourdfpy

    urdf = yourdfpy.URDF.load(str(Path(__file__).resolve().parents[1] / "urdf" / "iiwa14.urdf"))
    for (t_js, js), (t_tf, tf) in zip(by_topic["/joint_states"], by_topic["/tf"]):
        assert t_js == t_tf and list(js.name) == list(spec.joint_names)
        transforms = {t.child_frame_id: t for t in tf.transforms}
        assert set(LINKS[1:]) | {"object"} == set(transforms)
        flange = tf_pose(transforms, "iiwa_link_ee")[:3, 3]
        np.testing.assert_allclose(flange, kinematics.forward(np.array(js.position))[:3, 3], atol=2e-3)
    urdf.update_cfg(np.array(js.position))  # the last state: every link as yourdfpy computes it
    for link in LINKS[1:]:
        np.testing.assert_allclose(tf_pose(transforms, link), urdf.get_transform(link, "iiwa_link_0"), atol=1e-9)

    _, markers = by_topic["/markers"][-1]
    by_ns = {m.ns: m for m in markers.markers}
    assert set(by_ns) == {"record/goal", "record/ee_path", "record/object"}
    obj = transforms["object"].transform.translation
    p = by_ns["record/object"].pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], [obj.x, obj.y, obj.z])
    assert 2 <= len(by_ns["record/ee_path"].points) <= steps  # cleared at each reset


def test_plot_of_a_recording(recording: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traj.png"
    assert main(["plot", str(recording), "--out", str(out)]) == 0
    import imageio.v3 as iio

    image = iio.imread(out)
    assert image.shape[0] > 600 and image[..., :3].std() > 20  # drawn, not blank


def test_unwritable_record_path_fails_before_any_work(artifact: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from drl_control.deploy.policy import DeployPolicy

    def no_load(*_a, **_k):
        raise AssertionError("the policy was loaded before the record path was checked")

    monkeypatch.setattr(DeployPolicy, "load", no_load)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path, why in ((blocker / "x.mcap", "is not a directory"), (tmp_path, "is a directory"),
                      (tmp_path / "x.bag", "must end in .mcap")):
        capsys.readouterr()
        assert main(["eval", str(artifact), "--episodes", "1", "--record", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "cannot record to" in err, err


@pytest.mark.parametrize("verb", ["plot", "replay", "view"])
def test_truncated_or_foreign_file_is_one_clear_error(recording: Path, tmp_path: Path, capsys, verb: str) -> None:
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(recording.read_bytes()[:200])  # header only: no complete chunk
    text = tmp_path / "notes.mcap"
    text.write_text("not a recording\n")
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    for bad, why in ((cut, "truncated or corrupt"), (text, "not an MCAP file"), (empty, "not an MCAP file"),
                     (tmp_path / "missing.mcap", "no such file")):
        assert main([verb, str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "Traceback" not in err, err


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from drl_control.record.writer import Recorder
    from drl_control.robot import iiwa14
    spec = iiwa14()
    rec = Recorder(sys.argv[1], start_ns=0)
    rec.set_goal([0.5, 0.0, 0.4])
    for i in range(1_000_000):
        t = i * 40_000_000
        rec.joint_state(t, spec.joint_names, spec.home + 0.001 * i, np.zeros(7))
        rec.command(t, spec.home)
        if i == 400:
            print("written", flush=True)
        if i >= 400:
            time.sleep(0.01)
""")


def test_killed_writer_leaves_a_file_that_reads_up_to_the_kill(tmp_path: Path, capsys) -> None:
    path = tmp_path / "killed.mcap"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    states, times = [], []
    with open(path, "rb") as f:  # the independent reader, sequentially (there is no index)
        decoder = DecoderFactory()
        with pytest.raises(EndOfFile):
            for schema, channel, message in NonSeekingReader(f).iter_messages(log_time_order=False):
                times.append(message.log_time)
                if channel.topic == "/joint_states":
                    states.append(decoder.decoder_for("cdr", schema)(message.data))
    assert len(states) >= 300, "at most the last chunk is lost"
    assert times == sorted(times)
    np.testing.assert_allclose(states[-1].position, iiwa14().home + 0.001 * (len(states) - 1))
    assert main(["plot", str(path)]) == 0  # our tools read it too, and say it was cut short
    assert "cut short" in capsys.readouterr().err


def test_one_file_per_world_for_transfer(tmp_path: Path, capsys) -> None:
    """The transfer verb's hook: check_record_dir up front, then world_recorder + run_episode(hook=...)."""
    import gymnasium as gym

    import drl_control.sim.registration  # noqa: F401 - registers the env ids
    from drl_control.record.episodes import check_record_dir, world_recorder
    from drl_control.sim.rollout import run_episode

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        check_record_dir(tmp_path / "file")
    out = check_record_dir(tmp_path / "transfer")
    assert out.is_dir() and not list(out.iterdir())
    env = gym.make("DrlControl/IiwaReach-v0", max_episode_steps=5)
    try:
        for world in ("ideal", "lbr fri/40ms"):
            with world_recorder(out, world, {"source": "test"}) as hook:
                run_episode(env, lambda _obs: env.action_space.sample(), seed=1, hook=hook)
    finally:
        env.close()
    assert sorted(p.name for p in out.iterdir()) == ["ideal.mcap", "lbr_fri_40ms.mcap"]
    for path in out.iterdir():
        with open(path, "rb") as f:
            reader = make_reader(f)
            counts = reader.get_summary().statistics.channel_message_counts
            meta = {m.name: m.metadata for m in reader.iter_metadata()}
        assert sum(counts.values()) == 1 + 6 * 3 + 5 * 2  # description; 6 states x (js, tf, markers); 5 x (action, episode)
        assert meta["drl_control"]["source"] == "test" and meta["drl_control"]["world"] in ("ideal", "lbr fri/40ms")
