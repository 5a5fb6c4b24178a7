"""drl_control.paths: one rule for the data files (URDF, config, stacks, rviz, robot profiles).

From a source tree (a checkout, an editable install, PYTHONPATH on a worktree) the files beside the
code are used; installed non-editable, the ament index's share/drl_control (or the install prefix's).
The second test installs the package for real into a temporary prefix and runs a verb and a node
from another working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import drl_control
from drl_control import paths
from drl_control.deploy.profiles import profiles_path
from drl_control.learn.config import config_dir
from drl_control.robot import arm_urdf_path, urdf_dir
from drl_control.ros.stack import stacks_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_source_tree_wins_where_the_code_is_imported_from_it() -> None:
    assert Path(drl_control.__file__).resolve().parent == ROOT / "drl_control"
    assert paths.share_dir() == ROOT
    assert urdf_dir() == ROOT / "urdf" and arm_urdf_path().is_file()
    assert config_dir() == ROOT / "config" and (config_dir() / "sac.yaml").is_file()
    assert profiles_path() == ROOT / "config" / "robot_profiles.yaml"
    assert stacks_dir() == ROOT / "config" / "stacks"
    assert paths.data_path("rviz", "iiwa14.rviz").is_file()


def test_new_output_dirs_never_collide(tmp_path: Path) -> None:
    made = [paths.new_output_dir("demo", tmp_path) for _ in range(5)]
    assert len(set(made)) == 5 and all(p.is_dir() and p.parent == tmp_path for p in made)


def _copy_source(dest: Path) -> Path:
    """The package's sources without build outputs (pip would write build/ into the tree it builds)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", "tests", "benchmarks", "docs", "ros2_ws")
    return Path(shutil.copytree(ROOT, dest, ignore=ignore))


def _install_wheel(wheel: Path, prefix: Path) -> Path:
    """Install a wheel into `prefix` as pip lays it out (code to site-packages, data files to the prefix).

    Unpacked here rather than by `pip install --prefix`, which would first uninstall the editable
    drl_control of the venv the tests run in.
    """
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            head, _, rest = name.partition("/")
            if head.endswith(".data"):  # <dist>.data/data/share/drl_control/... -> <prefix>/share/...
                kind, _, rel = rest.partition("/")
                if kind == "data":
                    (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
                    (prefix / rel).write_bytes(z.read(name))
            elif not name.endswith("/"):
                (site / name).parent.mkdir(parents=True, exist_ok=True)
                (site / name).write_bytes(z.read(name))
    return site


def test_a_non_editable_install_runs_from_another_directory(tmp_path: Path) -> None:
    src = _copy_source(tmp_path / "src")
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "wheel"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("drl_control-*.whl")
    site = _install_wheel(wheel, prefix)
    share = prefix / "share" / "drl_control"
    assert (share / "package.xml").is_file() and (share / "urdf" / "iiwa14.urdf").is_file()
    shutil.rmtree(src)  # nothing may come from the source tree any more
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site),
               AMENT_PREFIX_PATH=os.pathsep.join(filter(None, [str(prefix), os.environ.get("AMENT_PREFIX_PATH")])))
    probe = ("import drl_control, drl_control.paths as p; from drl_control.robot import iiwa14; "
             "print(drl_control.__file__); print(p.share_dir()); print(iiwa14().n_joints)")
    for ament in (env["AMENT_PREFIX_PATH"], ""):  # ament index, then the install prefix's share/
        out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=dict(env, AMENT_PREFIX_PATH=ament),
                             capture_output=True, text=True, timeout=120, check=True).stdout.split()
        assert Path(out[0]).is_relative_to(site), out
        assert Path(out[1]) == share and out[2] == "7", out
    expert = subprocess.run([sys.executable, "-m", "drl_control.cli", "expert", "--env", "DrlControl/IiwaReach-v0",
                             "--episodes", "1"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=180)
    assert expert.returncode == 0, expert.stderr[-2000:]
    assert "success" in expert.stdout
    node = subprocess.run([sys.executable, "-m", "drl_control.ros.sim_node", "--help"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=180)
    assert node.returncode == 0, node.stderr[-2000:]
    assert "num_envs" in node.stdout
    assert not any(elsewhere.iterdir())  # nothing written into the working directory
