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
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env import metrics as metrics_lib
from pianomime_env.env import PianoMimeEnv

Policy = Callable[[Any], np.ndarray]


def make_policy(name: str, env: PianoMimeEnv, seed: int = 0) -> Policy:
    """A policy ``obs -> action`` by name: ``idle``, ``random``, ``sight-reader``,
    ``sight-reader-lookahead`` (:class:`~pianomime_env.lookahead.LookaheadSightReader`) or a
    checkpoint."""
    if name == "idle":
        # Hold every joint at its initial (zero) position, clipped into the action bounds.
        action = np.clip(np.zeros(env.action_space.shape), env.action_low, env.action_high)
        return lambda obs: action
    if name == "random":
        env.action_space.seed(seed)
        return lambda obs: env.action_space.sample()
    if name in ("sight-reader", "sightreader"):
        from pianomime_env.sightreader import SightReader

        reader = SightReader(env)
        return reader
    if name == "sight-reader-lookahead":
        from pianomime_env.lookahead import LookaheadSightReader

        return LookaheadSightReader(env)
    path = Path(name)
    if path.exists():
        from pianomime_env.policies import load_policy

        return load_policy(path, env)
    raise ValueError(
        f"unknown policy {name!r}: use 'sight-reader', 'sight-reader-lookahead', 'random', "
        "'idle' or a checkpoint path that exists"
    )


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
    from tqdm import tqdm

    from pianomime_env import audio as audio_lib
    from pianomime_env import media

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
        if audio:
            try:
                audio_lib.check_audio()
            except audio_lib.AudioUnavailableError as exc:
                audio = False
                note(f"no sound: {exc}")
        if video:
            from pianomime_env.render import resolve_camera

            resolve_camera(env.model, camera)  # a bad name fails here, before any file is made
        out.mkdir(parents=True, exist_ok=True)
        if video:
            renderer, writer = _open_video(
                env, out / "performance.mp4", width, height, camera, note
            )
            video = writer is not None
        obs, _ = env.reset(seed=seed)
        if hasattr(act, "reset"):
            act.reset()
        no_keys = np.zeros(88)

        def frame(goal: np.ndarray) -> np.ndarray:
            seconds = env.t * env.control_timestep
            caption = f"{env.song.name}   {seconds:6.2f} s   step {env.t}/{env.n_steps}"
            return renderer.render(env.data, env.key_activation, goal, legend=True, caption=caption)

        if video:
            writer.append(frame(no_keys))
        sustain = [False]  # the reset row: nothing sounds yet
        total_reward, info = 0.0, {}
        start = time.perf_counter()
        desc = f"playing {env.song.name}"
        for _ in tqdm(range(env.n_steps), desc=desc, unit="step", leave=False):
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total_reward += reward
            sustain.append(env.sustain_activation)
            if video:
                writer.append(frame(env.trajectory.keys[env.t - 1]))
            if terminated or truncated:
                break
        elapsed = time.perf_counter() - start
        played = env.played_keys
        goal_keys = env.trajectory.keys[: len(played)]
        metrics = info.get("metrics")
        if metrics is None:  # stopped early: score what was played
            metrics = metrics_lib.evaluate(
                goal_keys, env.trajectory.sustain[: len(played)], played, sustain[1:]
            )
        result: dict[str, Any] = {
            "song": env.song.name,
            "source": str(env.song.source),
            "policy": policy,
            "steps": env.t,
            "seed": seed,
            "stretch": stretch,
            "env_kwargs": env_kwargs or {},
            "return": total_reward,
            "seconds": elapsed,
            "metrics": metrics,
        }
        roll_path = media.plot_piano_roll(
            out / "pianoroll.png",
            goal_keys,
            played,
            control_timestep=env.control_timestep,
            title=f"{env.song.name} — {policy}",
            metrics=metrics,
        )
        result["pianoroll_path"] = str(roll_path)
        dt = env.control_timestep
        # Rows aligned with the video's frames: the reset frame, then one per step.
        rows = np.concatenate([np.zeros((1, 88), bool), played])
        target_rows = np.concatenate([np.zeros((1, 88)), goal_keys])
        target_sustain = np.concatenate([[0.0], env.trajectory.sustain[: len(played)]])
        if audio:
            samples = audio_lib.synthesize(rows, dt, sustain=np.asarray(sustain))
            target = audio_lib.synthesize(target_rows, dt, sustain=target_sustain)
            result["target_audio_path"] = str(audio_lib.write_wav(out / "target.wav", target))
            if video:
                writer.set_audio(samples, audio_lib.SAMPLE_RATE)
            else:
                wav = audio_lib.write_wav(out / "performance.wav", samples)
                result["performance_audio_path"] = str(wav)
        if video:
            writer, finished = None, writer
            result["video_path"] = str(finished.close())
        if audio:
            also = "" if video else f"{result['performance_audio_path']} (what was played) and "
            say(f"wrote {also}{result['target_audio_path']} (the score, for comparison)")
        result["media_notes"] = notes
        metrics_path = out / "metrics.json"
        result["metrics_path"] = str(metrics_path)
        tmp = metrics_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, metrics_path)
        return result
    finally:
        if writer is not None:
            writer.abort()
        if renderer is not None:
            renderer.close()
        env.close()


def _open_video(env: PianoMimeEnv, path: Path, width: int, height: int, camera: str, note):
    """A (renderer, writer) pair, or (None, None) with a note saying what is missing."""
    from pianomime_env import media

    try:
        media.check_video()
    except media.MediaUnavailableError as exc:
        note(f"no video: {exc}")
        return None, None
    from pianomime_env.render import SceneRenderer

    try:
        renderer = SceneRenderer(env.model, env.index, width, height, camera)
    except (RuntimeError, ImportError, OSError) as exc:  # no OpenGL backend
        note(f"no video: {exc}")
        return None, None
    return renderer, media.VideoWriter(path, fps=1.0 / env.control_timestep)
