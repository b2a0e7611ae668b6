"""A multi-song training env: a song per reset, fixed-length segments, ResidualIK optional.

``MultiSongEnv(songs, segment_steps=550)`` draws a song at every ``reset`` from the list (or a
corpus query such as ``"corpus:bach"``, :func:`pianomime_env.music.sources.resolve_songs`) with the
env's seeded generator (``reset(seed=...)``), starts at a random step of it (drawn from the same
generator) and truncates the episode after ``segment_steps`` steps (RP1M cuts long songs into
550-step chunks); the song's end terminates it as usual. With ``residual=True`` each song is
wrapped in :class:`~pianomime_env.control.residual.ResidualIK` around the sight-reader, the
demonstration planned once per song and cached with its env (the ``max_cached`` most recent
songs are kept). Every song's env gets the same ``env_kwargs``, so the spaces are those of the
first song (a song whose spaces differ raises ``ValueError``).

Registered as ``PianoMime-MultiSong-v0``::

    env = gym.make("PianoMime-MultiSong-v0", songs=["corpus:bach:bach/bwv1*"], residual=True)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

__all__ = ["MultiSongEnv"]


class MultiSongEnv(gym.Env):
    """A song per reset, a segment of it per episode.

    Args:
        songs: song arguments of :class:`~pianomime_env.envs.piano.PianoMimeEnv` or specs of
            :func:`~pianomime_env.music.sources.resolve_songs` (``corpus:<collection>[:<glob>]``,
            directories of MIDI files); a single string is one spec.
        segment_steps: episode length cap in control steps (None: play to the song's end).
        residual: wrap every song in ResidualIK (sight-reader nominal).
        residual_scale: ResidualIK's residual bound (fraction of each actuator's range).
        finger_residual_scale: ResidualIK's bound for the finger and thumb joints (None: the
            same as ``residual_scale``).
        max_cached: how many songs' envs (and demonstrations) stay built.
        **env_kwargs: PianoMimeEnv arguments shared by every song (``flatten`` must stay False
            with ``residual``).

    ``info`` of ``reset`` and ``step`` carries ``song`` (and ``start_step`` at reset); the step
    that ends a segment carries its ``metrics`` (:func:`pianomime_env.music.metrics.evaluate`), as a
    song's end does;
    ``reset(options={"song": i})`` picks the song by index and ``{"start_step": k}`` the start.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        songs: Sequence[str] | str,
        *,
        segment_steps: int | None = 550,
        residual: bool = False,
        residual_scale: float = 0.02,
        finger_residual_scale: float | None = None,
        max_cached: int = 16,
        **env_kwargs: Any,
    ) -> None:
        from pianomime_env.music.sources import resolve_songs

        self.songs = resolve_songs([songs] if isinstance(songs, str) else list(songs))
        if segment_steps is not None and segment_steps < 1:
            raise ValueError(f"segment_steps must be >= 1 or None, got {segment_steps!r}")
        if max_cached < 1:
            raise ValueError(f"max_cached must be >= 1, got {max_cached!r}")
        self.segment_steps = segment_steps
        self.residual = bool(residual)
        self.residual_scale = float(residual_scale)
        self.finger_residual_scale = finger_residual_scale
        self.max_cached = int(max_cached)
        self.env_kwargs = dict(env_kwargs)
        self._cache: OrderedDict[str, gym.Env] = OrderedDict()
        self.plans = 0  # demonstrations planned so far (one per song while it stays cached)
        self.current: gym.Env = self._song_env(self.songs[0])
        self.observation_space = self.current.observation_space
        self.action_space = self.current.action_space
        self.song = self.songs[0]
        self.start_step = 0
        self._t = 0

    def _song_env(self, song: str) -> gym.Env:
        if song in self._cache:
            self._cache.move_to_end(song)
            return self._cache[song]
        from pianomime_env.envs.piano import PianoMimeEnv

        env: gym.Env = PianoMimeEnv(song, **self.env_kwargs)
        if self.residual:
            from pianomime_env.control.residual import ResidualIK
            from pianomime_env.demos import from_midi

            u = env.unwrapped
            demo = from_midi(u.trajectory, control_timestep=u.control_timestep, env=u)
            self.plans += 1
            env = ResidualIK(
                env,
                demo,
                residual_scale=self.residual_scale,
                finger_residual_scale=self.finger_residual_scale,
            )
        if hasattr(self, "observation_space") and (
            env.observation_space != self.observation_space or env.action_space != self.action_space
        ):
            raise ValueError(
                f"song {song!r} gives other spaces than {self.songs[0]!r}: "
                f"{env.observation_space} / {env.action_space}"
            )
        self._cache[song] = env
        while len(self._cache) > self.max_cached:
            _, old = self._cache.popitem(last=False)
            old.close()
        return env

    @property
    def cached_songs(self) -> list[str]:
        """Songs whose env (and demonstration) are built, least recently used first."""
        return list(self._cache)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        index = options.pop("song", None)
        if index is None:
            index = int(self.np_random.integers(len(self.songs)))
        self.song = self.songs[int(index)]
        self.current = self._song_env(self.song)
        n = int(self.current.unwrapped.n_steps)
        start = options.pop("start_step", None)
        if start is None:
            span = n if self.segment_steps is None else max(1, n - self.segment_steps + 1)
            start = int(self.np_random.integers(0, span)) if self.segment_steps else 0
        self.start_step = int(start)
        inner_seed = int(self.np_random.integers(2**31 - 1))
        obs, info = self.current.reset(
            seed=inner_seed, options={**options, "start_step": self.start_step}
        )
        self._t = 0
        return obs, {**info, "song": self.song, "start_step": self.start_step}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.current.step(action)
        self._t += 1
        if self.segment_steps is not None and self._t >= self.segment_steps and not terminated:
            truncated = True
        info = {**info, "song": self.song}
        if (terminated or truncated) and "metrics" not in info:
            # The segment's musical metrics, as the env reports them at a song's end.
            from pianomime_env.music import metrics

            u = self.current.unwrapped
            sl = slice(self.start_step, self.start_step + self._t)
            info["metrics"] = metrics.evaluate(
                u.trajectory.keys[sl], u.trajectory.sustain[sl], u.played_keys, u.played_sustain
            )
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for env in self._cache.values():
            env.close()
        self._cache.clear()
