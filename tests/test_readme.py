"""The README and the docs a newcomer reads are true.

- every `bash` block of README.md not marked `<!-- readme-test: skip: reason -->` runs, in order, in
  one fresh working directory, with `.venv/bin/` pointing at this venv and the numbers after
  `--timesteps` / `--episodes` scaled by DRL_CONTROL_README_SCALE (default 0.01, at least 1); it
  fails when a command fails or when anything in the repository changed (a README command that
  writes into the repository root or anywhere in the tree);
- each verb's `--help` (and each `ros` subverb's) ends with an example that parses;
- package.xml declares every ROS package the nodes and launch files import;
- docs/rlzoo/hyperparams.yml agrees with config/sac.yaml and asks for normalization.
"""

from __future__ import annotations

import ast
import math
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip:\s*(.+?)\s*-->")
SCALE = float(os.environ.get("DRL_CONTROL_README_SCALE", "0.01"))
SCALED = re.compile(r"(--timesteps|--episodes)(\s+)(\d+)")
IGNORED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "build"}


def bash_blocks(text: str) -> list[tuple[str, str | None]]:
    """(block, skip reason or None) for each ```bash block, in order."""
    blocks = []
    for match in re.finditer(r"```bash\n(.*?)```", text, re.S):
        before = text[:match.start()].rstrip().splitlines()
        reason = SKIP.search(before[-1]) if before else None
        blocks.append((match.group(1), reason.group(1) if reason else None))
    return blocks


def rewrite(block: str, scale: float = SCALE) -> str:
    bin_dir = str(Path(sys.executable).parent)
    block = block.replace(".venv/bin/", bin_dir + "/")
    return SCALED.sub(lambda m: f"{m.group(1)}{m.group(2)}{max(1, math.ceil(int(m.group(3)) * scale))}", block)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file in the repository but caches, .git and .venv."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                st = path.stat()
            except OSError:
                continue
            state[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return state


def test_rewrite_scales_step_counts_and_finds_the_venv():
    out = rewrite(".venv/bin/drl-control train --timesteps 5000 --episodes 3 --seed 7", scale=0.01)
    assert out == f"{Path(sys.executable).parent}/drl-control train --timesteps 50 --episodes 1 --seed 7"


@pytest.mark.timeout(1800)  # three short trainings with their final evaluations; minutes on a loaded 2-core box
def test_readme_blocks_run_in_a_fresh_directory_and_write_nothing_else(tmp_path):
    blocks = bash_blocks(README.read_text())
    runnable = [b for b, reason in blocks if reason is None]
    assert runnable, "no runnable bash block in README.md"
    assert all(reason.strip() for _, reason in blocks if reason is not None)
    before = tree_state(ROOT)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               ROS_DOMAIN_ID=str(1 + os.getpid() % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    for block in runnable:
        script = rewrite(block)
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env,
                              capture_output=True, text=True)  # bounded by the test's timeout
        assert done.returncode == 0, f"README block failed ({done.returncode}):\n{script}\n{done.stdout[-3000:]}\n" \
                                     f"{done.stderr[-3000:]}"
    changed = {p for p, s in tree_state(ROOT).items() if before.get(p) != s}
    assert not changed, f"README commands wrote into the repository: {sorted(changed)[:20]}"
    assert (work / "runs").is_dir()


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_verb_help_ends_with_an_example_that_parses():
    from drl_control.cli import _parse, build_parser

    parser = build_parser()
    checked = 0
    for verb, sub in _subparsers(parser):
        for name, p in [(verb, sub), *((f"{verb} {n}", s) for n, s in _subparsers(sub))]:
            text = p.format_help().rstrip()
            tail = text.rsplit("\nexample", 1)
            assert len(tail) == 2, f"`drl-control {name} --help` does not end with an example:\n{text}"
            commands = [line.strip() for line in tail[1].splitlines()[1:]]
            assert commands and all(c.startswith(f"drl-control {name}") for c in commands), (name, commands)
            for command in commands:
                args = _parse(shlex.split(command)[1:])  # as `drl-control` parses; exits (fails) if it does not
                assert args.verb == verb
            checked += 1
    assert checked >= 15  # 8 verbs, 8 ros subverbs


def _imported_ros_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    tops = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    # ROS packages: rclpy, launch*, anything with msg/srv/action modules (*_msgs, std_srvs, ...)
    return {t for t in tops if t in ("rclpy", "launch", "launch_ros", "ament_index_python", "rosidl_runtime_py")
            or t.endswith(("_msgs", "_srvs", "_interfaces"))}


def test_package_xml_declares_what_the_nodes_and_launch_files_import():
    root = ET.parse(ROOT / "package.xml").getroot()
    declared = {e.text.strip() for tag in ("exec_depend", "depend") for e in root.iter(tag)}
    sources = [*sorted((ROOT / "drl_control").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]
    needed: dict[str, set[str]] = {}
    for path in sources:
        for package in _imported_ros_packages(path):
            needed.setdefault(package, set()).add(str(path.relative_to(ROOT)))
    assert {"rclpy", "launch", "launch_ros"} <= set(needed)
    missing = {p: sorted(where)[:3] for p, where in needed.items() if p not in declared}
    assert not missing, f"package.xml lacks exec_depend on {missing}"
    # the Python libraries the nodes import, by their rosdep keys
    for key in ("python3-numpy", "python3-yaml", "python3-scipy", "python3-matplotlib"):
        assert key in declared, key


def test_rlzoo_hyperparameters_are_config_sac_and_normalize():
    from drl_control.learn.config import resolve_config

    zoo = yaml.safe_load((ROOT / "docs" / "rlzoo" / "hyperparams.yml").read_text())
    assert set(zoo) == {"DrlControl/IiwaReach-v0", "DrlControl/IiwaPush-v0"}
    for env_id, hp in zoo.items():
        cfg = resolve_config("sac", env_id)
        assert hp["normalize"] is True and cfg["normalize"]["enabled"]
        assert hp["policy"] == "MultiInputPolicy" and hp["replay_buffer_class"] == "HerReplayBuffer"
        for key in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
                    "gradient_steps", "ent_coef"):
            assert hp[key] == cfg["algorithm"][key], (env_id, key)
        her = cfg["her"]
        assert hp["replay_buffer_kwargs"] == (f"dict(goal_selection_strategy='{her['goal_selection_strategy']}', "
                                              f"n_sampled_goal={her['n_sampled_goal']})")
        policy = cfg["policy"]
        assert hp["policy_kwargs"] == f"dict(net_arch={list(policy['net_arch'])}, n_critics={policy['n_critics']})"


def test_readme_timing_names_the_script_and_the_machine():
    text = README.read_text()
    assert "benchmarks/time_readme.py --only demo" in text and "load average" in text
