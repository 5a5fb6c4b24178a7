"""Issue 5, faults B: bad files given to the CLI verbs never end in a traceback, never run code.

Every corrupt, truncated, mismatched, missing or misplaced file in a run directory (config,
LATEST, each checkpoint file, episodes.csv, eval.json), a deploy artifact and a `--config`
file, given to `train --resume` / `train --config` / `eval` / `export` / `plot`, must give exit
status 2 and exactly one `error:` line, and nothing of it may execute code: each payload below
would create a marker file when unpickled / constructed.

The verbs run in-process through `drl_control.cli.main` (an exception escaping it is what a
user would see as a traceback); a few run as real subprocesses to check stderr end to end.
Counts of variants: see `test_variant_counts` (printed with -s) and docs/FAULTS.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from drl_control.cli import main
from drl_control.learn.checkpoint import latest_checkpoint
from drl_control.learn.config import resolve_config
from drl_control.learn.export import export_run
from drl_control.learn.train import Trainer

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ENV = "DrlControl/IiwaReach-v0"
DRL = str(Path(sys.executable).with_name("drl-control"))
CKPT_FILES = ("state.json", "policy.safetensors", "optimizers.pt", "variables.safetensors", "replay_buffer.npz",
              "normalizer.json")
COUNTS: dict[str, int] = {}


class _Payload:
    """Unpickling this creates the marker file (what an attacker's code would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- fixtures: one real run + its artifact, copied per variant -------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pristine")
    cfg = resolve_config("sac", ENV, overrides=["algorithm.learning_starts=60", "algorithm.buffer_size=2000",
                                                "eval.episodes=1", "train.checkpoint_every=100000"])
    cfg["total_timesteps"] = 100
    Trainer(cfg, root / "run").train()
    export_run(root / "run", root / "art")
    return root / "run", root / "art"


@pytest.fixture
def copies(pristine, tmp_path) -> tuple[Path, Path]:
    run, art = tmp_path / "run", tmp_path / "art"
    shutil.copytree(pristine[0], run)
    shutil.copytree(pristine[1], art)
    return run, art


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run a verb in-process; an escaping exception would be a user-visible traceback."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except BaseException as exc:  # noqa: BLE001 - exactly what must never happen
        pytest.fail(f"{argv[0]} let {type(exc).__name__} escape: {exc}")
    return rc, capsys.readouterr().err


def _assert_refused(argv: list[str], capsys, expect: str | None = None) -> str:
    rc, err = _cli(argv, capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert rc == 2, f"{argv}: exit {rc}, stderr: {err[-1500:]}"
    assert len(errors) == 1, err[-1500:]
    assert "Traceback" not in err
    if expect is not None:
        assert expect in errors[0], errors[0]
    return errors[0]


def _count(kind: str, n: int = 1) -> None:
    COUNTS[kind] = COUNTS.get(kind, 0) + n


# --- file mutations -----------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])


def _garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(7).bytes(max(64, p.stat().st_size)))


def _directory(p: Path) -> None:
    p.unlink()
    p.mkdir()
    (p / "x").write_text("x")


def _missing(p: Path) -> None:
    p.unlink()


def _flip_middle(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "empty": _empty, "truncated": _truncate, "garbage": _garbage, "directory": _directory, "missing": _missing,
    "byte-flip": _flip_middle,
}


def _verbs(run: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", str(run), "--episodes", "1"],
        "export": ["export", str(run), str(tmp / "out")],
        "resume": ["train", "--resume", str(run), "--timesteps", "150"],
    }


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("target", ["config.yaml", "LATEST", *CKPT_FILES])
def test_bad_run_files_are_refused(copies, tmp_path: Path, capsys, target: str, mutation: str) -> None:
    run, _ = copies
    if target == "config.yaml":
        path = run / "config.yaml"
    elif target == "LATEST":
        path = run / "checkpoints" / "LATEST"
    else:
        path = latest_checkpoint(run) / target
    MUTATIONS[mutation](path)
    for verb, argv in _verbs(run, tmp_path).items():
        if mutation == "byte-flip" and target == "config.yaml":
            # a flipped byte may still be a valid config: then the verb works; it must not crash
            rc, err = _cli(argv, capsys)
            assert rc in (0, 2) and "Traceback" not in err
        else:
            _assert_refused(argv, capsys)
        _count(f"run file x mutation x verb ({verb})")


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda c: c.replace("algo: sac", "algo: td3"), "td3"),
        (lambda c: c.replace("- 256\n", "- 32\n", 1) if "- 256\n" in c else c.replace("net_arch:", "net_arch: [32]\n  x:"),
         None),
        (lambda c: c + "bogus_key: 1\n", "unknown config key 'bogus_key'"),
        (lambda c: c.replace("gamma: ", "gamma: high #"), "algorithm.gamma"),
        (lambda c: c + "n_envs: two\n", "n_envs"),
        (lambda c: c + "foo: [unclosed\n", "not valid YAML"),
        (lambda c: "- just\n- a list\n", "expected a mapping"),
    ],
    ids=["other-algo", "other-net", "unknown-key", "wrong-type", "wrong-type-top", "syntax", "not-mapping"],
)
def test_mismatched_or_invalid_run_config(copies, tmp_path: Path, capsys, edit, expect) -> None:
    run, _ = copies
    path = run / "config.yaml"
    path.write_text(edit(path.read_text()))
    for argv in _verbs(run, tmp_path).values():
        _assert_refused(argv, capsys, expect)
        _count("run config edits x verbs")


def test_resume_with_other_buffer_or_envs_is_refused(copies, capsys) -> None:
    run, _ = copies
    _assert_refused(["train", "--resume", str(run), "--timesteps", "150", "algorithm.buffer_size=3000"], capsys,
                    "does not fit")
    _assert_refused(["train", "--resume", str(run), "--timesteps", "150", "--n-envs", "2"], capsys, "does not fit")
    _assert_refused(["train", "--resume", str(run), "--timesteps", "150", "--env", "DrlControl/IiwaPush-v0"], capsys,
                    "differs")
    _count("resume mismatches", 3)


@pytest.mark.parametrize("verb", ["eval", "export", "plot", "resume"])
@pytest.mark.parametrize("what", ["missing", "file", "empty-dir", "no-checkpoint"])
def test_bad_run_directories(tmp_path: Path, capsys, copies, verb: str, what: str) -> None:
    run, _ = copies
    if what == "missing":
        target = tmp_path / "nope"
    elif what == "file":
        target = tmp_path / "file"
        target.write_text("x")
    elif what == "empty-dir":
        target = tmp_path / "empty"
        target.mkdir()
    else:
        shutil.rmtree(run / "checkpoints")
        (run / "episodes.csv").unlink()
        target = run
    argv = {"eval": ["eval", str(target)], "export": ["export", str(target), str(tmp_path / "o")],
            "plot": ["plot", str(target)], "resume": ["train", "--resume", str(target), "--timesteps", "150"]}[verb]
    _assert_refused(argv, capsys)
    _count("bad run directories x verbs")


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"env_step,episode\n1,2\n", "malformed episodes.csv"),
        (b"env_step,episode,return,length,success\nabc,1,x,2,1\n", "malformed episodes.csv"),
        (b"\x00\x01\xff\xfe" * 100, "malformed episodes.csv"),
        (b"env_step,episode,return,length,success\n1\0,1,2,3,1\n", "malformed episodes.csv"),
        (None, "episodes.csv"),
    ],
    ids=["missing-columns", "not-numbers", "binary", "nul-byte", "directory"],
)
def test_plot_bad_episodes_csv(copies, capsys, content: bytes | None, expect: str) -> None:
    run, _ = copies
    path = run / "episodes.csv"
    if content is None:
        _directory(path)
    else:
        path.write_bytes(content)
    _assert_refused(["plot", str(run)], capsys, expect)
    _count("episodes.csv variants")


@pytest.mark.parametrize("content", [b"", b"{", b"[1, 2]", b"\xff\xfe"])
def test_export_bad_eval_json(copies, tmp_path: Path, capsys, content: bytes) -> None:
    run, _ = copies
    (run / "eval.json").write_bytes(content)
    _assert_refused(["export", str(run), str(tmp_path / "o")], capsys, "eval.json")
    _count("eval.json variants")


def test_export_onto_a_file_is_refused(copies, tmp_path: Path, capsys) -> None:
    run, _ = copies
    (tmp_path / "o").write_text("precious")
    _assert_refused(["export", str(run), str(tmp_path / "o")], capsys, "not a directory")
    assert (tmp_path / "o").read_text() == "precious"
    _count("export targets")


# --- artifacts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("target", ["policy.json", "policy.safetensors"])
def test_bad_artifact_files_are_refused(copies, capsys, target: str, mutation: str) -> None:
    _, art = copies
    MUTATIONS[mutation](art / target)
    argv = ["eval", str(art), "--episodes", "1"]
    if mutation == "byte-flip" and target == "policy.json":
        rc, err = _cli(argv, capsys)  # may still be a valid policy.json
        assert rc in (0, 2) and "Traceback" not in err
    else:
        _assert_refused(argv, capsys)
    _count("artifact file x mutation")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_policy_json_structure_fuzz(pristine, tmp_path_factory, data) -> None:
    """Replace any subtree of policy.json by any JSON value: ArtifactError or a working policy."""
    from drl_control.deploy.artifact import ArtifactError
    from drl_control.deploy.policy import DeployPolicy

    art = tmp_path_factory.mktemp("fuzz") / "art"
    shutil.copytree(pristine[1], art)
    meta = json.loads((art / "policy.json").read_text())
    paths = [p for p in _paths(meta) if p]
    path = data.draw(st.sampled_from(paths))
    node = meta
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = data.draw(_JSON)
    (art / "policy.json").write_text(json.dumps(meta))
    try:
        policy = DeployPolicy.load(art)
    except ArtifactError:
        _count("policy.json structure fuzz (refused)")
        return
    sizes = dict(zip(policy.keys, policy.sizes, strict=True))
    try:
        policy.act({k: np.zeros(n, dtype=np.float32) for k, n in sizes.items()})
    except (KeyError, ValueError):
        pass  # a clear refusal of this observation, as at the controller
    _count("policy.json structure fuzz (loaded)")


# --- --config files ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("algorithm: {gamma: [1\n", "not valid YAML"),
        ("algorithm:\n  gamma: 0.9\n   tau: 1\n", "not valid YAML"),
        ("\tfoo: 1\n", "not valid YAML"),
        ("", "empty file"),
        ("# only a comment\n", "empty file"),
        ("[1, 2]\n", "expected a mapping"),
        ("42\n", "expected a mapping"),
        ("algorithm: 3\n", "expected a mapping"),
        ("algorithm: {gama: 0.9}\n", "unknown config key algorithm.gama"),
        ("algorithm: {gamma: high}\n", "invalid value for algorithm.gamma"),
        ("algorithm: {batch_size: 2.5}\n", "algorithm.batch_size"),
        ("algorithm: {learning_rate: -1}\n", "algorithm.learning_rate"),
        ("algorithm: {learning_rate: .nan}\n", "algorithm.learning_rate"),
        ("policy: {net_arch: [64, -1]}\n", "policy.net_arch"),
        ("policy: {activation: sigmoid}\n", "policy.activation"),
        ("her: {enabled: maybe}\n", "her.enabled"),
        ("train: {checkpoint_every: 0}\n", "train.checkpoint_every"),
        ("normalize: {clip: true}\n", "normalize.clip"),
        ("algo: ppo\n", "config is for algo"),
        ("seed: -1\n", "seed"),
        ("n_envs: '2'\n", "n_envs"),
        ("nonsense: 1\n", "unknown config key 'nonsense'"),
        ("? [a, b]\n: 1\n", "not valid YAML"),
        ("a: !!python/object/apply:builtins.open ['MARKER', 'w']\n", "not valid YAML"),
        ("!!python/object/new:os.system ['touch MARKER']\n", "not valid YAML"),
        (b"\xff\xfe\x00garbage", "unreadable"),
        (None, "is a directory"),
        ("MISSING", "not found"),
    ],
)
def test_bad_config_files(tmp_path: Path, capsys, content, expect: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "user.yaml"
    if content is None:
        path.mkdir()
    elif content == "MISSING":
        pass
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("MARKER", str(marker)))
    argv = ["train", "--algo", "sac", "--env", ENV, "--timesteps", "100", "--out", str(tmp_path / "r"),
            "--config", str(path)]
    _assert_refused(argv, capsys, expect)
    assert not marker.exists()
    _count("--config files")


# --- code execution: a payload in every file we load ----------------------------------------------

def _torch_zip_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"actor.optimizer": _Payload(marker)}, buf)
    return buf.getvalue()


def _npz_object_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, pos=np.asarray(0), evil=np.array([_Payload(marker)], dtype=object))
    return buf.getvalue()


def _npy_in_zip_pickle(marker: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("buffer_size.npy", pickle.dumps(_Payload(marker)))
    return buf.getvalue()


PAYLOADS: dict[str, Callable[[Path], bytes]] = {
    "raw-pickle": lambda m: pickle.dumps(_Payload(m)),
    "torch-zip-pickle": _torch_zip_payload,
    "npz-object-array": _npz_object_payload,
    "npz-member-pickle": _npy_in_zip_pickle,
}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("target", [*CKPT_FILES, "LATEST", "config.yaml", "episodes.csv", "eval.json",
                                    "art/policy.json", "art/policy.safetensors"])
def test_no_payload_ever_runs(copies, tmp_path: Path, capsys, target: str, payload: str) -> None:
    run, art = copies
    marker = tmp_path / "pwned"
    blob = PAYLOADS[payload](marker)
    if target.startswith("art/"):
        path = art / target[4:]
        path.write_bytes(blob)
        if target.endswith(".safetensors"):  # the attacker fixes the recorded SHA-256 too
            meta = json.loads((art / "policy.json").read_text())
            meta["tensors"]["sha256"] = _sha(path)
            (art / "policy.json").write_text(json.dumps(meta))
        argvs = [["eval", str(art), "--episodes", "1"]]
    else:
        if target in CKPT_FILES:
            ckpt = latest_checkpoint(run)
            path = ckpt / target
            path.write_bytes(blob)
            if target != "state.json":  # the attacker fixes state.json's SHA-256 too
                state = json.loads((ckpt / "state.json").read_text())
                state["files"][target] = _sha(path)
                (ckpt / "state.json").write_text(json.dumps(state))
        else:
            path = (run / "checkpoints" / "LATEST") if target == "LATEST" else run / target
            path.write_bytes(blob)
        argvs = list(_verbs(run, tmp_path).values()) + [["plot", str(run)]]
    for argv in argvs:
        rc, err = _cli(argv, capsys)
        assert not marker.exists(), f"{target}: payload ran under {argv[0]}"
        assert "Traceback" not in err
        # files a verb does not read (eval.json for eval, episodes.csv for export) leave it working
        assert rc in (0, 2), err
        _count("payload x file x verb")
    assert not marker.exists()


# --- end to end: real processes, real stderr ---------------------------------------------------------

@pytest.mark.parametrize("case", ["corrupt-checkpoint", "bad-yaml", "pickle-artifact"])
def test_subprocess_stderr_is_one_line(copies, tmp_path: Path, case: str) -> None:
    run, art = copies
    if case == "corrupt-checkpoint":
        _truncate(latest_checkpoint(run) / "replay_buffer.npz")
        argv = ["train", "--resume", str(run), "--timesteps", "150"]
    elif case == "bad-yaml":
        (tmp_path / "u.yaml").write_text("algorithm: {gamma: [\n")
        argv = ["train", "--algo", "sac", "--env", ENV, "--timesteps", "10", "--out", str(tmp_path / "r"),
                "--config", str(tmp_path / "u.yaml")]
    else:
        (art / "policy.safetensors").write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
        argv = ["eval", str(art)]
    proc = subprocess.run([DRL, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "pybullet build time" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"drl-control {argv[0]}: error: "), proc.stderr
    assert not (tmp_path / "pwned").exists()
    _count("subprocess end-to-end")


@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_byte_damage_to_checkpoint_files(pristine, tmp_path_factory, data) -> None:
    """Truncate at, or overwrite bytes at, random offsets of random checkpoint files: always refused."""
    run = tmp_path_factory.mktemp("dmg") / "run"
    shutil.copytree(pristine[0], run)
    ckpt = latest_checkpoint(run)
    name = data.draw(st.sampled_from([n for n in CKPT_FILES if n != "state.json"]))
    path = ckpt / name
    raw = bytearray(path.read_bytes())
    offset = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw = raw[:offset]
    else:
        chunk = data.draw(st.binary(min_size=1, max_size=16))
        if bytes(raw[offset:offset + len(chunk)]) == chunk:
            return
        raw[offset:offset + len(chunk)] = chunk
    path.write_bytes(bytes(raw))
    rc = main(["eval", str(run), "--episodes", "1"])  # an escaping exception fails the test
    assert rc == 2
    _count("random byte damage (eval)")


def test_variant_counts() -> None:
    """Runs last in this module (file order): prints how many variants were tried."""
    print("\nfault variants tried:", json.dumps(COUNTS, indent=1), "total", sum(COUNTS.values()))
