"""Stack descriptions: the node graph of a launch, in ONE YAML file (config/stacks/<name>.yaml).

Read by `launch/<name>.launch.py` (launch_ros Node actions, for a full ROS 2 install) and by
`drl-control launch <name> [arg:=value ...]` (real processes on this machine, no launch_ros).

Format (see config/stacks/train.yaml):

    description: one line
    args:                          # launch arguments, all strings, with defaults
      env_id: {default: DrlControl/IiwaReach-v0, description: ...}
    nodes:
      - executable: sim_node       # a console script of `package`
        package: drl_control       # default drl_control
        name: sim_node             # node name (default: executable)
        namespace: $(item)         # default "/"
        for_each: $(arg workers)   # optional: one node per item of a YAML list; $(item) is the item
        if: $(arg sim)             # optional: skip unless true/1/yes
        optional: true             # optional: an external package that may be missing (skipped, logged)
        parameters: {env_id: $(arg env_id), seed: 0}
        remappings: {markers: sim_markers}
        arguments: [-d, $(share)/rviz/drl_control.rviz]   # extra argv before --ros-args

Substitutions, innermost first: `$(arg NAME)`, `$(item)`, `$(index)`, `$(share)` (this package's
data directory: the source tree or share/drl_control), `$(file PATH)` (a file's text).
A parameter value that is a string after substitution is read as YAML (like `-p k:=v`), so
`"[/sim0, /sim1]"` becomes a list and `"4"` an integer.

No rclpy here: pure data, importable by a launch file and by the CLI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drl_control.errors import UserError
from drl_control.paths import data_path, share_dir
from drl_control.safe_io import DataError, load_yaml_text

PACKAGE = "drl_control"
_SUB = re.compile(r"\$\((\w+)(?:\s+([^()$]*))?\)")
_NODE_KEYS = {"executable", "package", "name", "namespace", "for_each", "if", "optional", "parameters",
              "remappings", "arguments"}


class StackError(UserError, ValueError):
    """A stack file or a launch argument is invalid; the message names it."""


def stacks_dir() -> Path:
    return data_path("config", "stacks")


def available_stacks() -> list[str]:
    return sorted(p.stem for p in stacks_dir().glob("*.yaml"))


@dataclass
class NodeSpec:
    """One node to start, everything resolved."""

    package: str
    executable: str
    name: str
    namespace: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    optional: bool = False

    @property
    def label(self) -> str:
        ns = self.namespace.rstrip("/")
        return f"{ns}/{self.name}" if ns else self.name


@dataclass
class Stack:
    name: str
    description: str
    args: dict[str, dict[str, Any]]
    nodes: list[dict[str, Any]]

    def defaults(self) -> dict[str, str]:
        return {k: str(v.get("default", "")) for k, v in self.args.items()}

    def resolve(self, overrides: Mapping[str, str] | None = None) -> list[NodeSpec]:
        """The node list for these argument values (unknown arguments are an error)."""
        values = self.defaults()
        for key, value in (overrides or {}).items():
            if key not in values:
                raise StackError(f"stack {self.name}: unknown argument {key!r} (known: {', '.join(values) or 'none'})")
            values[key] = str(value)
        out: list[NodeSpec] = []
        for i, node in enumerate(self.nodes):
            where = f"stack {self.name}, node {i} ({node.get('executable')})"
            items: list[Any] = [None]
            if "for_each" in node:
                parsed = _yaml_value(substitute(str(node["for_each"]), values, where=where))
                if not isinstance(parsed, list):
                    raise StackError(f"{where}: for_each must give a list, got {parsed!r}")
                items = parsed
            for index, item in enumerate(items):
                local = {"item": "" if item is None else str(item), "index": str(index)}
                sub = lambda v, _l=local, _w=where: substitute(v, values, _l, where=_w)  # noqa: E731
                if "if" in node and not _truthy(sub(str(node["if"]))):
                    continue
                executable = sub(str(node["executable"]))
                out.append(NodeSpec(
                    package=sub(str(node.get("package", PACKAGE))),
                    executable=executable,
                    name=sub(str(node.get("name", executable))),
                    namespace=_namespace(sub(str(node.get("namespace", "/")))),
                    parameters={str(k): _resolve_value(v, sub) for k, v in (node.get("parameters") or {}).items()},
                    remappings={sub(str(k)): sub(str(v)) for k, v in (node.get("remappings") or {}).items()},
                    arguments=[sub(str(a)) for a in node.get("arguments") or []],
                    optional=bool(node.get("optional", False)),
                ))
        return out


def _namespace(ns: str) -> str:
    ns = "/" + ns.strip().strip("/")
    return ns


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _yaml_value(text: str) -> Any:
    try:
        return load_yaml_text(text, "value") if text.strip() else ""
    except DataError:
        return text


def _resolve_value(value: Any, sub) -> Any:
    if isinstance(value, str):
        return _yaml_value(sub(value)) if "$(" in value else value
    if isinstance(value, list):
        return [_resolve_value(v, sub) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_value(v, sub) for k, v in value.items()}
    return value


def substitute(text: str, args: Mapping[str, str], local: Mapping[str, str] | None = None, *,
               where: str = "stack") -> str:
    """Expand $(...) substitutions, innermost first."""
    local = local or {}

    def one(match: re.Match) -> str:
        kind, arg = match.group(1), (match.group(2) or "").strip()
        if kind == "arg":
            if arg not in args:
                raise StackError(f"{where}: $(arg {arg}) is not a declared argument")
            return args[arg]
        if kind in ("item", "index"):
            if kind not in local or (kind == "item" and not local[kind]):
                raise StackError(f"{where}: $({kind}) outside a for_each node")
            return local[kind]
        if kind == "share":
            return str(share_dir())
        if kind == "file":
            path = Path(arg)
            if not path.is_file():
                raise StackError(f"{where}: $(file {arg}): no such file")
            return path.read_text()
        raise StackError(f"{where}: unknown substitution $({kind})")

    for _ in range(20):
        new = _SUB.sub(one, text)
        if new == text:
            return new
        text = new
    raise StackError(f"{where}: substitutions nest too deeply in {text[:80]!r}")


def load_stack(name_or_path: str | Path) -> Stack:
    """A stack by name (config/stacks/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = stacks_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"stack {name_or_path!r} not found (available: {', '.join(available_stacks())})")
    data = load_yaml_text(path.read_text(), str(path)) or {}
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise StackError(f"{path}: expected a mapping with a 'nodes' list")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise StackError(f"{path}: 'args' must be a mapping of name -> {{default, description}}")
    args = {k: (v if isinstance(v, dict) else {"default": v}) for k, v in args.items()}
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or "executable" not in node:
            raise StackError(f"{path}: node {i} needs an 'executable'")
        unknown = set(node) - _NODE_KEYS
        if unknown:
            raise StackError(f"{path}: node {i} ({node['executable']}): unknown keys {sorted(unknown)}")
    return Stack(name=path.stem, description=str(data.get("description", "")), args=args, nodes=data["nodes"])


# --- command lines (drl-control launch) --------------------------------------------------------


def format_param(value: Any) -> str:
    """A parameter value as `-p name:=VALUE` expects it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_param(v) for v in value) + "]"
    text = str(value)
    if not text:
        return "''"
    if isinstance(_yaml_value(text), str) and _yaml_value(text) == text and "\n" not in text:
        return text
    return "'" + text.replace("'", "''") + "'"


def ros_args(node: NodeSpec) -> list[str]:
    """`--ros-args ...` of a node: namespace, name, remappings, parameters."""
    out = ["--ros-args", "-r", f"__ns:={node.namespace}", "-r", f"__node:={node.name}"]
    for src, dst in node.remappings.items():
        out += ["-r", f"{src}:={dst}"]
    for key, value in node.parameters.items():
        out += ["-p", f"{key}:={format_param(value)}"]
    return out


# --- launch_ros (ros2 launch, full ROS 2 installs) ---------------------------------------------


def launch_description(stack_name: str) -> Any:
    """A launch.LaunchDescription of a stack: its args declared, its nodes as launch_ros Nodes.

    launch/<name>.launch.py is just `generate_launch_description = lambda: launch_description(name)`.
    Nodes are built in an OpaqueFunction, once the argument values are known (for_each, if).
    """
    # launch / launch_ros exist only in a full ROS 2 install (not in the wheels): imported when used
    from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    stack = load_stack(stack_name)

    def package_installed(package: str) -> bool:
        try:
            from ament_index_python.packages import get_package_prefix

            get_package_prefix(package)
            return True
        except Exception:  # noqa: BLE001 - PackageNotFoundError or no ament index
            return False

    def nodes(context: Any) -> list[Any]:
        values = {name: LaunchConfiguration(name).perform(context) for name in stack.args}
        actions: list[Any] = []
        for spec in stack.resolve(values):
            if spec.optional and not package_installed(spec.package):
                actions.append(LogInfo(msg=f"skipping {spec.label}: package {spec.package} is not installed"))
                continue
            actions.append(Node(
                package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                parameters=[spec.parameters] if spec.parameters else [],
                remappings=list(spec.remappings.items()), arguments=list(spec.arguments), output="screen",
            ))
        return actions

    declared = [DeclareLaunchArgument(name, default_value=str(spec.get("default", "")),
                                      description=str(spec.get("description", "")))
                for name, spec in stack.args.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])


# --- running a stack as processes (drl-control launch) ----------------------------------------


def node_command(node: NodeSpec) -> list[str] | None:
    """argv of a node, or None when its executable is not installed here.

    drl_control's nodes run as `python -m drl_control.ros.<executable>` with this interpreter (the
    venv's); other packages' executables are looked up like `ros2 run` does (AMENT_PREFIX_PATH
    lib/<package>/<executable>), then on PATH.
    """
    if node.package == PACKAGE:
        module = f"{PACKAGE}.ros.{node.executable}"
        if importlib.util.find_spec(module) is not None:
            return [sys.executable, "-m", module, *node.arguments, *ros_args(node)]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        exe = Path(prefix) / "lib" / node.package / node.executable
        if exe.is_file() and os.access(exe, os.X_OK):
            return [str(exe), *node.arguments, *ros_args(node)]
    exe = shutil.which(node.executable)
    if exe:
        return [exe, *node.arguments, *ros_args(node)]
    return None


class StackRunner:
    """Start the nodes of a stack, prefix their output, stop them all on request.

    stop(): SIGINT to every child, wait up to `grace` seconds, then SIGTERM, then SIGKILL.
    """

    def __init__(self, nodes: list[NodeSpec], out: Any = None, grace: float = 10.0) -> None:
        self.nodes = nodes
        self.out = out or sys.stdout
        self.grace = grace
        self.procs: list[tuple[NodeSpec, Any]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stopping = False
        self.failed: list[str] = []

    def log(self, line: str, label: str = "launch") -> None:
        with self._lock:
            print(f"[{label}] {line}", file=self.out, flush=True)

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for node in self.nodes:
            cmd = node_command(node)
            if cmd is None:
                if node.optional:
                    self.log(f"skipping {node.label}: executable {node.executable!r} of package "
                             f"{node.package!r} is not installed here (optional)")
                    continue
                self.stop()
                raise StackError(f"{node.label}: executable {node.executable!r} of package {node.package!r} "
                                 "not found (not installed, or not on AMENT_PREFIX_PATH/PATH)")
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs.append((node, proc))
            self.log(f"started {node.label} (pid {proc.pid}): {' '.join(cmd)}")
            thread = threading.Thread(target=self._pump, args=(node, proc), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, node: NodeSpec, proc: Any) -> None:
        for raw in iter(proc.stdout.readline, b""):
            self.log(raw.decode(errors="replace").rstrip("\n"), node.label)
        proc.stdout.close()
        code = proc.wait()
        if self.stopping and code in (0, -2, 130, -15, 143):
            self.log(f"{node.label} stopped (status {code})")
        else:
            self.log(f"{node.label} exited with status {code}")
            if code != 0:
                self.failed.append(node.label)

    def running(self) -> list[NodeSpec]:
        return [node for node, proc in self.procs if proc.poll() is None]

    def wait(self, stop_event: Any, poll: float = 0.1) -> None:
        """Until `stop_event` is set or every node has exited."""
        while not stop_event.wait(poll):
            if self.procs and not self.running():
                self.log("all nodes exited")
                return

    def stop(self) -> None:
        self.stopping = True
        alive = [(n, p) for n, p in self.procs if p.poll() is None]
        if alive:
            self.log(f"stopping {len(alive)} node(s): SIGINT")
        for _, proc in alive:
            proc.send_signal(signal.SIGINT)
        for sig, wait_s in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 3.0)):
            deadline = time.monotonic() + wait_s
            for node, proc in alive:
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    self.log(f"{node.label} still running after {wait_s:g} s: {signal.Signals(sig).name}")
                    proc.send_signal(sig)
            alive = [(n, p) for n, p in alive if p.poll() is None]
        for _node, proc in alive:
            proc.wait()
        for thread in self._threads:
            thread.join(timeout=2.0)


def launch_cli(stack: str | None, assignments: list[str], *, dry_run: bool = False, list_only: bool = False,
               grace: float = 10.0) -> int:
    """`drl-control launch STACK [arg:=value ...]`: run a stack until Ctrl-C/SIGTERM."""
    if list_only or stack is None:
        for name in available_stacks():
            s = load_stack(name)
            print(f"{name}: {s.description}")
            for arg, spec in s.args.items():
                print(f"    {arg}:={spec.get('default', '')}  {spec.get('description', '')}")
        return 0
    values: dict[str, str] = {}
    for item in assignments:
        if ":=" not in item:
            raise StackError(f"launch argument {item!r} is not of the form name:=value")
        key, value = item.split(":=", 1)
        values[key.strip()] = value
    nodes = load_stack(stack).resolve(values)
    if dry_run:
        for node in nodes:
            cmd = node_command(node)
            print(f"{node.label}: " + (" ".join(cmd) if cmd else "(not installed" + (", optional)" if node.optional
                                                                                    else ")")))
        return 0
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # second signal: skip the grace period
            runner.grace = 0.5
        stop.set()

    runner = StackRunner(nodes, grace=grace)
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner.start()
        runner.log(f"stack {stack}: {len(runner.procs)} node(s) running; Ctrl-C stops them")
        runner.wait(stop)
    finally:
        runner.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 1 if runner.failed else 0


def launch_verb(args: Any) -> int:
    """`drl-control launch` handler: the options cli.py parsed."""
    return launch_cli(args.stack, list(args.assignments), dry_run=args.dry_run, list_only=args.list,
                      grace=args.grace)
