"""learner_node `~/train` against hostile run_dirs: nothing is written outside the run root, nor
into an existing run unless the goal asks to resume it (issue 14 item 2).

A real learner_node process (no sim workers: every goal here is refused before one is needed);
the test is an action client on a private domain. After every refused goal the files under the
run root and under a directory outside it are exactly as before. `confined_run_dir` itself is
checked with hypothesis over paths built from hostile parts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ros_util import RosHarness, domain_id, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")


from drl_control.ros import names
from drl_control.ros.learner_goals import confined_run_dir
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control_interfaces.action import Train

DOMAIN = domain_id(43)


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under `roots` with its size and mtime (a write anywhere changes it)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                st_ = path.lstat()
                out[str(path)] = (st_.st_size, st_.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    base = tmp_path_factory.mktemp("run_dir_rig")
    root, outside = base / "runs", base / "outside"
    (root / "old" / "checkpoints").mkdir(parents=True)
    (root / "old" / "config.yaml").write_text("algo: sac\n")
    (root / "old" / "checkpoints" / "LATEST").write_text("step_100_0\n")  # names a checkpoint that is not there
    (root / "a_file").write_text("x")
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (base / "logs").mkdir()
    h = RosHarness(DOMAIN, base / "logs")
    learner = h.start("learner_node", "-p", "workers:=['/nobody']", "-p", f"run_root:={root}", name="learner")
    action = ThreadSafeActionClient(h.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    try:
        assert action.wait_for_server(timeout_sec=60), learner.log()
        yield action, learner, root.resolve(), outside.resolve()
    finally:
        h.on_executor(action.destroy)
        h.close()


HOSTILE = [
    ("{outside}/run", [], "not inside"),  # absolute, outside
    ("/tmp/drl_control_escape_run", [], "not inside"),
    ("../escape", [], "'..'"),
    ("sub/../../escape", [], "'..'"),
    ("sub/../inside", [], "'..'"),  # `..` is refused even where it would stay inside
    ("link/run", [], "not inside"),  # a symlink in the root that points outside
    ("link", [], "not inside"),
    (".", [], "not inside"),  # the run root itself
    ("{root}", [], "not inside"),
    ("old", [], "exists; add the override resume=true"),  # an existing run, no resume
    ("{root}/old", ["resume=false"], "exists"),
    ("a_file", [], "not a directory"),
    ("new_run", ["resume=true"], "no run to resume"),  # nothing to resume
    ("old", ["resume=true"], "LATEST"),  # a run whose checkpoint is broken: nothing to resume
    ("", ["resume=true"], "needs the run_dir"),
    ("new_run", ["resume=yes"], "must be true or false"),
]


@pytest.mark.parametrize("run_dir, overrides, reason", HOSTILE)
def test_hostile_run_dir_rejected_and_nothing_written(rig, run_dir, overrides, reason):
    action, learner, root, outside = rig
    run_dir = run_dir.format(root=root, outside=outside)
    before = _tree(root, outside)
    log_before = len(learner.log())
    goal = Train.Goal(algorithm="sac", env_id="DrlControl/IiwaReach-v0", timesteps=100, seed=0, run_dir=run_dir,
                      overrides=["eval.episodes=1", *overrides])
    handle = wait_future(action.send_goal_async(goal), 30)
    assert not handle.accepted, run_dir
    wait_until(lambda: "rejected train goal" in learner.log()[log_before:], 10.0, what="the rejection log line")
    line = next(x for x in learner.log()[log_before:].splitlines() if "rejected train goal" in x)
    assert reason in line, line
    assert _tree(root, outside) == before
    assert learner.alive()


SEGMENTS = st.sampled_from(["..", ".", "a", "b", "link", "old", "a_file", "", "~", "..."])


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(SEGMENTS, min_size=1, max_size=5), absolute=st.booleans(), resume=st.booleans())
def test_confined_run_dir_never_leaves_the_root(tmp_path_factory, parts, absolute, resume):
    base = tmp_path_factory.getbasetemp() / "confine"
    root, outside = base / "runs", base / "outside"
    if not root.exists():
        (root / "old").mkdir(parents=True)
        (root / "a_file").write_text("x")
        outside.mkdir()
        (root / "link").symlink_to(outside, target_is_directory=True)
    run_dir = os.path.join(*parts)
    if absolute:
        run_dir = str(root / run_dir)
    try:
        path = confined_run_dir(root, run_dir, resume)
    except ValueError:
        return
    assert path != root.resolve() and path.is_relative_to(root.resolve())
    assert ".." not in Path(run_dir).parts
    assert not path.exists()  # no existing run without a resumable checkpoint (none here)


def test_parameters_fixed_after_start_but_a_valid_failure_policy(rig):
    """A peer cannot move the run root (or any other start parameter) of a running learner; it may
    switch on_worker_failure (read per goal) between the two policies, and nothing else."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from ros_util import RosClient

    _action, learner, root, outside = rig
    client = RosClient(DOMAIN, "param_probe")
    try:
        def set_one(name: str, value) -> bool:
            request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            return client.call(SetParameters, "/learner_node/set_parameters", request).results[0].successful

        assert not set_one("run_root", str(outside))
        assert not set_one("worker_timeout", 0.001)
        assert not set_one("on_worker_failure", "explode")
        assert set_one("on_worker_failure", "continue") and set_one("on_worker_failure", "pause")
    finally:
        client.close()
    assert learner.alive()
