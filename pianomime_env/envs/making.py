"""Envs built from a training configuration: ``gym.make`` arguments and the residual wrapper
(a checkpoint's ``env`` and ``wrapper`` entries, the baselines' settings), one env
(:func:`wrap_env`) or a vector env of N (:func:`make_vector_env`: native, sync or async).

A wrapper configuration is ``{"residual": False}`` or ``{"residual": True, "residual_scale",
"finger_residual_scale" (optional), "sustain", "n_demo_frames", "nominal"}``: ``ResidualIK``
around the sight-reader, with the demonstration planned from the env's own song. The multi-song
env wraps each of its songs itself (``MultiSongEnv(residual=True, ...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from pianomime_env.control.residual import ResidualIK
from pianomime_env.demos import from_midi
from pianomime_env.envs.multisong import MultiSongEnv
from pianomime_env.envs.vector import autoreset_mode_of

__all__ = [
    "FlattenVectorObservation",
    "env_make_kwargs",
    "is_multi_song",
    "make_vector_env",
    "residual_kwargs",
    "wrap_env",
]


def is_multi_song(env_id: str) -> bool:
    """Whether ``env_id`` (``[module:]name``) is the multi-song env, ``PianoMime-MultiSong-v*``."""
    return env_id.split(":")[-1].startswith("PianoMime-MultiSong-")


def env_make_kwargs(env_id: str, kwargs: Mapping[str, Any], wrapper: Mapping[str, Any]) -> dict:
    """``gym.make`` arguments for ``env_id``: ``kwargs``, plus, for the multi-song env under a
    residual wrapper, its residual settings (``MultiSongEnv`` wraps each song in ResidualIK
    itself, with that song's demonstration; :func:`wrap_env` then leaves it as it is)."""
    out = dict(kwargs)
    if wrapper.get("residual", False) and is_multi_song(env_id):
        out["residual"] = True
        out["residual_scale"] = float(wrapper["residual_scale"])
        if wrapper.get("finger_residual_scale") is not None:
            out["finger_residual_scale"] = float(wrapper["finger_residual_scale"])
    return out


def wrap_env(env, wrapper: Mapping[str, Any]):
    """Applies the checkpoint's wrapper configuration to ``env`` (``Dict`` observations):
    :class:`~pianomime_env.control.residual.ResidualIK` around the sight-reader when residual, with the
    demonstration planned from the env's own song. Returns the wrapped env (still ``Dict``).
    A residual multi-song env (``MultiSongEnv(residual=True)``, see :func:`env_make_kwargs`)
    is returned as it is."""
    if not wrapper.get("residual", False):
        return env
    if isinstance(env.unwrapped, MultiSongEnv):
        if not env.unwrapped.residual:
            raise ValueError(
                "a residual wrapper on the multi-song env needs MultiSongEnv(residual=True) "
                "(env_make_kwargs adds it)"
            )
        return env
    u = env.unwrapped
    demo = from_midi(u.trajectory, control_timestep=u.control_timestep, env=u)
    return ResidualIK(env, demo, **residual_kwargs(wrapper))


def residual_kwargs(wrapper: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`~pianomime_env.control.residual.ResidualIK`'s arguments from a wrapper
    configuration (``residual_scale``, ``finger_residual_scale``, ``sustain``,
    ``n_demo_frames``, ``nominal``; defaults for the optional ones)."""
    return {
        "residual_scale": float(wrapper["residual_scale"]),
        "finger_residual_scale": wrapper.get("finger_residual_scale"),
        "sustain": wrapper.get("sustain", "score"),
        "n_demo_frames": int(wrapper.get("n_demo_frames", 4)),
        "nominal": wrapper.get("nominal", "sight-reader"),
    }


class FlattenVectorObservation(gym.vector.VectorWrapper):
    """``FlattenObservation`` for a vector env in either autoreset mode.

    Observations ``(N, ...)`` (a ``Dict`` of arrays, or any space) become ``Box(N, D)`` rows equal
    to ``gymnasium.spaces.flatten(single_observation_space, obs_i)``, i.e. what
    ``SyncVectorEnv`` over ``gymnasium.wrappers.FlattenObservation`` envs returns; with
    ``SAME_STEP`` each ``infos["final_obs"][i]`` is flattened too. (Gymnasium 1.4's
    ``gymnasium.wrappers.vector.FlattenObservation`` refuses ``SAME_STEP`` vector envs: its
    base ``VectorObservationWrapper`` accepts only ``NEXT_STEP`` and ``DISABLED``.)
    """

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        self._inner_single = env.single_observation_space
        self.single_observation_space = gym.spaces.flatten_space(self._inner_single)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        space = self._inner_single
        self._keys = list(space.spaces) if isinstance(space, gym.spaces.Dict) else None
        if self._keys is not None and not all(
            isinstance(s, gym.spaces.Box) and s.dtype == self.single_observation_space.dtype
            for s in space.spaces.values()
        ):
            self._keys = None  # the general (per-env) path

    def _flatten(self, obs: Any) -> np.ndarray:
        dtype = self.single_observation_space.dtype
        if self._keys is not None:  # Dict of same-dtype Boxes: one concatenate over the batch
            parts = [np.asarray(obs[k], dtype).reshape(self.num_envs, -1) for k in self._keys]
            return np.concatenate(parts, axis=1)
        rows = gym.vector.utils.iterate(self.env.observation_space, obs)
        return np.stack([gym.spaces.flatten(self._inner_single, o) for o in rows]).astype(dtype)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, infos = self.env.reset(**kwargs)
        return self._flatten(obs), infos

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        if "final_obs" in infos:
            final = infos["final_obs"].copy()
            for i in np.flatnonzero(infos["_final_obs"]):
                final[i] = gym.spaces.flatten(self._inner_single, final[i])
            infos = {**infos, "final_obs": final}
        return self._flatten(obs), rewards, terminations, truncations, infos


class _SingleEnvFactory:
    """A picklable ``env_fn`` for Sync/AsyncVectorEnv: ``gym.make`` + residual + flatten."""

    def __init__(
        self, env_id: str, kwargs: dict[str, Any], residual: dict[str, Any] | None, flatten: bool
    ) -> None:
        self.env_id, self.kwargs, self.residual, self.flatten = env_id, kwargs, residual, flatten

    def __call__(self) -> gym.Env:
        env = gym.make(self.env_id, **self.kwargs)
        if self.residual is not None:
            env = wrap_env(env, self.residual)
        return gym.wrappers.FlattenObservation(env) if self.flatten else env


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    vectorization: Literal["native", "sync", "async"] = "native",
    autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
    wrapper: Mapping[str, Any] | None = None,
    flatten: bool = True,
    num_threads: int | None = None,
    **env_kwargs: Any,
) -> VectorEnv:
    """A vector env of ``env_id`` for training: the same envs whichever ``vectorization``.

    Args:
        env_id: a ``PianoMime-*`` id (``PianoMime-<Song>-v0``, ``PianoMime-v0`` with ``midi=``,
            a registered song, ``PianoMime-MultiSong-v0``).
        num_envs: N.
        vectorization: ``"native"`` (:class:`PianoMimeVectorEnv` / :class:`MultiSongVectorEnv`
            through ``gym.make_vec(..., vectorization_mode="vector_entry_point")``), ``"sync"``
            (``SyncVectorEnv``) or ``"async"`` (``AsyncVectorEnv``, one process per env).
        autoreset_mode: default ``SAME_STEP`` (``infos["final_obs"]`` holds the last
            observation of an ended episode; no transition is a reset step).
        wrapper: the policy checkpoint's wrapper configuration
            (``pianomime_env.learning.policies``): ``{"residual": False}`` / None, or
            ``{"residual": True, "residual_scale", "finger_residual_scale" (optional),
            "sustain", "n_demo_frames", "nominal"}``: each env in ``ResidualIK`` around the
            sight-reader, as ``envs.making.wrap_env`` does (for the multi-song env,
            ``MultiSongEnv(residual=True, residual_scale, finger_residual_scale)``, as
            ``envs.making.env_make_kwargs`` does).
        flatten: flatten the ``Dict`` observations into ``Box(N, D)`` float32
            (``FlattenObservation``; for native, :class:`FlattenVectorObservation`, its vector
            version that also takes ``SAME_STEP``).
        num_threads: native only: the pool's threads (default ``os.cpu_count()``).
        **env_kwargs: the env's arguments (as ``gym.make(env_id, **env_kwargs)``).

    Returns:
        a ``gymnasium.vector.VectorEnv`` (wrapped in ``FlattenObservation`` when ``flatten``),
        ``metadata["autoreset_mode"]`` = ``autoreset_mode``.
    """
    mode = autoreset_mode_of(autoreset_mode)
    config = dict(wrapper or {})
    kwargs = env_make_kwargs(env_id, env_kwargs, config)  # the multi-song env wraps itself
    per_env = bool(config.get("residual", False)) and not is_multi_song(env_id)
    if vectorization == "native":
        native_kwargs = dict(kwargs)
        if per_env:
            native_kwargs.update(residual=True, **residual_kwargs(config))
        if num_threads is not None:
            native_kwargs["num_threads"] = num_threads
        envs: VectorEnv = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=mode,
            **native_kwargs,
        )
        return FlattenVectorObservation(envs) if flatten else envs
    if vectorization not in ("sync", "async"):
        raise ValueError(
            f"vectorization must be 'native', 'sync' or 'async', got {vectorization!r}"
        )
    if num_threads is not None:
        raise ValueError("num_threads is for vectorization='native'")
    factory = _SingleEnvFactory(env_id, kwargs, config if per_env else None, flatten)
    cls = gym.vector.AsyncVectorEnv if vectorization == "async" else gym.vector.SyncVectorEnv
    return cls([factory] * num_envs, autoreset_mode=mode)
