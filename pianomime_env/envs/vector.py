"""A native vector env: N pianos stepped in one process, their physics on a pool of threads.

``gym.make_vec("PianoMime-<Song>-v0", num_envs=N, vectorization_mode="vector_entry_point")``
(or ``vectorization_mode=None``: the ids register it as their ``vector_entry_point``) returns a
:class:`PianoMimeVectorEnv`. It holds N :class:`~pianomime_env.envs.piano.PianoMimeEnv` scenes,
each with its own ``MjModel`` and ``MjData``, and steps them in three stages:

1. the N actions are checked and mapped to controls in one numpy call on the ``(N, A)`` batch
   (exactly what each env's ``step`` would do to its row);
2. the control step's physics substeps (``mj_step2``, ``mj_step(n - 1)``, ``mj_step1``: C code
   that releases the GIL) of all N envs run on ``num_threads`` threads (the calling thread
   takes one share, so 2 envs on 2 cores cost one thread hand-off);
3. the Python work after the physics (key state, metrics recorder, reward terms, end check,
   infos, observation) runs on the calling thread, each env's own
   :meth:`~pianomime_env.envs.piano.PianoMimeEnv.finish_step`.

Stages 1 and 3 apply the single env's own operations (row for row, or its own code), so every
env of the vector env produces bit for bit the observations, rewards, flags, infos and metrics
it would produce alone (``tests/test_vector.py`` compares with ``np.array_equal``). Measured on
the 2-core VM (CPU time of the calling thread, ``docs/benchmarks.md``): physics ≈ 2.4-2.7 ms
per env step; stage 3 ≈ 250-310 µs per env step at N = 2 and ≈ 170 at N = 8. Stage 3 is that
expensive, it seems, because it runs right after the physics, which evicts the interpreter's
caches (a single env's ``finish_step`` costs ≈ 35 µs in a warm loop, 135-250 µs after an
``mj_step``). A batched numpy version of stage 3 over the envs measured 117 vs 170 µs per env
step at N = 8 (≈ 2 % of a step) and none at N ≤ 2; it was left out, since it had to duplicate the
env's reward code and reach into its internals.

Autoreset follows Gymnasium 1.x exactly (``autoreset_mode``, default ``NEXT_STEP``):

- ``NEXT_STEP``: the ``step`` after an env's episode ended resets it, ignores its action and
  returns its first observation with reward 0 and ``terminated = truncated = False``;
- ``SAME_STEP``: the ending step resets the env at once and returns the new episode's first
  observation; the ended episode's last one is in ``infos["final_obs"]`` (an object array, one
  entry per env, ``infos["_final_obs"]`` its mask) and its info in ``infos["final_info"]``.

``infos`` are Gymnasium's batched dicts (:meth:`gymnasium.vector.VectorEnv._add_info`): each
key holds an ``(N,)`` array and ``infos["_key"]`` the boolean mask of the envs that reported it.

With ``residual=True`` each env is wrapped in
:class:`~pianomime_env.control.residual.ResidualIK` (nominal: the sight-reader; one
demonstration planned for the song and shared by the N envs): actions are residuals in
``Box(-1, 1)`` and the observation gains ``nominal_action`` and ``demo_fingertips``, exactly as
``ResidualIK(gym.make(id, **env_kwargs), demo)`` on one env. The sight-reader's IK (≈ 1 ms of
numpy and small MuJoCo calls per env step) runs on the calling thread after the physics.

:class:`ThreadedVectorEnv` is the generic part (any Gymnasium envs, each ``step`` run whole on
the pool); ``PianoMime-MultiSong-v0`` uses it through :class:`MultiSongVectorEnv`.

:func:`pianomime_env.envs.making.make_vector_env` is what the training scripts call: native, sync or
async vectorization of an id with the baselines' residual wrapper and flattened observations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from typing import Any, Literal

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)

__all__ = [
    "MultiSongVectorEnv",
    "PianoMimeVectorEnv",
    "ThreadedVectorEnv",
    "autoreset_mode_of",
    "make_multisong_vector_env",
]

#: Keys of the residual wrapper configuration (``envs.making.wrap_env``'s ``wrapper``).
RESIDUAL_KEYS = ("residual_scale", "finger_residual_scale", "sustain", "n_demo_frames", "nominal")

_BatchResult = tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]


def _row(batch: Any, i: int) -> Any:
    """Env ``i``'s observation in a batched one (views)."""
    if isinstance(batch, dict):
        return {k: _row(v, i) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_row(v, i) for v in batch)
    return batch[i]


def _copy_row(batch: Any, i: int) -> Any:
    if isinstance(batch, dict):
        return {k: _copy_row(v, i) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_copy_row(v, i) for v in batch)
    return np.array(batch[i], copy=True)


def _set_row(batch: Any, i: int, value: Any) -> None:
    if isinstance(batch, dict):
        for k in batch:
            _set_row(batch[k], i, value[k])
    elif isinstance(batch, tuple):
        for b, v in zip(batch, value):
            _set_row(b, i, v)
    else:
        batch[i] = value


def _set_rows(batch: Any, ids: list[int], values: Any) -> None:
    if isinstance(batch, dict):
        for k in batch:
            _set_rows(batch[k], ids, values[k])
    elif isinstance(batch, tuple):
        for b, v in zip(batch, values):
            _set_rows(b, ids, v)
    else:
        batch[ids] = values


def autoreset_mode_of(mode: str | AutoresetMode) -> AutoresetMode:
    mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
    if mode == AutoresetMode.DISABLED:
        raise ValueError("autoreset_mode DISABLED is not supported; use NEXT_STEP or SAME_STEP")
    return mode


class ThreadedVectorEnv(VectorEnv):
    """N Gymnasium envs in one process, stepped on a pool of threads, Gymnasium's autoreset.

    Args:
        envs: the sub-envs (already built; same spaces). This vector env owns and closes them.
        autoreset_mode: ``NEXT_STEP`` (default) or ``SAME_STEP`` (see the module docstring).
        num_threads: threads that step envs at once, the calling thread included (default
            ``os.cpu_count()``); 1 steps them one after the other on the calling thread.

    Spaces: ``single_observation_space`` / ``single_action_space`` are the sub-envs' spaces and
    ``observation_space`` / ``action_space`` their :func:`~gymnasium.vector.utils.batch_space`
    with N, as :class:`~gymnasium.vector.SyncVectorEnv` has them. ``step`` returns
    ``(obs (N, ...), rewards (N,) float64, terminated (N,) bool, truncated (N,) bool, infos)``
    with fresh arrays every call (the vector env keeps the last observation only to return it
    for the envs that a partial reset, ``options["reset_mask"]``, leaves alone).
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_threads: int | None = None,
    ) -> None:
        super().__init__()
        if len(envs) < 1:
            raise ValueError("a vector env needs at least one env")
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        if num_threads is None:
            num_threads = os.cpu_count() or 1
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
        self.num_threads = int(num_threads)
        first = self.envs[0]
        self.metadata = dict(first.metadata)
        self.metadata["autoreset_mode"] = self.autoreset_mode
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        for env in self.envs[1:]:
            if (
                env.observation_space != self.single_observation_space
                or env.action_space != self.single_action_space
            ):
                raise RuntimeError("the sub-envs of a vector env must have the same spaces")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        workers = min(self.num_threads, self.num_envs) - 1
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="pianomime-vec") if workers else None
        )
        self._last: Any = None  # the last batched observation returned
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._terminations = np.zeros(self.num_envs, dtype=bool)
        self._truncations = np.zeros(self.num_envs, dtype=bool)

    # -- the pool ------------------------------------------------------------------------------

    def _parallel(self, fn: Callable[[int], Any], ids: Sequence[int]) -> list[Any]:
        """``[fn(i) for i in ids]``, the ids split into ``num_threads`` interleaved shares, the
        first share run on the calling thread."""
        ids = list(ids)
        k = min(self.num_threads, len(ids))
        if k <= 1 or self._pool is None:
            return [fn(i) for i in ids]
        shares = [ids[j::k] for j in range(k)]
        futures = [self._pool.submit(lambda s=s: [fn(i) for i in s]) for s in shares[1:]]
        results = {i: r for i, r in zip(shares[0], [fn(i) for i in shares[0]])}
        for share, fut in zip(shares[1:], futures):
            results.update(zip(share, fut.result()))
        return [results[i] for i in ids]

    # -- what subclasses specialise -----------------------------------------------------------

    def _step_envs(self, ids: list[int], actions: Any) -> _BatchResult:
        """Steps sub-envs ``ids`` with their rows of ``actions``: ``(obs (K, ...) batched,
        rewards (K,), terminated (K,), truncated (K,), [info per env])``. Here each env's
        whole ``step`` runs on the pool; subclasses may batch."""
        rows = {i: actions[i] for i in ids}
        results = self._parallel(lambda i: self.envs[i].step(rows[i]), ids)
        return (
            self._batch([r[0] for r in results]),
            np.array([r[1] for r in results], dtype=np.float64),
            np.array([r[2] for r in results], dtype=bool),
            np.array([r[3] for r in results], dtype=bool),
            [r[4] for r in results],
        )

    def _reset_env(
        self, i: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        return self.envs[i].reset(seed=seed, options=options)

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Resets the sub-envs: env i with ``seed + i`` (an int), ``seed[i]`` (a list) or no
        seed; ``options`` go to every env, except ``options["reset_mask"]`` ((N,) bool array):
        only the masked envs are reset (Gymnasium 1.2+)."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(
                f"If seeds are passed as a list the length must match num_envs={self.num_envs} "
                f"but got length={len(seeds)}."
            )
        options = dict(options) if options is not None else None
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
                raise TypeError("options['reset_mask'] must be a numpy bool array")
            if mask.shape != (self.num_envs,):
                raise ValueError(
                    f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}"
                )
            if not mask.any():
                raise ValueError("options['reset_mask'] must contain at least one True value")
        self._terminations[mask] = False
        self._truncations[mask] = False
        self._autoreset[mask] = False
        infos: dict[str, Any] = {}
        firsts = {}
        for i in np.flatnonzero(mask):
            firsts[int(i)], info = self._reset_env(int(i), seeds[i], options)
            infos = self._add_info(infos, info, int(i))
        if mask.all() or self._last is None:
            obs = self._batch([firsts.get(i) for i in range(self.num_envs)])
        else:  # the other envs keep their last observation, as SyncVectorEnv's do
            obs = deepcopy(self._last)
            for i, first in firsts.items():
                _set_row(obs, i, first)
        self._last = obs
        return obs, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One control step of every env (see the module docstring for the autoreset)."""
        n = self.num_envs
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        if next_step and self._autoreset.any():
            stepping = [i for i in range(n) if not self._autoreset[i]]
        else:
            stepping = list(range(n))
        rewards = np.zeros(n, dtype=np.float64)
        terminations = np.zeros(n, dtype=bool)
        truncations = np.zeros(n, dtype=bool)
        step_infos: list[dict[str, Any] | None] = [None] * n
        if len(stepping) == n:
            obs, rewards, terminations, truncations, env_infos = self._step_envs(stepping, actions)
            step_infos = list(env_infos)
        else:
            obs = create_empty_array(self.single_observation_space, n, fn=np.empty)
            if stepping:
                batch, r, te, tr, env_infos = self._step_envs(stepping, actions)
                _set_rows(obs, stepping, batch)
                rewards[stepping], terminations[stepping], truncations[stepping] = r, te, tr
                for i, info in zip(stepping, env_infos):
                    step_infos[i] = info
        infos: dict[str, Any] = {}
        for i in range(n):
            info = step_infos[i]
            if info is None:  # NEXT_STEP: the episode ended at the last step; reset it
                first, info = self._reset_env(i)
                _set_row(obs, i, first)
            elif not next_step and (terminations[i] or truncations[i]):
                final = _copy_row(obs, i)
                infos = self._add_info(infos, {"final_obs": final, "final_info": info}, i)
                first, info = self._reset_env(i)
                _set_row(obs, i, first)
            infos = self._add_info(infos, info, i)
        self._terminations, self._truncations = terminations, truncations
        self._autoreset = terminations | truncations
        self._last = obs
        return obs, rewards, terminations.copy(), truncations.copy(), infos

    def _batch(self, items: Sequence[Any]) -> Any:
        """Per-env observations -> one batched observation (fresh arrays)."""
        space = self.single_observation_space
        if isinstance(space, gym.spaces.Dict):
            return {k: np.stack([o[k] for o in items]) for k in space.spaces}
        if isinstance(space, gym.spaces.Box):
            return np.stack(items)
        out = create_empty_array(space, len(items), fn=np.empty)
        return concatenate(space, items, out)

    def render(self) -> tuple[Any, ...]:
        """The frame of every sub-env (``render_mode="rgb_array"``: (H, W, 3) uint8 each)."""
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Calls (or reads) ``name`` on every sub-env, as ``SyncVectorEnv.call``."""
        out = []
        for env in self.envs:
            attr = env.get_wrapper_attr(name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return tuple(out)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"need {self.num_envs} values, got {len(values)}")
        for env, value in zip(self.envs, values):
            env.set_wrapper_attr(name, value)

    @property
    def np_random_seed(self) -> tuple[int, ...]:
        return self.get_attr("np_random_seed")

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        return self.get_attr("np_random")

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for env in self.envs:
            env.close()


class PianoMimeVectorEnv(ThreadedVectorEnv):
    """N :class:`~pianomime_env.envs.piano.PianoMimeEnv` of one song, physics on threads.

    Args:
        num_envs: N.
        autoreset_mode: ``NEXT_STEP`` (default, Gymnasium's) or ``SAME_STEP``.
        num_threads: threads stepping physics at once, the calling thread included (default
            ``os.cpu_count()``).
        residual: wrap every env in :class:`~pianomime_env.control.residual.ResidualIK`
            (nominal: the sight-reader), with the settings below.
        residual_scale, finger_residual_scale, sustain, n_demo_frames, nominal, ik_iterations:
            ResidualIK's arguments (same defaults).
        max_episode_steps: truncate episodes after this many steps, as ``gym.make``'s
            ``TimeLimit`` does (None: the song's end, as the single env).
        **env_kwargs: :class:`~pianomime_env.envs.piano.PianoMimeEnv` arguments (``song`` or
            ``midi`` included), the same for every env.

    Spaces: those of ``SyncVectorEnv`` over ``gym.make(id, **env_kwargs)`` (or over
    ``ResidualIK`` of it): ``action_space`` ``Box(N, A)`` float32 (A = 45, 39 reduced, or the
    residual's nu (+ 1)), ``observation_space`` the Dict (or Box with ``flatten=True``) of the
    single env with a leading N axis. ``envs`` holds the N sub-envs (ResidualIK wrappers when
    ``residual``); ``scenes`` the N unwrapped PianoMimeEnv.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_threads: int | None = None,
        residual: bool = False,
        residual_scale: float = 0.02,
        finger_residual_scale: float | None = None,
        sustain: Literal["score", "policy"] = "score",
        n_demo_frames: int = 4,
        nominal: Literal["sight-reader", "ik"] = "sight-reader",
        ik_iterations: int = 3,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        from pianomime_env.envs.piano import PianoMimeEnv

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.env_kwargs = dict(env_kwargs)
        self.max_episode_steps = max_episode_steps
        self.scenes: list[PianoMimeEnv] = [PianoMimeEnv(**env_kwargs) for _ in range(num_envs)]
        self.residual = bool(residual)
        envs: list[gym.Env] = list(self.scenes)
        if self.residual:
            from pianomime_env.control.residual import ResidualIK
            from pianomime_env.demos import from_midi

            u = self.scenes[0]
            # The plan depends only on the song and the scene: one for all N envs (read-only).
            demo = from_midi(u.trajectory, control_timestep=u.control_timestep, env=u)
            envs = [
                ResidualIK(
                    scene,
                    demo,
                    residual_scale=residual_scale,
                    finger_residual_scale=finger_residual_scale,
                    sustain=sustain,
                    n_demo_frames=n_demo_frames,
                    ik_iterations=ik_iterations,
                    nominal=nominal,
                )
                for scene in self.scenes
            ]
            self.demo = demo
        self._residuals = envs if self.residual else None
        first = self.scenes[0]
        self._low = np.asarray(first.action_low, np.float64)
        self._high = np.asarray(first.action_high, np.float64)
        self._normalized = first.normalized_actions
        self._inner_shape = (num_envs, *first.action_space.shape)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        super().__init__(envs, autoreset_mode=autoreset_mode, num_threads=num_threads)

    # -- stepping ------------------------------------------------------------------------------

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        """(K, A) env actions -> (K, A) float64 absolute controls, row for row exactly
        ``PianoMimeEnv``'s own action check (same operations, broadcast over the batch)."""
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actions must be numeric, got {type(actions).__name__}") from exc
        if not np.isfinite(a).all():
            rows, cols = np.nonzero(~np.isfinite(a))
            raise ValueError(
                f"actions contain NaN or inf (env {rows[0]}, index {cols[0]}: "
                f"{self.scenes[0].action_names[cols[0]]})"
            )
        if self._normalized:
            c = np.minimum(np.maximum(a, -1.0), 1.0)
            a = self._low + (c + 1.0) * 0.5 * (self._high - self._low)
        return np.minimum(np.maximum(a, self._low), self._high)

    def _step_envs(self, ids: list[int], actions: Any) -> _BatchResult:
        scenes = self.scenes
        if self._residuals is not None:
            rows = []
            for i in ids:
                wrapper = self._residuals[i]
                absolute = wrapper.residual_to_action(np.asarray(actions[i]))
                wrapper.last_env_action = absolute
                rows.append(scenes[i].to_env_action(absolute))
            inner = np.stack(rows)
        else:
            inner = np.asarray(actions)
            if inner.shape != self._inner_shape:
                raise ValueError(f"actions have shape {inner.shape}, expected {self._inner_shape}")
            if len(ids) != self.num_envs:
                inner = inner[ids]
        for i in ids:
            if scenes[i].needs_reset:
                raise RuntimeError(f"env {i}: call reset() before step()")
        controls = self._check_actions(inner)
        for row, i in enumerate(ids):
            scenes[i].apply_action(controls[row])
        self._parallel(lambda i: scenes[i].simulate(), ids)  # C only: the GIL is released
        results = [scenes[i].finish_step() for i in ids]
        obs = self._inner_batch([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results], dtype=bool)
        truncated = np.array([r[3] for r in results], dtype=bool)
        infos = [r[4] for r in results]
        if self._residuals is not None:
            done = terminated | truncated
            obs = self._batch(
                [
                    self._residuals[i].after_step(_row(obs, j), bool(done[j]))
                    for j, i in enumerate(ids)
                ]
            )
        if self.max_episode_steps is not None:
            self._elapsed[ids] += 1
            truncated = truncated | (self._elapsed[ids] >= self.max_episode_steps)
        return obs, rewards, terminated, truncated, infos

    def _inner_batch(self, items: Sequence[Any]) -> Any:
        """Observations of the unwrapped scenes (Dict or flat Box) -> one batch."""
        if isinstance(items[0], dict):
            return {k: np.stack([o[k] for o in items]) for k in items[0]}
        return np.stack(items)

    def _reset_env(
        self, i: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._elapsed[i] = 0
        return self.envs[i].reset(seed=seed, options=options)


class MultiSongVectorEnv(ThreadedVectorEnv):
    """N :class:`~pianomime_env.envs.multisong.MultiSongEnv`, each ``step`` run on the pool.

    Args:
        num_envs: N.
        autoreset_mode, num_threads: as :class:`ThreadedVectorEnv`.
        **kwargs: ``MultiSongEnv`` arguments (``songs``, ``segment_steps``, ``residual``, ...),
            the same for every env. Env i draws its songs from its own seeded generator.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        num_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        from pianomime_env.envs.multisong import MultiSongEnv

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        envs = [MultiSongEnv(**kwargs) for _ in range(num_envs)]
        super().__init__(envs, autoreset_mode=autoreset_mode, num_threads=num_threads)


def make_multisong_vector_env(num_envs: int = 1, **kwargs: Any) -> MultiSongVectorEnv:
    """The ``vector_entry_point`` of ``PianoMime-MultiSong-v0``."""
    return MultiSongVectorEnv(num_envs, **kwargs)


# -- what the training scripts call -----------------------------------------------------------
