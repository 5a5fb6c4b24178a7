"""Where the package's data files are (URDF, config, stacks, rviz, robot profiles): one rule.

1. The source tree, when the imported package lives in one (a git checkout, an editable install,
   PYTHONPATH on a worktree): the files beside the code are the ones that go with it.
2. Else the ament index (`share/drl_control` of the prefix on AMENT_PREFIX_PATH that registers
   the package): a colcon build or `pip install` with the prefix on AMENT_PREFIX_PATH.
3. Else the prefix the package was installed into (`<prefix>/lib/pythonX.Y/site-packages/drl_control`
   -> `<prefix>/share/drl_control`), then `sys.prefix`: a plain `pip install`.
No rclpy here (ament_index_python is pure Python and optional).
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

PACKAGE = "drl_control"
_CODE_DIR = Path(__file__).resolve().parent


def _source_tree() -> Path | None:
    root = _CODE_DIR.parent
    return root if (root / "package.xml").is_file() and (root / "setup.py").is_file() else None


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # an optional package: absent in a plain pip install
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, ValueError, OSError):  # not registered / no AMENT_PREFIX_PATH
        return None


@functools.lru_cache(maxsize=1)
def share_dir() -> Path:
    """The directory holding urdf/, config/, rviz/, launch/ (see the module docstring for the order)."""
    source = _source_tree()
    if source is not None:
        return source
    candidates = [_ament_share()]
    if _CODE_DIR.parent.name == "site-packages":  # <prefix>/lib/pythonX.Y/site-packages/drl_control
        candidates.append(_CODE_DIR.parents[3] / "share" / PACKAGE)
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    for candidate in candidates:
        if candidate is not None and (candidate / "package.xml").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates if c is not None)
    raise FileNotFoundError(f"drl_control's data files not found: no source tree beside {_CODE_DIR} and "
                            f"no share/{PACKAGE} in {tried} (is the prefix on AMENT_PREFIX_PATH?)")


def data_path(*parts: str) -> Path:
    """A path under the package's data directory, e.g. data_path("config", "sac.yaml")."""
    return share_dir().joinpath(*parts)


RUNS_ROOT = Path("runs")  # where `train` and `demo` put a run when no output directory is given


def new_output_dir(stem: str, root: str | Path = RUNS_ROOT) -> Path:
    """A directory of its own, created now: `<root>/<stem>_<YYYYmmdd-HHMMSS>[_<n>]`.

    Created with exist_ok=False, so two runs started in the same second never share one.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1000):
        path = root / (base if n == 0 else f"{base}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{root}: could not make a new directory named {base}_<n>")
