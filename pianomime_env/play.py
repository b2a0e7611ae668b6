"""Roll out one episode of a song with a policy and save what a person wants to look at.

``play`` writes ``metrics.json`` (the musical metrics, the song, the policy, the settings),
``pianoroll.png`` (goal vs played keys) and, optionally, ``performance.mp4`` (the rendered
episode at the control rate).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.env import PianoMimeEnv

Policy = Callable[[Any], np.ndarray]


def make_policy(name: str, env: PianoMimeEnv, seed: int = 0) -> Policy:
    """A policy ``obs -> action`` by name: ``idle``, ``random``, ``sight-reader`` or a checkpoint."""
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
    path = Path(name)
    if path.exists():
        from pianomime_env.policies import load_policy

        return load_policy(path, env)
    raise ValueError(
        f"unknown policy {name!r}: use 'sight-reader', 'random', 'idle' or a checkpoint path "
        "that exists"
    )


def play(
    song: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    policy: str = "sight-reader",
    video: bool = True,
    width: int = 640,
    height: int = 480,
    camera: str = "back",
    seed: int = 0,
    stretch: float = 1.0,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Plays ``song`` once; returns (and writes) the result dictionary."""
    from tqdm import tqdm

    out = Path(out_dir)
    env = PianoMimeEnv(
        song,
        stretch=stretch,
        render_mode="rgb_array" if video else None,
        width=width,
        height=height,
        camera=camera,
        **(env_kwargs or {}),
    )
    act = make_policy(policy, env, seed)
    obs, _ = env.reset(seed=seed)
    if hasattr(act, "reset"):
        act.reset()
    frames = [env.render()] if video else []
    total_reward, info = 0.0, {}
    start = time.perf_counter()
    for _ in tqdm(range(env.n_steps), desc=f"playing {env.song.name}", unit="step", leave=False):
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total_reward += reward
        if video:
            frames.append(env.render())
        if terminated or truncated:
            break
    elapsed = time.perf_counter() - start
    result = {
        "song": env.song.name,
        "source": str(env.song.source),
        "policy": policy,
        "steps": env.t,
        "seed": seed,
        "stretch": stretch,
        "env_kwargs": env_kwargs or {},
        "return": total_reward,
        "seconds": elapsed,
        "metrics": info["metrics"],
    }
    out.mkdir(parents=True, exist_ok=True)
    from pianomime_env.media import plot_piano_roll

    played = env.played_keys
    roll_path = plot_piano_roll(
        out / "pianoroll.png",
        env.trajectory.keys[: len(played)],
        played,
        control_timestep=env.control_timestep,
        title=f"{env.song.name} — {policy}: F1 {info['metrics']['f1']:.2f}, "
        f"note-onset F1 {info['metrics']['note_f1']:.2f}",
    )
    result["pianoroll_path"] = str(roll_path)
    if video:
        from pianomime_env.media import write_video

        video_path = out / "performance.mp4"
        write_video(video_path, frames, fps=1.0 / env.control_timestep)
        result["video_path"] = str(video_path)
    metrics_path = out / "metrics.json"
    result["metrics_path"] = str(metrics_path)
    tmp = metrics_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, metrics_path)
    env.close()
    return result
