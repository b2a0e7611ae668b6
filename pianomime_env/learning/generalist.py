"""Multi-song imitation policies (``baselines/bc.py``, ``baselines/diffusion_policy.py``):
their observation features, imitation data from ``pianomime collect`` datasets, networks, and
the loader behind ``load_policy`` / ``pianomime play --policy`` for their checkpoints.

Observation features: the ``Dict`` observation flattened in the checkpoint's
``observation_layout`` order; with a goal encoder the ``goal`` rows ``(L+1, 89)`` become
``(L+1, 17)`` (each row's 16-d latent of :mod:`pianomime_env.learning.goal_encoder` + its sustain
column). A residual policy's observation is :class:`~pianomime_env.control.residual.ResidualIK`'s:
the env's plus ``nominal_action`` (the sight-reader's absolute action) and
``demo_fingertips``.

Labels: a plain policy imitates the expert's action as the env's normalized action in
[-1, 1]; a residual policy imitates ``(expert - nominal) / (residual_scale * range)`` on the
joints, clipped to [-1, 1] (ResidualIK's action). Episodes of a dataset are replayed (seed,
reset options, executed actions; exact, :mod:`pianomime_env.collection.collect`) to compute the nominal.
With the sight-reader as the expert the residual labels are all zero: the expert *is* the
nominal, so residual imitation needs another expert (a residual RL policy) to learn anything.

Checkpoints (:mod:`pianomime_env.learning.policies` format, ``algorithm`` ``"bc"`` or
``"diffusion-policy"``) add: ``actor = {"kind": "mlp" | "unet", "act_dim", "config",
"state_dict"}``, ``obs_norm`` / ``action_norm`` (:class:`Normalizer` states), ``features``
(``{"goal_encoder": state or None}``), ``horizons`` (``obs``, ``pred``, ``exec``) and, for the
diffusion policy, ``diffusion`` (scheduler settings, DDIM inference steps).

Two-level checkpoints (``--two-level``: PianoMime's goal -> fingertip targets -> joints) add
``low_level`` and ``target_norm``; old checkpoints (without them) load as before:

- ``actor`` is level 1 (the high level): features as above -> the **target**, 31 numbers:
  the fingertips (30, m, world frame, ``fingertips``' order) the hands should reach at the next
  step t+1, then the sustain action (the normalized action's last dimension). The MLP predicts
  one target, the U-Net a ``pred`` window of them (t+1 .. t+pred). ``actor["act_dim"]`` is 31;
  ``target_norm`` (a :class:`Normalizer` state: z-score for BC, min-max for the diffusion
  policy) maps the network's output back to metres; ``action_norm`` is None.
  ``target_frame`` (absent: ``"world"``): ``"world"``, the network outputs the fingertip
  positions themselves; ``"offset"``, it outputs them minus the fingertips observed when it
  plans (step t), and the player adds those back.
- ``low_level = {"kind": "mlp", "act_dim", "config", "state_dict", "keys", "obs_norm"}`` is
  level 2: ``keys`` (the observation keys of :data:`LOW_LEVEL_KEYS` present, layout order)
  flattened, plus the target's offset ``target - fingertips`` (30, m), z-scored with
  ``obs_norm`` -> the normalized joint action (``act_dim`` = the env's action size - 1), clamped
  to [-1, 1]. It is trained on the executed (noisy) actions that produced each next step's
  fingertips (hindsight relabelling, :func:`load_imitation_data` with ``two_level=True``).
- The played action is level 2's joints plus level 1's sustain. Level 2 runs every step on the
  current observation, also while the diffusion policy executes its queue of targets.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from pianomime_env.control.residual import residual_bounds, residual_observation
from pianomime_env.extras import require
from pianomime_env.learning.policies import (
    PolicyError,
    build_mlp,
    check_compatible,
    observation_layout,
    require_torch,
    wrap_env,
)

__all__ = [
    "BC_SIZES",
    "LOW_LEVEL_KEYS",
    "TWO_LEVEL_RESIDUAL",
    "GeneralistPolicy",
    "ImitationData",
    "Normalizer",
    "build_actor",
    "dataset_env",
    "episode_subset",
    "features",
    "load_imitation_data",
    "low_level_entry",
    "low_level_features",
    "make_ddim",
    "make_ddpm",
    "sample_actions",
    "two_level_arrays",
]

#: RP1M's BC sizes (its appendix B): name -> hidden layers.
BC_SIZES: dict[str, tuple[int, ...]] = {
    "3x256": (256, 256, 256),
    "3x1024": (1024, 1024, 1024),
    "6x4096": (4096,) * 6,
}


#: The song-independent observation keys a two-level policy's level 2 sees (those present).
LOW_LEVEL_KEYS: tuple[str, ...] = ("hand_joints", "fingertips", "hand_velocities")

#: Why the imitation baselines refuse ``--two-level`` with ``--residual``.
TWO_LEVEL_RESIDUAL = (
    "--two-level with --residual is not built: level 2 outputs the joints themselves (from "
    "fingertip targets), while a residual policy outputs a bounded correction of the "
    "sight-reader's joints; and on sight-reader data every residual label is zero "
    "(docs/generalist.md). Use one of the two."
)

# -- features and normalization ----------------------------------------------------------------


def features(
    obs: Mapping[str, np.ndarray], layout: Sequence[Sequence[Any]], encoder: Any = None
) -> np.ndarray:
    """Flat features of a batch of ``Dict`` observations.

    Args:
        obs: key -> (N, *shape) arrays (or one observation: key -> shape).
        layout: ``[[key, shape], ...]`` (the checkpoint's ``observation_layout``).
        encoder: a goal autoencoder, or None for the raw goal.

    Returns:
        (N, F) float32 (or (F,) for one observation), keys in layout order.
    """
    from pianomime_env.learning.goal_encoder import encode_goal

    key0, shape0 = layout[0][0], tuple(layout[0][1])
    single = np.asarray(obs[key0]).shape == shape0
    parts = []
    for key, shape in layout:
        x = np.asarray(obs[key], np.float32)
        if single:
            x = x[None]
        if x.shape[1:] != tuple(shape):
            raise PolicyError(f"observation {key!r} has shape {x.shape[1:]}, expected {shape}")
        if key == "goal" and encoder is not None:
            x = encode_goal(encoder, x)
        parts.append(x.reshape(len(x), -1))
    out = np.concatenate(parts, axis=1)
    return out[0] if single else out


def low_level_features(
    obs: Mapping[str, np.ndarray], keys: Sequence[str], targets: np.ndarray
) -> np.ndarray:
    """Level 2's input: ``keys`` of ``obs`` flattened in that order, then ``targets -
    obs["fingertips"]`` (30, m).

    Args:
        obs: key -> (N, *shape) arrays, or one observation (key -> shape).
        keys: observation keys (a checkpoint's ``low_level["keys"]``).
        targets: (N, 30) or (30,) target fingertip positions (m, world frame).

    Returns:
        (N, F_low) float32, or (F_low,) for one observation.
    """
    tips = np.asarray(obs["fingertips"], np.float32)
    single = tips.ndim == 1
    targets = np.asarray(targets, np.float32)
    if targets.shape != tips.shape:
        raise PolicyError(f"targets have shape {targets.shape}, fingertips {tips.shape}")
    n = 1 if single else len(tips)
    parts = [np.asarray(obs[k], np.float32).reshape(n, -1) for k in keys]
    parts.append((targets - tips).reshape(n, -1))
    out = np.concatenate(parts, axis=1)
    return out[0] if single else out


def low_level_entry(
    model: Any, config: Mapping[str, Any], norm: Normalizer, keys: Sequence[str]
) -> dict[str, Any]:
    """A two-level checkpoint's ``low_level`` entry (format: this module's docstring) for the
    level-2 MLP ``model`` built from ``config``, its input normalizer and observation keys."""
    return {
        "kind": "mlp",
        "act_dim": int(config["out_dim"]),
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "keys": list(keys),
        "obs_norm": norm.state(),
    }


#: Rows per block when :meth:`Normalizer.fit` accumulates its statistics.
_FIT_BLOCK = 65_536


@dataclass
class Normalizer:
    """``(x - offset) / scale`` per dimension; ``kind`` ``"minmax"`` maps the data's range to
    [-1, 1] (Diffusion Policy), ``"zscore"`` standardizes. Constant dimensions get scale 1."""

    offset: np.ndarray
    scale: np.ndarray
    kind: str

    @classmethod
    def fit(cls, x: np.ndarray, kind: str = "minmax") -> Normalizer:
        """Fits to ``x`` (..., F) over all leading axes. The statistics are accumulated in
        float64 over blocks of rows, so a large float32 dataset (0.5M steps x 1150 features:
        2.3 GB) is never copied whole."""
        x = np.asarray(x)
        x = x.reshape(-1, x.shape[-1])
        if kind not in ("minmax", "zscore"):
            raise ValueError(f"kind must be 'minmax' or 'zscore', got {kind!r}")
        blocks = [x[i : i + _FIT_BLOCK] for i in range(0, len(x), _FIT_BLOCK)]
        if kind == "minmax":
            lo = np.min([b.min(axis=0) for b in blocks], axis=0).astype(np.float64)
            hi = np.max([b.max(axis=0) for b in blocks], axis=0).astype(np.float64)
            offset, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            offset = sum(b.sum(axis=0, dtype=np.float64) for b in blocks) / len(x)
            var = sum(np.square(b - offset).sum(axis=0) for b in blocks) / len(x)
            scale = np.sqrt(var)
        scale = np.where(scale < 1e-6, 1.0, scale)
        return cls(offset.astype(np.float32), scale.astype(np.float32), kind)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        out = np.subtract(x, self.offset, dtype=np.float32)
        out /= self.scale
        return out

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * self.scale + self.offset).astype(np.float32)

    def state(self) -> dict[str, Any]:
        torch = require_torch()
        return {
            "offset": torch.from_numpy(self.offset.copy()),
            "scale": torch.from_numpy(self.scale.copy()),
            "kind": self.kind,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Normalizer:
        return cls(
            np.asarray(state["offset"], np.float32),
            np.asarray(state["scale"], np.float32),
            str(state["kind"]),
        )


# -- imitation data --------------------------------------------------------------------------


def dataset_env(dataset: Any, song: str, env_kwargs: Mapping[str, Any] | None = None):
    """A :class:`~pianomime_env.envs.piano.PianoMimeEnv` of ``song`` with the dataset's env arguments
    (its spec's kwargs, the song replaced), overridden by ``env_kwargs``."""
    from pianomime_env.envs.piano import PianoMimeEnv

    spec = dataset.env_spec
    kwargs = {k: v for k, v in dict(spec.kwargs or {}).items() if k != "song"}
    kwargs.update(env_kwargs or {})
    return PianoMimeEnv(song, **kwargs)


@dataclass
class ImitationData:
    """Per-episode observations and labels of a dataset, ready for a policy.

    Attributes:
        observations: per episode, key -> (T, *shape) float32 (ResidualIK's keys if residual).
        actions: per episode (T, A) float32 labels in [-1, 1] (normalized action or residual).
        songs: per episode, the song argument (``song_source``).
        layout: ``[[key, shape], ...]`` the policy's observation layout.
        env_kwargs: the env arguments the policy was trained with (without the song).
        steps: total steps.
        next_fingertips: with ``two_level``: per episode (T, 30) the observed fingertips of
            step t+1 (m; the episode's T+1 observations), else None.
        executed: with ``two_level``: per episode (T, A) the executed actions, normalized to
            [-1, 1] (what produced ``next_fingertips``), else None.
    """

    observations: list[dict[str, np.ndarray]]
    actions: list[np.ndarray]
    songs: list[str]
    layout: list[list[Any]]
    env_kwargs: dict[str, Any]
    steps: int
    next_fingertips: list[np.ndarray] | None = None
    executed: list[np.ndarray] | None = None


def episode_subset(lengths: Sequence[int], max_steps: int, seed: int = 0) -> list[int]:
    """Indices of a random subset of episodes with at most ``max_steps`` steps in all.

    The episodes are taken in one fixed random order (``seed``), skipping any that would pass
    ``max_steps``, so a smaller budget's subset is contained in a larger one's (a data-size
    curve compares nested datasets). ``lengths``: steps per episode. Returns sorted indices.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    order = np.random.default_rng(seed).permutation(len(lengths))
    picked, total = [], 0
    for i in order.tolist():
        if total + int(lengths[i]) <= max_steps:
            picked.append(i)
            total += int(lengths[i])
    return sorted(picked)


def load_imitation_data(
    dataset_id: str,
    *,
    wrapper: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    labels: str = "expert",
    two_level: bool = False,
    max_steps: int | None = None,
    progress: bool = False,
) -> ImitationData:
    """Reads a ``pianomime collect`` dataset for imitation.

    Args:
        dataset_id: a Minari id of the local root (``$MINARI_DATASETS_PATH``).
        wrapper: ``{"residual": False}`` or a residual configuration
            (:func:`pianomime_env.learning.policies.wrap_env`): episodes are then replayed to compute
            the sight-reader's nominal and the residual labels.
        env_kwargs: overrides of the dataset's env arguments for the policy's env; the dataset's
            observation layout must match that env's (``ValueError`` naming the difference).
        labels: ``"expert"`` (clean expert action) or ``"executed"`` (noise included).
        two_level: also read the two-level labels (hindsight): ``next_fingertips`` (the
            fingertips observed at t+1) and ``executed`` (the executed action at t).
        max_steps: read only the episodes :func:`episode_subset` picks (a fixed random subset
            of at most this many steps, nested across sizes); None: every episode.
    """
    from tqdm import tqdm

    from pianomime_env.learning.datasets import (
        check_observation_layout,
        episode_metadata,
        load_dataset,
    )

    wrapper = dict(wrapper or {"residual": False})
    residual = bool(wrapper.get("residual", False))
    if residual and two_level:
        raise ValueError("two_level with a residual wrapper is not supported")
    ds = load_dataset(dataset_id)
    meta = episode_metadata(ds)
    indices = list(range(len(meta)))
    if max_steps is not None:
        indices = episode_subset([int(m["total_steps"]) for m in meta], max_steps)
        if not indices:
            shortest = min(int(m["total_steps"]) for m in meta)
            raise ValueError(
                f"dataset {dataset_id}: max_steps={max_steps} is shorter than its shortest "
                f"episode ({shortest} steps)"
            )
        meta = [meta[i] for i in indices]
    episode_ids = [int(i) for i in np.asarray(ds.episode_indices)[indices]]
    envs: dict[str, Any] = {}
    first = str(meta[0].get("song_source", ds.env_spec.kwargs.get("song")))
    env = envs[first] = dataset_env(ds, first, env_kwargs)
    check_observation_layout(ds, env)
    kwargs = {k: v for k, v in dict(ds.env_spec.kwargs or {}).items() if k != "song"}
    kwargs.update(env_kwargs or {})
    layout = observation_layout(wrap_env(env, wrapper).observation_space)
    keys = [k for k, _ in layout]
    out_obs, out_act, songs = [], [], []
    next_tips: list[np.ndarray] = []
    executed: list[np.ndarray] = []
    n_frames = int(wrapper.get("n_demo_frames", 4))
    plans: dict[str, Any] = {}
    for ep, m in tqdm(
        zip(ds.iterate_episodes(episode_ids), meta),
        total=len(meta),
        desc="loading episodes",
        disable=not progress,
        mininterval=2,
    ):
        song = str(m.get("song_source", first))
        if song not in envs:
            envs[song] = dataset_env(ds, song, env_kwargs)
        env = envs[song]
        if labels == "expert":
            if "expert_action" not in (ep.infos or {}):
                raise ValueError(f"episode {ep.id} has no infos['expert_action']")
            lab = np.asarray(ep.infos["expert_action"][: len(ep.actions)], np.float64)
        elif labels == "executed":
            lab = np.asarray(ep.actions, np.float64)
        else:
            raise ValueError(f"labels must be 'expert' or 'executed', got {labels!r}")
        absolute = env.action_from_normalized(lab) if env.normalized_actions else lab
        n = len(lab)
        obs = {k: np.asarray(ep.observations[k][:n], np.float32) for k in ds.observation_space}
        if two_level:
            tips = np.asarray(ep.observations["fingertips"], np.float32)
            if len(tips) != n + 1:
                raise ValueError(
                    f"episode {ep.id} has {len(tips)} observations for {n} actions "
                    "(expected T+1: the two-level targets need the next observation)"
                )
            next_tips.append(tips[1:])
            ex = np.asarray(ep.actions, np.float64)
            ex = env.action_from_normalized(ex) if env.normalized_actions else ex
            executed.append(np.clip(env.action_to_normalized(ex), -1, 1).astype(np.float32))
        if not residual:
            out_act.append(np.clip(env.action_to_normalized(absolute), -1, 1).astype(np.float32))
        else:
            demo, reader = _plan(plans, env, song)
            nominal = _replay_nominal(env, reader, ep, m, n, song)
            low, high = np.asarray(env.action_low), np.asarray(env.action_high)
            scale = residual_bounds(
                env, wrapper["residual_scale"], wrapper.get("finger_residual_scale")
            )
            res = (absolute[:, :-1] - nominal[:, :-1]) / np.maximum(scale, 1e-12)
            out_act.append(np.clip(res, -1, 1).astype(np.float32))
            rows = [
                residual_observation(
                    {k: v[t] for k, v in obs.items()}, nominal[t], demo, t, n_frames, low, high
                )
                for t in range(n)
            ]
            obs = {k: np.stack([r[k] for r in rows]) for k in keys}
        out_obs.append({k: obs[k] for k in keys})
        songs.append(song)
    for e in envs.values():
        e.close()
    return ImitationData(
        observations=out_obs,
        actions=out_act,
        songs=songs,
        layout=layout,
        env_kwargs=kwargs,
        steps=int(sum(len(a) for a in out_act)),
        next_fingertips=next_tips if two_level else None,
        executed=executed if two_level else None,
    )


def two_level_arrays(
    data: ImitationData,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The two-level training arrays of ``data`` (loaded with ``two_level=True``).

    Returns:
        targets: (N, 31) level 1's labels: the next step's fingertips (30, m) + the label's
            sustain (its last column, normalized).
        low_x: (N, F_low) level 2's inputs (:func:`low_level_features` of the observation and
            the next fingertips).
        low_y: (N, A-1) level 2's labels: the executed joint actions, normalized.
        keys: level 2's observation keys (:data:`LOW_LEVEL_KEYS` in the layout, layout order).
    """
    if data.next_fingertips is None or data.executed is None:
        raise ValueError("two_level_arrays needs data loaded with two_level=True")
    keys = [k for k, _ in data.layout if k in LOW_LEVEL_KEYS]
    targets = np.concatenate(
        [np.concatenate([f, a[:, -1:]], axis=1) for f, a in zip(data.next_fingertips, data.actions)]
    )
    low_x = np.concatenate(
        [low_level_features(o, keys, f) for o, f in zip(data.observations, data.next_fingertips)]
    )
    low_y = np.concatenate([e[:, :-1] for e in data.executed])
    return targets.astype(np.float32), low_x, low_y.astype(np.float32), keys


def _plan(cache: dict[str, Any], env: Any, song: str) -> tuple[Any, Any]:
    """The demonstration and sight-reader of a song (planned once per song)."""
    if song not in cache:
        from pianomime_env.control.sightreader import SightReader
        from pianomime_env.demos import from_midi

        demo = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env)
        cache[song] = (demo, SightReader(env, demo))
    return cache[song]


def _replay_nominal(
    env: Any, reader: Any, ep: Any, meta: Mapping[str, Any], n: int, song: str
) -> np.ndarray:
    """Replays an episode (the seed and reset options of its metadata, its executed actions);
    the sight-reader's absolute action at each of its n observations, (n, A) float64."""
    opts = dict(meta.get("options") or {})
    opts = {k: (int(v) if k == "start_step" else v) for k, v in opts.items()}
    seed = meta.get("seed")
    seed = None if seed is None else int(seed)
    obs, _ = env.reset(seed=seed, options=opts)
    reader.reset()
    out = np.zeros((n, env.action_space.shape[0]))
    for t in range(n):
        if not np.allclose(obs["hand_joints"], ep.observations["hand_joints"][t], atol=1e-4):
            raise ValueError(
                f"episode {ep.id} ({song}) does not replay: hand_joints differ at step {t} "
                "(dataset written with other env arguments or versions?)"
            )
        a = np.asarray(reader(obs), np.float64)
        out[t] = env.action_from_normalized(a) if env.normalized_actions else a
        obs, *_ = env.step(np.asarray(ep.actions[t], np.float32))
    return out


# -- networks --------------------------------------------------------------------------------


def _unet_class():
    torch = require_torch()
    nn = torch.nn

    class SinusoidalPosEmb(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.dim = dim

        def forward(self, t):
            half = self.dim // 2
            freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))
            x = t.float()[:, None] * freqs[None]
            return torch.cat([x.sin(), x.cos()], dim=-1)

    class Conv1dBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, k: int, groups: int) -> None:
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv1d(c_in, c_out, k, padding=k // 2), nn.GroupNorm(groups, c_out), nn.Mish()
            )

        def forward(self, x):
            return self.block(x)

    class FiLMResBlock(nn.Module):
        """Two conv blocks; the condition sets a per-channel scale and bias (FiLM) between."""

        def __init__(self, c_in: int, c_out: int, cond_dim: int, k: int, groups: int) -> None:
            super().__init__()
            self.b1 = Conv1dBlock(c_in, c_out, k, groups)
            self.b2 = Conv1dBlock(c_out, c_out, k, groups)
            self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
            self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

        def forward(self, x, cond):
            h = self.b1(x)
            scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
            return self.b2(scale * h + bias) + self.skip(x)

    class TemporalUnet(nn.Module):
        """Chi et al.'s ConditionalUnet1D: (B, T, A) noisy actions, (B,) diffusion steps and a
        (B, G) global condition (the projected observations) -> (B, T, A) predicted noise."""

        def __init__(
            self,
            act_dim: int,
            cond_in: int,
            down_dims: Sequence[int] = (64, 128, 256),
            kernel_size: int = 5,
            n_groups: int = 8,
            step_embed: int = 64,
            obs_embed: int = 256,
        ) -> None:
            super().__init__()
            self.obs_proj = nn.Sequential(nn.Linear(cond_in, obs_embed), nn.Mish())
            self.step_enc = nn.Sequential(
                SinusoidalPosEmb(step_embed),
                nn.Linear(step_embed, 4 * step_embed),
                nn.Mish(),
                nn.Linear(4 * step_embed, step_embed),
            )
            cond = step_embed + obs_embed
            dims = [act_dim, *down_dims]
            pairs = list(zip(dims[:-1], dims[1:]))
            self.down = nn.ModuleList()
            for i, (a, b) in enumerate(pairs):
                last = i == len(pairs) - 1
                self.down.append(
                    nn.ModuleList(
                        [
                            FiLMResBlock(a, b, cond, kernel_size, n_groups),
                            FiLMResBlock(b, b, cond, kernel_size, n_groups),
                            nn.Conv1d(b, b, 3, 2, 1) if not last else nn.Identity(),
                        ]
                    )
                )
            d = down_dims[-1]
            self.mid = nn.ModuleList(
                [FiLMResBlock(d, d, cond, kernel_size, n_groups) for _ in range(2)]
            )
            self.up = nn.ModuleList()
            for a, b in reversed(pairs[1:]):  # every level up doubles the horizon again
                self.up.append(
                    nn.ModuleList(
                        [
                            FiLMResBlock(2 * b, a, cond, kernel_size, n_groups),
                            FiLMResBlock(a, a, cond, kernel_size, n_groups),
                            nn.ConvTranspose1d(a, a, 4, 2, 1),
                        ]
                    )
                )
            self.final = nn.Sequential(
                Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                nn.Conv1d(down_dims[0], act_dim, 1),
            )

        def forward(self, sample, timestep, obs_cond):
            x = sample.transpose(1, 2)  # (B, A, T)
            if not torch.is_tensor(timestep) or timestep.ndim == 0:
                timestep = torch.full((x.shape[0],), int(timestep), device=x.device)
            cond = torch.cat([self.step_enc(timestep), self.obs_proj(obs_cond)], dim=-1)
            skips = []
            for r1, r2, down in self.down:
                x = r2(r1(x, cond), cond)
                skips.append(x)
                x = down(x)
            for r in self.mid:
                x = r(x, cond)
            for r1, r2, up in self.up:
                x = torch.cat([x, skips.pop()], dim=1)
                x = up(r2(r1(x, cond), cond))
            return self.final(x).transpose(1, 2)

    return TemporalUnet


def build_actor(kind: str, config: Mapping[str, Any]):
    """The network of a checkpoint's ``actor``: ``"mlp"`` (``in_dim``, ``hidden``, ``out_dim``,
    ``activation``; :func:`pianomime_env.learning.policies.build_mlp`) or ``"unet"`` (``act_dim``,
    ``cond_in``, ``down_dims``, ``kernel_size``, ``n_groups``, ``step_embed``, ``obs_embed``)."""
    if kind == "mlp":
        return build_mlp(
            int(config["in_dim"]),
            [int(h) for h in config["hidden"]],
            int(config["out_dim"]),
            str(config.get("activation", "gelu")),
        )
    if kind == "unet":
        c = dict(config)
        c["down_dims"] = tuple(int(d) for d in c["down_dims"])
        return _unet_class()(**c)
    raise PolicyError(f"unknown actor kind {kind!r} (expected 'mlp' or 'unet')")


def _require_diffusers():
    return require(
        "diffusers",
        "the diffusion policy needs diffusers: pip install -e '.[train]' (the train extra)",
    )


def make_ddpm(settings: Mapping[str, Any]):
    """diffusers' ``DDPMScheduler`` for training (settings: ``num_train_timesteps``,
    ``beta_schedule``, ``clip_sample``, ``prediction_type``)."""
    d = _require_diffusers()
    return d.DDPMScheduler(
        num_train_timesteps=int(settings["num_train_timesteps"]),
        beta_schedule=str(settings["beta_schedule"]),
        clip_sample=bool(settings["clip_sample"]),
        prediction_type=str(settings["prediction_type"]),
    )


def make_ddim(settings: Mapping[str, Any]):
    """diffusers' ``DDIMScheduler`` with the same noise schedule, for inference."""
    d = _require_diffusers()
    return d.DDIMScheduler(
        num_train_timesteps=int(settings["num_train_timesteps"]),
        beta_schedule=str(settings["beta_schedule"]),
        clip_sample=bool(settings["clip_sample"]),
        prediction_type=str(settings["prediction_type"]),
    )


def sample_actions(
    model: Any, scheduler: Any, cond: Any, horizon: int, act_dim: int, steps: int, generator=None
):
    """Denoises Gaussian noise into (B, horizon, act_dim) normalized actions with ``steps``
    scheduler steps, conditioned on ``cond`` (B, cond_in)."""
    torch = require_torch()
    x = torch.randn((cond.shape[0], horizon, act_dim), generator=generator)
    scheduler.set_timesteps(int(steps))
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = model(x, t, cond)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return x


# -- the loaded policy ------------------------------------------------------------------------


class GeneralistPolicy:
    """``obs -> action`` for a ``bc`` / ``diffusion-policy`` checkpoint on ``env`` (a plain
    :class:`~pianomime_env.envs.piano.PianoMimeEnv`, ``Dict`` observations, either action mode).

    Residual checkpoints rebuild ResidualIK's observation around the sight-reader (demo planned
    from ``env``'s song). The diffusion policy plans ``pred`` actions from the last ``obs``
    observations and executes the first ``exec`` of them before planning again (receding
    horizon; an action queue). Call :meth:`reset` after every ``env.reset()``. Deterministic:
    the diffusion noise comes from a generator reseeded at every reset.
    """

    def __init__(self, ckpt: Mapping[str, Any], env: Any) -> None:
        torch = require_torch()
        self._torch = torch
        self.checkpoint = ckpt
        self.env = env
        u = env.unwrapped
        if not isinstance(env.observation_space, spaces.Dict):
            raise PolicyError(
                "load_policy needs an env with Dict observations (flatten=False); this one has "
                f"{env.observation_space}"
            )
        self.wrapper = dict(ckpt["wrapper"])
        self.residual = bool(self.wrapper.get("residual", False))
        obs_space = env.observation_space
        if self.residual:
            if self.wrapper.get("nominal", "sight-reader") != "sight-reader":
                raise PolicyError("residual generalists use the sight-reader nominal only")
            # ResidualIK computes the nominal and the residual observation; this policy steps
            # the caller's env itself (ResidualIK.observe / residual_to_action).
            self.residual_env = wrap_env(env, self.wrapper)
            obs_space = self.residual_env.observation_space
        low = ckpt.get("low_level")
        self.two_level = low is not None
        if self.two_level:
            # Level 1's act_dim is the 31-d target; the env-facing action is level 2's joints
            # plus level 1's sustain.
            actor = {**ckpt["actor"], "act_dim": int(low["act_dim"]) + 1}
            check_compatible({**ckpt, "actor": actor}, env, obs_space)
        else:
            check_compatible(ckpt, env, obs_space)
        self.layout = [[k, list(s)] for k, s in ckpt["observation_layout"]]
        self.low, self.high = np.asarray(u.action_low), np.asarray(u.action_high)
        enc = ckpt["features"].get("goal_encoder")
        if enc is not None:
            from pianomime_env.learning.goal_encoder import goal_autoencoder_from_state

            self.encoder = goal_autoencoder_from_state(enc)
        else:
            self.encoder = None
        a = ckpt["actor"]
        self.kind = str(a["kind"])
        self.act_dim = int(a["act_dim"])
        self.model = build_actor(self.kind, a["config"])
        self.model.load_state_dict(a["state_dict"])
        self.model.eval()
        self.obs_norm = Normalizer.from_state(ckpt["obs_norm"])
        self.action_norm = (
            Normalizer.from_state(ckpt["action_norm"]) if ckpt.get("action_norm") else None
        )
        self.target_norm = self.low_model = self.low_norm = None
        self.low_keys: list[str] = []
        if self.two_level:
            self.target_norm = Normalizer.from_state(ckpt["target_norm"])
            self.low_keys = [str(k) for k in low["keys"]]
            self.low_norm = Normalizer.from_state(low["obs_norm"])
            self.low_model = build_actor(str(low["kind"]), low["config"])
            self.low_model.load_state_dict(low["state_dict"])
            self.low_model.eval()
        self.target_frame = str(ckpt.get("target_frame", "world"))
        if self.target_frame not in ("world", "offset"):
            raise PolicyError(
                f"target_frame must be 'world' or 'offset', got {self.target_frame!r}"
            )
        self.last_target: np.ndarray | None = None  # two-level: the last target (31,)
        self.plan_origin: np.ndarray | None = None  # fingertips (30,) when level 1 last planned
        h = ckpt.get("horizons") or {"obs": 1, "pred": 1, "exec": 1}
        self.obs_horizon, self.pred_horizon = int(h["obs"]), int(h["pred"])
        self.exec_horizon = int(h["exec"])
        self.diffusion = ckpt.get("diffusion")
        if self.kind == "unet":
            self.scheduler = make_ddim(self.diffusion["scheduler"])
        self.history: deque[np.ndarray] = deque(maxlen=self.obs_horizon)
        self.queue: deque[np.ndarray] = deque()
        self.generator = torch.Generator().manual_seed(int(ckpt.get("seed", 0)))
        self.last_observation: dict[str, Any] | None = None

    def reset(self) -> None:
        """Clears the observation history and the action queue (and resets the nominal)."""
        self.history.clear()
        self.queue.clear()
        self.generator.manual_seed(int(self.checkpoint.get("seed", 0)))
        if self.residual:
            self.residual_env.restart_nominal()

    def network_actions(self, feats: np.ndarray) -> np.ndarray:
        """Policy outputs in [-1, 1] for the current features (F,): (1, A) for the MLP, the
        (exec, A) actions to execute next for the diffusion policy. Two-level: level 1's
        targets instead, (1, 31) or (exec, 31): fingertips (m) and the sustain in [-1, 1]."""
        torch = self._torch
        if self.kind == "mlp":
            x = torch.as_tensor(self.obs_norm.normalize(feats)[None])
            with torch.no_grad():
                out = self.model(x)[:, : self.act_dim]
                if self.two_level:
                    return self._targets(out.numpy())
                out = out.clamp(-1.0, 1.0).numpy()
            return out.astype(np.float64)
        while len(self.history) < self.obs_horizon:
            self.history.appendleft(self.history[0] if self.history else feats)
        cond = self.obs_norm.normalize(np.stack(self.history)).reshape(1, -1)
        x = sample_actions(
            self.model,
            self.scheduler,
            torch.as_tensor(cond),
            self.pred_horizon,
            self.act_dim,
            int(self.diffusion["inference_steps"]),
            self.generator,
        )[0].numpy()
        x = np.clip(x, -1.0, 1.0)
        if self.two_level:
            return self._targets(x[: self.exec_horizon])
        if self.action_norm is not None:
            x = self.action_norm.unnormalize(x)
        return np.clip(x[: self.exec_horizon], -1.0, 1.0).astype(np.float64)

    def __call__(self, obs: Any) -> np.ndarray:
        u = self.env.unwrapped
        if self.residual:
            obs = self.residual_env.observe(obs)
        self.last_observation = obs
        feats = features(obs, self.layout, self.encoder)
        self.history.append(feats)
        if not self.queue:
            if self.two_level:
                self.plan_origin = np.asarray(obs["fingertips"], np.float64).copy()
            self.queue.extend(self.network_actions(feats))
        a = self.queue.popleft()
        if self.two_level:
            a = self.low_level_action(obs, a)
        if not self.residual:
            return u.to_env_action(np.clip(u.action_from_normalized(a), self.low, self.high))
        return u.to_env_action(self.residual_env.residual_to_action(a))

    def _targets(self, out: np.ndarray) -> np.ndarray:
        """Level 1's network output (K, 31), normalized -> targets (K, 31), fingertips in m."""
        t = self.target_norm.unnormalize(out).astype(np.float64)
        if self.target_frame == "offset":
            t[:, :30] += self.plan_origin
        return t

    def low_level_action(self, obs: Mapping[str, Any], target: np.ndarray) -> np.ndarray:
        """Level 2: the normalized action (A,) in [-1, 1] for the current observation and level
        1's ``target`` (31,): the joints from the fingertip offset, the sustain from the target."""
        torch = self._torch
        target = np.asarray(target, np.float64)
        self.last_target = target
        x = low_level_features(obs, self.low_keys, target[:30])
        x = torch.as_tensor(self.low_norm.normalize(x)[None])
        with torch.no_grad():
            joints = self.low_model(x)[0].clamp(-1.0, 1.0).numpy().astype(np.float64)
        return np.concatenate([joints, np.clip(target[30:31], -1.0, 1.0)])
