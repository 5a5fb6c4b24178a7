"""Issue 5, faults B: bad files given to the CLI verbs never end in a traceback, never run code.

Every corrupt, truncated, mismatched, missing or misplaced file in a run directory (config,
LATEST, each checkpoint file, episodes.csv, eval.json), a deploy artifact and a `--config`
file, given to `train --resume` / `train --config` / `eval` / `export` / `plot`, must give exit
status 2 and exactly one `error:` line, and nothing of it may execute code: each payload below
would create a marker file when unpickled / constructed.

The verbs run in-process through `drl_control.cli.main` (an exception escaping it is what a
user would see as a traceback); a few run as real subprocesses to check stderr end to end.
Issue 14 (hostile files): YAML aliases, oversized/deep/non-finite/absurd config values, 200,000-deep
JSON in every JSON file read, `module:Id` env ids, non-float weights, an existing run as `--out`.
Counts of variants: `test_variant_counts` checks them (and prints them with -s); docs/FAULTS.md.
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from drl_control.cli import main
from drl_control.learn.checkpoint import latest_checkpoint
from drl_control.learn.config import resolve_config
from drl_control.learn.export import export_run
from drl_control.learn.train import Trainer

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
        ("seed: " + "9" * 5000 + "\n", "not valid YAML"),  # no Python int of that size (4,300 digits)
        ("seed: " + "9" * 4000 + "\n", "invalid value for seed"),
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


# --- issue 14: hostile configs, JSON, env ids, weights, run directories -----------------------------

ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdef", "bcdefg"))


@pytest.mark.parametrize("where", ["config-file", "override"])
def test_yaml_alias_bomb_is_refused(tmp_path: Path, capsys, where: str) -> None:
    """7 nested aliases in a few hundred bytes: refused as written, never expanded (was 1.2 GB)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    argv = ["train", "--algo", "sac", "--env", ENV, "--timesteps", "100", "--out", str(tmp_path / "r")]
    if where == "config-file":
        (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
        argv += ["--config", str(tmp_path / "bomb.yaml")]
    else:
        argv += ["algorithm.policy_kwargs=" + "{" + ALIAS_BOMB.replace("\n", ", ") + "}"]
    line = _assert_refused(argv, capsys, "anchors and aliases")
    assert len(line) < 400
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: no expansion
    assert not (tmp_path / "r").exists()
    _count("yaml alias bombs")


_KEYS = {  # key -> values that must be refused, naming the key
    "algorithm.learning_rate": [".inf", "-.inf", ".nan", "0", "2", "1e400"],
    "algorithm.ent_coef": [".nan", ".inf", "-1", "auto_.nan", "auto_-1", "autox"],
    "algorithm.buffer_size": ["1e11", "100000000000", "0", "2.5", "true"],
    "algorithm.batch_size": ["10000000", "0"],
    "algorithm.gamma": [".nan", ".inf"],
    "algorithm.tau": [".nan"],
    "algorithm.gradient_steps": ["100000000"],
    "policy.net_arch": ["[100000000]", "[64, .nan]", "[" + ", ".join(["64"] * 17) + "]", "{pi: [100000000]}"],
    "policy.log_std_init": [".inf", ".nan", "1e300"],
    "her.n_sampled_goal": ["100000"],
    "normalize.clip": [".inf", ".nan"],
    "normalize.eps": [".nan"],
    "total_timesteps": ["1e20", "100000000000000"],
    "n_envs": ["100000"],
    "seed": ["1e30", "99999999999999"],
}


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_nonfinite_and_absurd_values_are_refused_naming_the_key(data) -> None:
    """Any listed bad value of any listed key: ConfigError naming the key, before anything is built."""
    from drl_control.learn.config import ConfigError, resolve_config

    key = data.draw(st.sampled_from(sorted(_KEYS)))
    value = data.draw(st.sampled_from(_KEYS[key]))
    with pytest.raises(ConfigError) as info:
        resolve_config("sac", ENV, overrides=[f"{key}={value}"])
    assert key in str(info.value)
    _count("non-finite/absurd config values")


@settings(max_examples=60, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(10**30), max_value=10**30))
def test_learning_rate_takes_exactly_finite_values_in_range(value) -> None:
    """learning_rate: any float or integer is accepted iff it is finite and in (0, 1]."""
    from drl_control.learn.config import ConfigError, resolve_config

    ok = np.isfinite(float(value)) and 0 < value <= 1
    try:
        cfg = resolve_config("sac", ENV, overrides={"algorithm": {"learning_rate": value}})
        assert ok, f"accepted learning_rate={value!r}"
        assert cfg["algorithm"]["learning_rate"] == value
    except ConfigError as exc:
        assert not ok, f"refused learning_rate={value!r}: {exc}"
        assert "algorithm.learning_rate" in str(exc)
    _count("learning_rate values")


@pytest.mark.parametrize("override", ["algorithm.learning_rate=.inf", "algorithm.ent_coef=.nan",
                                      "policy.net_arch=[100000000]", "algorithm.buffer_size=1e11"])
def test_absurd_values_exit_2_on_the_command_line(tmp_path: Path, capsys, override: str) -> None:
    _assert_refused(["train", "--algo", "sac", "--env", ENV, "--timesteps", "100", "--out", str(tmp_path / "r"),
                     override], capsys, override.split("=")[0])
    assert not (tmp_path / "r").exists()
    _count("absurd values (CLI)")


def test_too_many_or_too_long_overrides_are_refused(tmp_path: Path, capsys) -> None:
    base = ["train", "--algo", "sac", "--env", ENV, "--timesteps", "100", "--out", str(tmp_path / "r")]
    _assert_refused([*base, *(["seed=1"] * 101)], capsys, "overrides")
    _assert_refused([*base, "algorithm.gamma=" + "9" * 5000], capsys, "longer than")
    _assert_refused([*base, "policy.net_arch=" + "[" * 100 + "]" * 100], capsys, "nested deeper")
    _count("override bounds", 3)


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("target", ["art/policy.json", "state.json", "normalizer.json", "eval.json"])
def test_200000_deep_json_exits_2(copies, tmp_path: Path, target: str) -> None:
    """Every JSON file the package reads: a 200,000-deep document is one line, exit 2 (was RecursionError)."""
    run, art = copies
    if target == "art/policy.json":
        (art / "policy.json").write_text(DEEP)
        argv = ["eval", str(art), "--episodes", "1"]
    elif target == "eval.json":
        (run / "eval.json").write_text(DEEP)
        argv = ["export", str(run), str(tmp_path / "o")]
    else:
        ckpt = latest_checkpoint(run)
        (ckpt / target).write_text(DEEP)
        if target != "state.json":
            state = json.loads((ckpt / "state.json").read_text())
            state["files"][target] = _sha(ckpt / target)
            (ckpt / "state.json").write_text(json.dumps(state))
        argv = ["eval", str(run), "--episodes", "1"]
    proc = subprocess.run([DRL, *argv], capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "pybullet build time" not in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "nested deeper" in lines[0], proc.stderr[-2000:]
    _count("deep JSON files")


_EVIL_MODULE = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


@pytest.mark.parametrize("where", ["policy.json", "config.yaml"])
def test_module_env_id_from_a_file_never_imports(copies, tmp_path: Path, where: str) -> None:
    """`env_id: evil:Id` in a file, run from a folder holding evil.py: refused, evil.py never runs."""
    run, art = copies
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    marker = tmp_path / "pwned"
    (cwd / "evil.py").write_text(_EVIL_MODULE.format(marker=str(marker)))
    if where == "policy.json":
        meta = json.loads((art / "policy.json").read_text())
        meta["env_id"] = "evil:DrlControl/IiwaReach-v0"
        (art / "policy.json").write_text(json.dumps(meta))
        argv = ["eval", str(art), "--episodes", "1"]
    else:
        path = run / "config.yaml"
        path.write_text(path.read_text().replace(f"env_id: {ENV}", "env_id: evil:DrlControl/IiwaReach-v0"))
        argv = ["eval", str(run), "--episodes", "1"]
    proc = subprocess.run([sys.executable, "-m", "drl_control.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=180)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "pybullet build time" not in line]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "module:Id" in lines[0]
    assert not marker.exists()
    _count("module:Id env ids")


def test_module_env_id_in_a_train_goal_never_imports(tmp_path: Path, monkeypatch) -> None:
    """learner_node's goal check (ros/learner_goals.py: no node needed) refuses `evil:Id` without importing evil."""
    from drl_control.ros.learner_goals import goal_problem
    from drl_control_interfaces.action import Train

    marker = tmp_path / "pwned"
    (tmp_path / "evil_goal.py").write_text(_EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = goal_problem(Train.Goal(algorithm="sac", env_id="evil_goal:DrlControl/IiwaReach-v0"), "sac", tmp_path)
    assert "module:Id" in problem and not marker.exists()
    _count("module:Id env ids")


@pytest.mark.parametrize("env_id", ["DrlControl/IiwaRech-v0", "Nope-v0", "", "a" * 500])
def test_unregistered_env_id_in_policy_json_is_refused(copies, capsys, env_id: str) -> None:
    _, art = copies
    meta = json.loads((art / "policy.json").read_text())
    meta["env_id"] = env_id
    (art / "policy.json").write_text(json.dumps(meta))
    _assert_refused(["eval", str(art), "--episodes", "1"], capsys, "env id")
    _count("unregistered env ids")


_WEIGHT_EDITS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    **{str(d).removeprefix("torch."): (lambda t, d=d: t.to(d), "floating point")
       for d in (torch.bool, torch.int8, torch.int64, torch.uint8)},
    "nan": (lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), "non-finite"),
}


@pytest.mark.parametrize("edit", sorted(_WEIGHT_EDITS))
def test_non_float_or_non_finite_weights_are_refused(copies, capsys, edit: str) -> None:
    """Re-saved weights (SHA-256 rewritten, as an attacker would): bool/int tensors and NaN are refused."""
    _, art = copies
    change, expect = _WEIGHT_EDITS[edit]
    path = art / "policy.safetensors"
    save_file({k: change(v) for k, v in load_file(path).items()}, path)
    meta = json.loads((art / "policy.json").read_text())
    meta["tensors"]["sha256"] = _sha(path)
    (art / "policy.json").write_text(json.dumps(meta))
    _assert_refused(["eval", str(art), "--episodes", "1"], capsys, expect)
    _count("bad weight files")


def test_oversized_tensor_file_is_refused_before_reading(copies, capsys) -> None:
    """A 1 GiB policy.safetensors (sparse: no disk used) is refused by its size, not hashed or loaded."""
    _, art = copies
    with open(art / "policy.safetensors", "r+b") as f:
        f.truncate(1 << 30)
    _assert_refused(["eval", str(art), "--episodes", "1"], capsys, "larger than")
    _count("bad weight files")


def test_train_out_refuses_an_existing_run(copies, tmp_path: Path, capsys) -> None:
    """`train --out <existing run>` leaves it untouched; --force replaces it; a non-run folder is never deleted."""
    run, _ = copies
    (run / "old-file").write_text("from the first run")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    common = ["algorithm.learning_starts=60", "algorithm.buffer_size=2000", "eval.episodes=1"]
    argv = ["train", "--algo", "sac", "--env", ENV, "--timesteps", "100"]
    _assert_refused([*argv, "--out", str(run), *common], capsys, "--resume")
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    _assert_refused([*argv, "--out", str(other), "--force", *common], capsys, "not a run directory")
    assert (other / "keep.txt").read_text() == "mine"
    rc, _ = _cli([*argv, "--out", str(run), "--force", *common], capsys)
    assert rc == 0
    assert not (run / "old-file").exists() and (run / "config.yaml").is_file()
    _count("existing --out", 3)


def test_variant_counts(request) -> None:
    """Runs last in this module (file order): every group of variants ran, as many times as written."""
    mine = {item.originalname for item in request.session.items if item.module.__name__ == __name__}
    wanted = {name for name in globals() if name.startswith("test_")}
    if mine != wanted:
        pytest.skip("counts are checked when the whole module runs (not with -k or a node id)")
    exact = {
        "run file x mutation x verb (eval)": 8 * len(MUTATIONS),
        "run file x mutation x verb (export)": 8 * len(MUTATIONS),
        "run file x mutation x verb (resume)": 8 * len(MUTATIONS),
        "run config edits x verbs": 7 * 3,
        "resume mismatches": 3,
        "bad run directories x verbs": 4 * 4,
        "episodes.csv variants": 5,
        "eval.json variants": 4,
        "export targets": 1,
        "artifact file x mutation": 2 * len(MUTATIONS),
        "--config files": 30,
        "payload x file x verb": len(PAYLOADS) * (10 * 4 + 2),
        "subprocess end-to-end": 3,
        "yaml alias bombs": 2,
        "absurd values (CLI)": 4,
        "override bounds": 3,
        "deep JSON files": 4,
        "module:Id env ids": 3,
        "unregistered env ids": 4,
        "bad weight files": 6,
        "existing --out": 3,
    }
    print("\nfault variants tried:", json.dumps(COUNTS, indent=1), "total", sum(COUNTS.values()))
    assert {k: COUNTS.get(k, 0) for k in exact} == exact
    for sampled in ("random byte damage (eval)", "non-finite/absurd config values", "learning_rate values"):
        assert COUNTS.get(sampled, 0) > 0, sampled
    fuzz = COUNTS.get("policy.json structure fuzz (refused)", 0) + COUNTS.get("policy.json structure fuzz (loaded)", 0)
    assert fuzz > 0
