"""Record chosen episodes as videos with sound, and log piano rolls to TensorBoard.

:class:`RecordPerformance` wraps any env whose ``unwrapped`` is a
:class:`~pianomime_env.envs.piano.PianoMimeEnv` (also under ``ResidualIK`` and other wrappers). For
each episode that ``episode_trigger`` picks it writes, into ``folder``:

- ``<prefix>-<episode>.mp4``: one frame per control step plus the reset frame (keys coloured as
  in ``pianomime play``: green correct, red wrong, blue missed) with the synthesized sound of the
  keys actually pressed (FluidSynth; see :mod:`pianomime_env.media.audio`), in sync;
- ``<prefix>-<episode>-pianoroll.png``: goal vs played, with a legend, F1 and note-onset F1.

With a ``summary_writer`` (a TensorBoard ``SummaryWriter`` or a log directory) the piano roll
also goes to TensorBoard as an image (:func:`log_piano_roll`), with the episode's F1 and
note-onset F1 as scalars. torch / tensorboard are imported only when a writer is asked for
(the ``train`` extra).

Example (evaluation videos of every 10th episode)::

    env = RecordPerformance(PianoMimeEnv("TwinkleTwinkleRousseau"), "runs/eval",
                            episode_trigger=lambda i: i % 10 == 0, summary_writer="runs/tb")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pianomime_env import media
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.media import audio as audio_lib
from pianomime_env.music import metrics as metrics_lib


def make_summary_writer(log_dir: str | os.PathLike):
    """A ``torch.utils.tensorboard.SummaryWriter`` for ``log_dir`` (the ``train`` extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            'TensorBoard logging needs torch and tensorboard: pip install -e ".[train]" '
            f"(import failed: {exc})"
        ) from exc
    return SummaryWriter(log_dir=str(log_dir))


def log_piano_roll(
    writer: Any,
    tag: str,
    goal_keys: np.ndarray,
    played_keys: np.ndarray,
    step: int,
    *,
    control_timestep: float = 0.05,
    title: str = "",
    metrics: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Logs the piano roll of an episode to TensorBoard as an image; returns the image.

    Args:
        writer: a ``SummaryWriter`` (anything with ``add_image(tag, img, step,
            dataformats="HWC")``), or a log directory (a writer is made with
            :func:`make_summary_writer` and closed after logging).
        tag: TensorBoard tag, e.g. ``"eval/pianoroll"``.
        goal_keys, played_keys: (T, 88) goal and played rolls.
        step: the global step to log at (e.g. env steps so far).
        control_timestep, title, metrics: as for :func:`pianomime_env.media.plot_piano_roll`.

    Returns:
        (H, W, 3) uint8, the logged image.
    """
    image = media.piano_roll_image(
        goal_keys, played_keys, control_timestep=control_timestep, title=title, metrics=metrics
    )
    own = isinstance(writer, (str, os.PathLike))
    if own:
        writer = make_summary_writer(writer)
    try:
        writer.add_image(tag, image, int(step), dataformats="HWC")
    finally:
        if own:
            writer.close()
    return image


class RecordPerformance(gym.Wrapper):
    """Records chosen episodes: an MP4 with sound and a piano-roll PNG (see the module doc).

    Args:
        env: an env whose ``unwrapped`` is a :class:`PianoMimeEnv` (no ``render_mode`` needed:
            frames are rendered here).
        folder: output directory (created).
        episode_trigger: episode index (0, 1, ...) -> record it? Default: gymnasium's
            ``capped_cubic_video_schedule`` (0, 1, 8, 27, ..., then every 1000th).
        name_prefix: file name prefix.
        video: write the MP4 (needs imageio-ffmpeg and offscreen GL); False: piano rolls only.
        audio: sound in the MP4: ``True`` requires it, ``False`` leaves it out, ``None``
            (default) adds it when FluidSynth can run here, else warns once and records silent
            videos.
        width, height: frame size in pixels (multiples of 8 avoid resizing).
        camera: camera name or id.
        summary_writer: a TensorBoard ``SummaryWriter`` or log directory; each recorded
            episode's piano roll is logged as ``<tag_prefix>/pianoroll`` and its ``f1`` /
            ``note_f1`` as scalars ``<tag_prefix>/f1``, ``<tag_prefix>/note_f1``.
        tag_prefix: TensorBoard tag prefix.
        global_step: () -> the step to log at; default the env steps taken through this
            wrapper.

    Each recorded episode's paths and metrics are appended to :attr:`recordings`, and its last
    step's ``info["recording"]`` holds the same dict.
    """

    def __init__(
        self,
        env: gym.Env,
        folder: str | os.PathLike,
        *,
        episode_trigger: Callable[[int], bool] | None = None,
        name_prefix: str = "episode",
        video: bool = True,
        audio: bool | None = None,
        width: int = 640,
        height: int = 360,
        camera: str | int = "back",
        summary_writer: Any = None,
        tag_prefix: str = "eval",
        global_step: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, PianoMimeEnv):
            raise TypeError(
                f"RecordPerformance needs an env whose unwrapped is a PianoMimeEnv, got "
                f"{type(env.unwrapped).__name__}"
            )
        if episode_trigger is None:
            from gymnasium.utils.save_video import capped_cubic_video_schedule

            episode_trigger = capped_cubic_video_schedule
        self.folder = Path(folder)
        self.episode_trigger = episode_trigger
        self.name_prefix = name_prefix
        self.video, self.width, self.height, self.camera = bool(video), width, height, camera
        if self.video:
            media.check_video()  # fail now, with what to install, not at the first episode
        if audio is None:
            audio = audio_lib.audio_available()
            if not audio:
                try:
                    audio_lib.check_audio()
                except audio_lib.AudioUnavailableError as exc:
                    warnings.warn(f"RecordPerformance: videos without sound: {exc}", stacklevel=2)
        elif audio:
            audio_lib.check_audio()
        self.audio = bool(audio) and self.video
        if isinstance(summary_writer, (str, os.PathLike)):
            summary_writer = make_summary_writer(summary_writer)
            self._owns_writer = True
        else:
            self._owns_writer = False
        self.summary_writer = summary_writer
        self.tag_prefix = tag_prefix
        self.global_step = global_step or (lambda: self.total_steps)
        self.episode_id = -1
        self.total_steps = 0
        self.recordings: list[dict[str, Any]] = []
        self._renderer = None
        self._writer: media.VideoWriter | None = None
        self._recording = False
        self._sustain: list[bool] = []

    @property
    def recording(self) -> bool:
        """Whether the current episode is being recorded."""
        return self._recording

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._recording:  # the last episode ended outside (e.g. a TimeLimit around us)
            self._finish()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_id += 1
        if self.episode_trigger(self.episode_id):
            self._start()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total_steps += 1
        if self._recording:
            base = self.env.unwrapped
            self._sustain.append(base.sustain_activation)
            if self._writer is not None:
                self._writer.append(self._frame(base.trajectory.keys[base.t - 1]))
            if terminated or truncated:
                info = dict(info)
                info["recording"] = self._finish(info.get("metrics"))
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        try:
            if self._recording:
                self._finish()
        finally:
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
            if self._owns_writer and self.summary_writer is not None:
                self.summary_writer.close()
            super().close()

    # -- internals ------------------------------------------------------------------------------

    def _stem(self) -> Path:
        return self.folder / f"{self.name_prefix}-{self.episode_id}"

    def _start(self) -> None:
        base = self.env.unwrapped
        self.folder.mkdir(parents=True, exist_ok=True)
        self._recording = True
        self._sustain = [False]
        if not self.video:
            return
        if self._renderer is None:
            from pianomime_env.sim.render import SceneRenderer

            self._renderer = SceneRenderer(
                base.model, base.index, self.width, self.height, self.camera
            )
        self._writer = media.VideoWriter(
            self._stem().with_suffix(".mp4"), fps=1.0 / base.control_timestep
        )
        self._writer.append(self._frame(np.zeros(88)))

    def _frame(self, goal: np.ndarray) -> np.ndarray:
        base = self.env.unwrapped
        seconds = base.t * base.control_timestep
        caption = f"{base.song.name}   episode {self.episode_id}   {seconds:6.2f} s"
        return self._renderer.render(
            base.data, base.key_activation, goal, legend=True, caption=caption
        )

    def _finish(self, metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
        base = self.env.unwrapped
        self._recording = False
        played = base.played_keys
        first = base.t - len(played)  # the episode's first goal row (reset's start_step)
        goal = base.trajectory.keys[first : base.t]
        sustain = np.asarray(self._sustain[1:], dtype=bool)
        record: dict[str, Any] = {"episode": self.episode_id, "steps": len(played)}
        if len(played) == 0:  # reset, then closed or reset again: nothing to keep
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            return record
        if metrics is None:
            metrics = metrics_lib.evaluate(
                goal, base.trajectory.sustain[first : base.t], played, sustain
            )
        record["metrics"] = dict(metrics)
        title = f"{base.song.name}, episode {self.episode_id}"
        stem = self._stem()
        roll = media.plot_piano_roll(
            stem.with_name(stem.name + "-pianoroll.png"),
            goal,
            played,
            control_timestep=base.control_timestep,
            title=title,
            metrics=metrics,
        )
        record["pianoroll"] = str(roll)
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                if self.audio:
                    rows = np.concatenate([np.zeros((1, 88), bool), played])
                    samples = audio_lib.synthesize(
                        rows, base.control_timestep, sustain=np.asarray(self._sustain)
                    )
                    writer.set_audio(samples, audio_lib.SAMPLE_RATE)
                record["video"] = str(writer.close())
            except BaseException:
                writer.abort()
                raise
        if self.summary_writer is not None:
            step = int(self.global_step())
            log_piano_roll(
                self.summary_writer,
                f"{self.tag_prefix}/pianoroll",
                goal,
                played,
                step,
                control_timestep=base.control_timestep,
                title=title,
                metrics=metrics,
            )
            for name in ("f1", "note_f1"):
                self.summary_writer.add_scalar(f"{self.tag_prefix}/{name}", metrics[name], step)
        self.recordings.append(record)
        return record
