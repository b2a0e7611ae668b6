"""One checkpoint format for learned policies, and ``load_policy(path, env) -> obs -> action``.

A checkpoint (``model.pt``, written by ``baselines/ppo.py`` and ``baselines/droq.py``) is a
``torch.save`` dictionary of plain Python types and tensors (loadable with ``weights_only=True``):

| key | content |
|---|---|
| ``format``, ``version`` | ``"pianomime-policy"``, 1 |
| ``algorithm`` | ``"ppo"`` or ``"droq"`` |
| ``actor`` | ``state_dict`` of the MLP plus its shape: ``obs_dim``, ``act_dim``, ``hidden``, ``activation``, ``layer_norm``, ``out_dim``, ``squash`` (``"clip"``: the first ``act_dim`` outputs clipped to [-1, 1]; ``"tanh"``: squashed by tanh) |
| ``obs_norm`` | running ``mean``/``var`` (D,) float64 tensors, ``count``, ``clip``, ``eps``: the network sees ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` |
| ``env`` | ``{"id": gym id, "kwargs": {...}}`` the policy was trained on |
| ``observation_layout`` | ``[[key, shape], ...]``: the ``Dict`` observation the network reads, in flattening order (after wrappers) |
| ``wrapper`` | ``{"residual": False}`` or ``{"residual": True, "residual_scale", "finger_residual_scale" (optional), "sustain", "n_demo_frames", "nominal"}`` (:class:`~pianomime_env.control.residual.ResidualIK`) |
| ``global_step`` | env steps trained |

The network's output is a normalized action in [-1, 1]: for a plain policy it is the env's
normalized action (mapped with ``env.action_from_normalized``), for a residual policy the
residual of ``ResidualIK`` around the sight-reader's action.

torch is in the ``train`` extra: without it, loading says ``pip install -e ".[train]"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from pianomime_env.envs.making import wrap_env
from pianomime_env.extras import require_torch

__all__ = [
    "FORMAT",
    "VERSION",
    "POLICY_LOADERS",
    "PolicyError",
    "RunningMeanStd",
    "build_mlp",
    "load_checkpoint",
    "load_policy",
    "observation_layout",
    "require_torch",
    "save_checkpoint",
    "wrap_env",
]

FORMAT = "pianomime-policy"
VERSION = 1
#: Checkpoints whose network is not the MLP actor above: ``algorithm -> "module:callable"``;
#: :func:`load_policy` returns ``callable(checkpoint, env)`` for them (imported on demand).
POLICY_LOADERS: dict[str, str] = {
    "bc": "pianomime_env.learning.generalist:GeneralistPolicy",
    "diffusion-policy": "pianomime_env.learning.generalist:GeneralistPolicy",
    "lookahead-chooser": "pianomime_env.learning.chooser:ChooserPolicy",
}
# Env constructor arguments that change what a policy sees or commands; they must match.
MATTERING_KWARGS = (
    "n_steps_lookahead",
    "reduced_action_space",
    "joint_velocities",
    "control_timestep",
)


class PolicyError(ValueError):
    """A checkpoint that cannot drive the given env (the message names what differs)."""


# -- pieces the training scripts share with the loader ---------------------------------------


class RunningMeanStd:
    """Running mean and variance of observations (Chan et al.'s parallel update), float64.

    ``normalize(x)`` gives ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` as float32.
    """

    def __init__(self, shape: int | tuple[int, ...], clip: float = 10.0, eps: float = 1e-8):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4
        self.clip = float(clip)
        self.eps = float(eps)

    def update(self, x: np.ndarray) -> None:
        """Adds a batch ``x`` (N, *shape)."""
        x = np.asarray(x, np.float64)
        b_mean, b_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        torch = require_torch()
        return {
            "mean": torch.from_numpy(np.array(self.mean, np.float64)),
            "var": torch.from_numpy(np.array(self.var, np.float64)),
            "count": float(self.count),
            "clip": self.clip,
            "eps": self.eps,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> RunningMeanStd:
        mean = np.asarray(state["mean"], np.float64)
        rms = cls(mean.shape, clip=state["clip"], eps=state["eps"])
        rms.mean, rms.var = mean, np.asarray(state["var"], np.float64)
        rms.count = float(state["count"])
        return rms


def build_mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "tanh",
    *,
    layer_norm: bool = False,
    dropout: float = 0.0,
):
    """``torch.nn.Sequential``: [Linear (-> Dropout) (-> LayerNorm) -> activation] per hidden
    layer, then a Linear to ``out_dim`` (DroQ's critic uses dropout + layer norm)."""
    torch = require_torch()
    nn = torch.nn
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    layers: list[Any] = []
    d = int(in_dim)
    for h in hidden:
        layers.append(nn.Linear(d, int(h)))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if layer_norm:
            layers.append(nn.LayerNorm(int(h)))
        layers.append(acts[activation]())
        d = int(h)
    layers.append(nn.Linear(d, int(out_dim)))
    return nn.Sequential(*layers)


def observation_layout(space: spaces.Space) -> list[list[Any]]:
    """``[[key, shape], ...]`` of a ``Dict`` observation space, in its (flattening) order."""
    if not isinstance(space, spaces.Dict):
        raise PolicyError(f"expected a Dict observation space, got {type(space).__name__}")
    return [[k, list(s.shape)] for k, s in space.spaces.items()]


# -- writing and reading checkpoints ---------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Writes ``checkpoint`` (see the module docstring) atomically (temp file + os.replace)."""
    torch = require_torch()
    missing = [
        k
        for k in ("algorithm", "actor", "obs_norm", "env", "observation_layout", "wrapper")
        if k not in checkpoint
    ]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **checkpoint}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint file (or ``<run dir>/model.pt`` for a directory) and checks its format."""
    torch = require_torch()
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # weights_only: a policy checkpoint holds tensors and plain data only; anything else
        # (a pickle of code, a truncated or foreign file) is not one of ours.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise PolicyError(
            f"{path}: not a pianomime policy checkpoint (torch cannot read it as one: it is "
            "corrupt, truncated, or another program's file)"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise PolicyError(f"{path}: not a pianomime policy checkpoint (format {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise PolicyError(f"{path}: checkpoint version {ckpt.get('version')}, expected {VERSION}")
    return ckpt


def _spec_kwargs(env) -> dict[str, Any]:
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return dict(spec.kwargs) if spec is not None and spec.kwargs else {}


def check_compatible(ckpt: Mapping[str, Any], env, observation_space: spaces.Space) -> None:
    """Raises :class:`PolicyError` naming every difference between the checkpoint's env and
    ``env`` that matters to the policy (observation layout, action size, control rate)."""
    u = env.unwrapped
    trained = dict(ckpt["env"]["kwargs"])
    problems: list[str] = []
    # Constructor arguments we can see: the env's spec (gym.make) and public attributes.
    seen = _spec_kwargs(env)
    seen.setdefault("control_timestep", float(u.control_timestep))
    for key in MATTERING_KWARGS:
        if key in seen and key in trained and seen[key] != trained[key]:
            problems.append(f"{key}: checkpoint {trained[key]!r}, env {seen[key]!r}")
        elif key == "control_timestep" and key not in trained and seen[key] != 0.05:
            problems.append(f"control_timestep: checkpoint 0.05 (default), env {seen[key]!r}")
    want = [(k, tuple(s)) for k, s in ckpt["observation_layout"]]
    if isinstance(observation_space, spaces.Dict):
        got = [(k, tuple(s.shape)) for k, s in observation_space.spaces.items()]
    else:
        got = [("<flat>", tuple(observation_space.shape))]
    if want != got:
        wd, gd = dict(want), dict(got)
        for k in [k for k, _ in want if k not in gd]:
            problems.append(f"observation key {k!r} {wd[k]} missing from the env")
        for k in [k for k, _ in got if k not in wd]:
            problems.append(f"observation key {k!r} {gd[k]} not in the checkpoint")
        for k in [k for k, _ in want if k in gd and wd[k] != gd[k]]:
            problems.append(f"observation {k!r}: checkpoint shape {wd[k]}, env shape {gd[k]}")
        if not problems or [k for k, _ in want if k in gd] != [k for k, _ in got if k in wd]:
            problems.append(
                f"observation key order: checkpoint {[k for k, _ in want]}, env {[k for k, _ in got]}"
            )
    n_act = int(ckpt["actor"]["act_dim"])
    env_act = int(np.prod(u.action_space.shape))
    if ckpt["wrapper"].get("residual"):  # ResidualIK: joints, plus the pedal if the policy has it
        env_act += -1 + (1 if ckpt["wrapper"].get("sustain") == "policy" else 0)
    if n_act != env_act:
        problems.append(
            f"action size: checkpoint {n_act}, env {env_act} "
            f"(reduced_action_space: checkpoint {trained.get('reduced_action_space', False)})"
        )
    if problems:
        raise PolicyError(
            f"checkpoint trained on {ckpt['env']['id']} with {trained} does not fit this env: "
            + "; ".join(problems)
        )


class LoadedPolicy:
    """``obs -> action`` for the env given to :func:`load_policy` (call :meth:`reset` after
    ``env.reset()``). ``obs`` is that env's observation; the action is in its action space."""

    def __init__(self, ckpt: Mapping[str, Any], env) -> None:
        torch = require_torch()
        self.checkpoint = ckpt
        self.env = env
        self.wrapper = dict(ckpt["wrapper"])
        self.residual = bool(self.wrapper.get("residual", False))
        if not isinstance(env.observation_space, spaces.Dict):
            raise PolicyError(
                "load_policy needs an env with Dict observations (flatten=False); this one has "
                f"{env.observation_space}"
            )
        if self.residual:
            if self.wrapper.get("nominal", "sight-reader") != "sight-reader":
                raise PolicyError("load_policy plays residual checkpoints of the sight-reader only")
            # The same wrapper the policy was trained in; the caller steps the plain env, so the
            # wrapper only computes the nominal (observe) and maps residuals (residual_to_action).
            self.wrapped = wrap_env(env, self.wrapper)
            self.demo = self.wrapped.demo
            obs_space = self.wrapped.observation_space
        else:
            obs_space = env.observation_space
        check_compatible(ckpt, env, obs_space)
        self.obs_space = obs_space
        a = ckpt["actor"]
        self.actor = build_mlp(
            a["obs_dim"], a["hidden"], a["out_dim"], a["activation"], layer_norm=a["layer_norm"]
        )
        self.actor.load_state_dict(a["state_dict"])
        self.actor.eval()
        self.act_dim, self.squash = int(a["act_dim"]), a["squash"]
        self.rms = RunningMeanStd.from_state_dict(ckpt["obs_norm"])
        self._torch = torch
        self.last_observation: dict[str, Any] | None = None  # what the network last saw

    def reset(self) -> None:
        if self.residual:
            self.wrapped.restart_nominal()

    def network_action(self, flat_obs: np.ndarray) -> np.ndarray:
        """The deterministic network output in [-1, 1] (act_dim,) for a flat observation."""
        torch = self._torch
        x = torch.as_tensor(self.rms.normalize(flat_obs)[None])
        with torch.no_grad():
            out = self.actor(x)[0, : self.act_dim]
        out = torch.tanh(out) if self.squash == "tanh" else out.clamp(-1.0, 1.0)
        return out.numpy().astype(np.float64)

    def __call__(self, obs: Any) -> np.ndarray:
        u = self.env.unwrapped
        if not self.residual:
            self.last_observation = obs
            a = self.network_action(spaces.flatten(self.obs_space, obs))
            return np.asarray(
                a if u.normalized_actions else u.action_from_normalized(a), np.float32
            )
        # ResidualIK's observation and action, computed on the caller's plain env.
        full = self.wrapped.observe(obs)
        self.last_observation = full
        r = self.network_action(spaces.flatten(self.obs_space, full))
        return u.to_env_action(self.wrapped.residual_to_action(r))


def load_policy(path: str | os.PathLike, env) -> Callable[[Any], np.ndarray]:
    """A deterministic ``obs -> action`` callable (with ``reset()``) for ``env`` from a
    checkpoint (a ``model.pt`` or a run directory holding one).

    ``env`` is a plain :class:`~pianomime_env.envs.piano.PianoMimeEnv` (``Dict`` observations, either
    action mode): residual checkpoints rebuild their ``ResidualIK`` (sight-reader nominal, demo
    planned from ``env``'s song) around it. Raises :class:`PolicyError` naming what differs
    when the env's observation layout, action size or control rate do not match the checkpoint,
    and ``ImportError`` naming the ``train`` extra without torch.
    """
    ckpt = load_checkpoint(path)
    loader = POLICY_LOADERS.get(str(ckpt.get("algorithm")))
    if loader is not None:
        import importlib

        module, _, name = loader.partition(":")
        return getattr(importlib.import_module(module), name)(ckpt, env)
    return LoadedPolicy(ckpt, env)
