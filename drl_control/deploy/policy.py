"""The deployed policy: a plain torch MLP rebuilt from the artifact, with frozen normalization.

Reproduces SB3's `model.predict(obs, deterministic=True)` (normalization included) to within
1e-5: SAC = tanh(mean), TD3/DDPG = tanh actor output, both rescaled to the action bounds; PPO =
action mean clipped to the bounds. Imports torch and safetensors only (no SB3, no pickle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from drl_control.deploy.artifact import ArtifactError, read_artifact

_ACT: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU,
}


class DeployPolicy:
    """Deterministic actor of a deploy artifact. `act(obs)` takes the env's dict observation."""

    def __init__(self, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        self.meta = dict(meta)
        obs = self.meta["observation"]
        self.keys: list[str] = list(obs["keys"])
        self.sizes: list[int] = [int(s) for s in obs["sizes"]]
        norm = obs["normalization"]
        self._norm = None
        if norm is not None:
            self._norm = (
                {k: np.asarray(norm["mean"][k], dtype=np.float64) for k in self.keys},
                {k: np.asarray(norm["var"][k], dtype=np.float64) for k in self.keys},
                float(norm["eps"]),
                float(norm["clip"]),
            )
        layers: list[nn.Module] = []
        for spec in self.meta["network"]["layers"]:
            lin = nn.Linear(int(spec["in"]), int(spec["out"]))
            with torch.no_grad():
                lin.weight.copy_(tensors[spec["weight"]])
                lin.bias.copy_(tensors[spec["bias"]])
            layers.append(lin)
            if spec["activation"] is not None:
                layers.append(_ACT[spec["activation"]]())
        if self.meta["network"]["output"] == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers).eval()
        act = self.meta["action"]
        self.low = np.asarray(act["low"], dtype=np.float32)
        self.high = np.asarray(act["high"], dtype=np.float32)
        self.postprocess = act["postprocess"]

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        joint_names: Sequence[str] | None = None,
        observation_layout: Sequence[Sequence[Any]] | None = None,
        env_id: str | None = None,
    ) -> DeployPolicy:
        """Load and verify an artifact; the optional arguments refuse one made for something else."""
        meta, tensors = read_artifact(path, joint_names=joint_names, observation_layout=observation_layout,
                                      env_id=env_id)
        try:
            return cls(meta, tensors)
        except (TypeError, ValueError, KeyError, RuntimeError) as exc:
            # read_artifact checked the schema; this is the last line against values it cannot see
            raise ArtifactError(f"{path}: cannot build the policy network ({type(exc).__name__}: {exc})") from None

    # --- facts the controller needs -------------------------------------------------------
    @property
    def env_id(self) -> str:
        return str(self.meta["env_id"])

    @property
    def algorithm(self) -> str:
        return str(self.meta["algorithm"])

    @property
    def spec(self) -> dict[str, Any]:
        """The env's deploy_spec() recorded at export (control, action scale, robot, layouts)."""
        return self.meta["env_spec"]

    @property
    def control_hz(self) -> float:
        return float(self.spec["control_hz"])

    @property
    def joint_names(self) -> list[str]:
        return list(self.spec["robot"].get("joint_names", []))

    @property
    def action_dim(self) -> int:
        return int(self.meta["action"]["dim"])

    # --- inference -----------------------------------------------------------------------
    def network_input(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Normalized, concatenated float32 input (batch, features) in the network's key order."""
        parts = []
        for key, size in zip(self.keys, self.sizes, strict=True):
            if key not in obs:
                raise KeyError(f"observation lacks {key!r} (policy needs {self.keys})")
            x = np.asarray(obs[key], dtype=np.float64)
            x = x.reshape(1, -1) if x.ndim == 1 else x
            if x.shape[1] != size:
                raise ValueError(f"observation {key!r} has size {x.shape[1]}, policy expects {size}")
            if self._norm is not None:
                mean, var, eps, clip = self._norm
                # same formula and precision as drl_control.learn.normalize.normalize_array
                x = np.clip((x - mean[key]) / (np.sqrt(var[key]) + eps), -clip, clip)
            parts.append(x.astype(np.float32))
        return np.concatenate(parts, axis=1)

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Action for one observation (1-D arrays → 1-D action) or a batch (2-D → 2-D)."""
        single = np.asarray(next(iter(obs.values()))).ndim == 1
        out = self.net(torch.as_tensor(self.network_input(obs))).numpy()
        if self.postprocess == "rescale":
            out = self.low + 0.5 * (out + 1.0) * (self.high - self.low)
        else:
            out = np.clip(out, self.low, self.high)
        return out[0] if single else out

    __call__ = act
