"""Roll out one episode of a song with a policy and save what a person wants to look at and hear.

``play`` writes ``metrics.json`` (the musical metrics, the song, the policy, the settings),
``pianoroll.png`` (goal vs played keys, with a legend), ``performance.mp4`` (the rendered
episode at the control rate, with the synthesized sound of the keys the hands pressed) and
``target.wav`` (the score's sound). Media pieces that cannot run here are skipped with a
message saying what to install; the metrics are always written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.learning.evaluation import Policy, make_policy
from pianomime_env.music import metrics as metrics_lib


def play(
    song: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    policy: str = "sight-reader-lookahead",
    video: bool = True,
    audio: bool = True,
    width: int = 1024,
    height: int = 576,
    camera: str = "back",
    seed: int = 0,
    stretch: float = 1.0,
    env_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Plays ``song`` once with ``policy``; writes the files below to ``out_dir`` and returns
    the result dictionary (what ``metrics.json`` holds, plus the paths written).

    Files: ``metrics.json``; ``pianoroll.png``; with ``video``, ``performance.mp4`` (one frame
    per control step plus the reset frame, pressed keys green when the score wants them and red
    when not, wanted keys that are up blue, a legend and the time written on frames at least 480
    pixels wide) with, when ``audio``, the synthesized sound of the
    keys actually pressed; with ``audio``, ``target.wav`` (the score, aligned with the video's
    audio track) and, without ``video``, ``performance.wav``.

    Missing media pieces never stop the run: without imageio / PyAV / pyfluidsynth / the
    FluidSynth library / an OpenGL backend the metrics and the piano roll are still written,
    and ``log`` (default: print to stderr) says what is missing and what installs it;
    ``result["media_notes"]`` keeps those messages.

    Args:
        song: song name, gym id, MIDI path or ``Song`` (as :class:`PianoMimeEnv` takes).
        out_dir: output directory (created).
        policy: see :func:`make_policy`; default the look-ahead sight-reader.
        video: render ``performance.mp4``.
        audio: synthesize sound (FluidSynth, robopianist's soundfont).
        width, height: video frame size in pixels.
        camera: camera name (``back``, ``closeup``, ...).
        seed: reset and policy seed.
        stretch: tempo factor (> 1 slower).
        env_kwargs: more :class:`PianoMimeEnv` arguments.
        log: where progress notes go (``None``: stderr).
    """
    say = log or (lambda message: print(message, file=sys.stderr))
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        say(message)

    out = Path(out_dir)
    env = PianoMimeEnv(song, stretch=stretch, **(env_kwargs or {}))
    writer = renderer = None
    try:
        act = make_policy(policy, env, seed)
        audio = audio and _audio_available(note)
        if video:
            from pianomime_env.sim.render import resolve_camera

            resolve_camera(env.model, camera)  # a bad name fails here, before any file is made
        out.mkdir(parents=True, exist_ok=True)
        if video:
            renderer, writer = _open_video(
                env, out / "performance.mp4", width, height, camera, note
            )
            video = writer is not None
        episode = _rollout(env, act, seed, _frame_writer(env, renderer, writer) if video else None)
        result: dict[str, Any] = {
            "song": env.song.name,
            "source": str(env.song.source),
            "policy": policy,
            "steps": env.t,
            "seed": seed,
            "stretch": stretch,
            "env_kwargs": env_kwargs or {},
            "return": episode.total_reward,
            "seconds": episode.seconds,
            "metrics": episode.metrics,
        }
        result["pianoroll_path"] = str(_write_piano_roll(out, env, episode, policy))
        if audio:
            result |= _write_audio(out, env, episode, writer if video else None)
        if video:
            writer, finished = None, writer
            result["video_path"] = str(finished.close())
        result["media_notes"] = notes
        result["metrics_path"] = str(_write_json(out / "metrics.json", result))
        return result
    finally:
        if writer is not None:
            writer.abort()
        if renderer is not None:
            renderer.close()
        env.close()


@dataclass
class Episode:
    """What one played episode leaves: the played and goal rolls (T, 88), the sustain pedal
    (T + 1,: the reset row first), the return, the wall time and the musical metrics."""

    played: np.ndarray
    goal: np.ndarray
    sustain: np.ndarray
    total_reward: float
    seconds: float
    metrics: dict[str, float]


def _audio_available(note: Callable[[str], None]) -> bool:
    from pianomime_env.media import audio as audio_lib

    try:
        audio_lib.check_audio()
    except audio_lib.AudioUnavailableError as exc:
        note(f"no sound: {exc}")
        return False
    return True


def _frame_writer(env: PianoMimeEnv, renderer, writer) -> Callable[[np.ndarray], None]:
    """goal row -> appends the scene's frame (keys coloured against ``goal``) to the video."""

    def write(goal: np.ndarray) -> None:
        seconds = env.t * env.control_timestep
        caption = f"{env.song.name}   {seconds:6.2f} s   step {env.t}/{env.n_steps}"
        image = renderer.render(env.data, env.key_activation, goal, legend=True, caption=caption)
        writer.append(image)

    return write


def _rollout(env: PianoMimeEnv, act: Policy, seed: int, frame) -> Episode:
    """One episode from ``reset(seed)``; ``frame(goal_row)`` (if given) after the reset and
    after every step."""
    from tqdm import tqdm

    obs, _ = env.reset(seed=seed)
    if hasattr(act, "reset"):
        act.reset()
    if frame is not None:
        frame(np.zeros(88))
    sustain = [False]  # the reset row: nothing sounds yet
    total_reward, info = 0.0, {}
    start = time.perf_counter()
    for _ in tqdm(range(env.n_steps), desc=f"playing {env.song.name}", unit="step", leave=False):
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total_reward += reward
        sustain.append(env.sustain_activation)
        if frame is not None:
            frame(env.trajectory.keys[env.t - 1])
        if terminated or truncated:
            break
    seconds = time.perf_counter() - start
    played = env.played_keys
    goal = env.trajectory.keys[: len(played)]
    metrics = info.get("metrics")
    if metrics is None:  # stopped early: score what was played
        metrics = metrics_lib.evaluate(
            goal, env.trajectory.sustain[: len(played)], played, sustain[1:]
        )
    return Episode(played, goal, np.asarray(sustain), total_reward, seconds, metrics)


def _write_piano_roll(out: Path, env: PianoMimeEnv, episode: Episode, policy: str) -> Path:
    from pianomime_env import media

    return media.plot_piano_roll(
        out / "pianoroll.png",
        episode.goal,
        episode.played,
        control_timestep=env.control_timestep,
        title=f"{env.song.name} — {policy}",
        metrics=episode.metrics,
    )


def _write_audio(out: Path, env: PianoMimeEnv, episode: Episode, writer) -> dict[str, str]:
    """``target.wav`` (the score) and the sound of what was played: the video's audio track
    when there is a ``writer``, else ``performance.wav``. Rows line up with the video's frames:
    the reset frame, then one per step."""
    from pianomime_env.media import audio as audio_lib

    dt, n = env.control_timestep, len(episode.played)
    rows = np.concatenate([np.zeros((1, 88), bool), episode.played])
    target_rows = np.concatenate([np.zeros((1, 88)), episode.goal])
    target_sustain = np.concatenate([[0.0], env.trajectory.sustain[:n]])
    samples = audio_lib.synthesize(rows, dt, sustain=episode.sustain)
    target = audio_lib.synthesize(target_rows, dt, sustain=target_sustain)
    paths = {"target_audio_path": str(audio_lib.write_wav(out / "target.wav", target))}
    if writer is not None:
        writer.set_audio(samples, audio_lib.SAMPLE_RATE)
    else:
        paths["performance_audio_path"] = str(audio_lib.write_wav(out / "performance.wav", samples))
    return paths


def _write_json(path: Path, obj: dict[str, Any]) -> Path:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)
    return path


def _open_video(env: PianoMimeEnv, path: Path, width: int, height: int, camera: str, note):
    """A (renderer, writer) pair, or (None, None) with a note saying what is missing."""
    from pianomime_env import media

    try:
        media.check_video()
    except media.MediaUnavailableError as exc:
        note(f"no video: {exc}")
        return None, None
    from pianomime_env.sim.render import SceneRenderer

    try:
        renderer = SceneRenderer(env.model, env.index, width, height, camera)
    except (RuntimeError, ImportError, OSError) as exc:  # no OpenGL backend
        note(f"no video: {exc}")
        return None, None
    return renderer, media.VideoWriter(path, fps=1.0 / env.control_timestep)
