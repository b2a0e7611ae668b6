"""Playing a policy on songs and scoring it: the policies by name, the evaluation env of a song,
one scored episode, and the held-out songs every learner is compared on.

``baselines/evaluate.py`` (a table over many songs), ``pianomime play`` and the imitation
baselines' held-out evaluations all play through :func:`evaluate_song` / :func:`make_policy`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.music.songs import Song
from pianomime_env.music.sources import load_song

__all__ = [
    "HELDOUT_SONGS",
    "Policy",
    "check_heldout",
    "evaluate_checkpoint",
    "evaluate_song",
    "make_policy",
    "song_env",
    "truncate_song",
]

#: A policy: observation -> action.
Policy = Callable[[Any], np.ndarray]

#: Real pieces the sight-reader was never tuned on, from the training collections only (Bach
#: chorales, folk tunes); the corpus's other composers are reserved for final evaluation.
HELDOUT_SONGS = (
    "music21:bach/bwv66.6",
    "music21:bach/bwv7.7",
    "music21:bach/bwv40.8",
    "music21:bach/bwv244.3",
    "music21:essenFolksong/altdeu10#1",
    "music21:ryansMammoth/7thRegimentReel",
    "music21:oneills1850/0001-0050#12",
)


def make_policy(name: str, env: PianoMimeEnv, seed: int = 0) -> Policy:
    """A policy ``obs -> action`` by name: ``idle``, ``random``, ``sight-reader``,
    ``sight-reader-lookahead`` (:class:`~pianomime_env.control.lookahead.LookaheadSightReader`) or a
    checkpoint."""
    if name == "idle":
        # Hold every joint at its initial (zero) position, clipped into the action bounds.
        action = np.clip(np.zeros(env.action_space.shape), env.action_low, env.action_high)
        return lambda obs: action
    if name == "random":
        env.action_space.seed(seed)
        return lambda obs: env.action_space.sample()
    if name in ("sight-reader", "sightreader"):
        from pianomime_env.control.sightreader import SightReader

        reader = SightReader(env)
        return reader
    if name == "sight-reader-lookahead":
        from pianomime_env.control.lookahead import LookaheadSightReader

        return LookaheadSightReader(env)
    path = Path(name)
    if path.exists():
        from pianomime_env.learning.policies import load_policy

        return load_policy(path, env)
    raise ValueError(
        f"unknown policy {name!r}: use 'sight-reader', 'sight-reader-lookahead', 'random', "
        "'idle' or a checkpoint path that exists"
    )


def song_env(song: str, max_seconds: float, trim_silence: bool) -> PianoMimeEnv:
    """The evaluation env of ``song``: silence trimmed, capped at ``max_seconds`` (0: whole)."""
    source = load_song(song)
    if trim_silence:
        source = source.trim_silence()
    if max_seconds > 0 and source.duration > max_seconds:
        source = truncate_song(source, max_seconds)
    return PianoMimeEnv(source)


def evaluate_song(
    song: str, policy: str, max_seconds: float, trim_silence: bool, seed: int
) -> dict:
    """Plays one song once with ``policy``; returns its metrics row."""
    env = song_env(song, max_seconds, trim_silence)
    act = make_policy(policy, env, seed)
    obs, _ = env.reset(seed=seed)
    if hasattr(act, "reset"):
        act.reset()
    start = time.perf_counter()
    info: dict = {}
    for _ in range(env.n_steps):
        obs, _, terminated, truncated, info = env.step(act(obs))
        if terminated or truncated:
            break
    return {
        "song": song,
        "steps": env.t,
        "seconds_per_step": (time.perf_counter() - start) / max(env.t, 1),
        **info["metrics"],
    }


def check_heldout(eval_songs: Sequence[str], train_songs: Sequence[str]) -> None:
    """``SystemExit`` naming the evaluation songs that are also training songs (compared as
    given and by :func:`~pianomime_env.music.sources.song_label`)."""
    from pianomime_env.music.sources import song_label

    train = set(train_songs) | {song_label(s) for s in train_songs}
    bad = [s for s in eval_songs if s in train or song_label(s) in train]
    if bad:
        raise SystemExit(f"--eval-songs {bad} are in the training dataset; evaluate on others")


def evaluate_checkpoint(
    checkpoint: str | Path,
    songs: Sequence[str],
    max_seconds: float,
    seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Plays the policy checkpoint once on each of ``songs`` (silence trimmed, at most
    ``max_seconds`` of each, through :func:`~pianomime_env.learning.policies.load_policy`).

    Returns:
        ``{"f1": mean F1, "note_f1": mean note F1, "songs": {song: F1}}``.
    """
    from tqdm import tqdm

    rows = [
        evaluate_song(s, str(checkpoint), max_seconds, True, seed)
        for s in tqdm(songs, desc="eval", leave=False, disable=not progress)
    ]
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("f1", "note_f1")}
    return {**means, "songs": {r["song"]: float(r["f1"]) for r in rows}}


def truncate_song(song: Song, seconds: float) -> Song:
    """The notes of ``song`` that start before ``seconds``, cut at ``seconds``."""
    keep = song.start < seconds
    pedal = song.sustain_time < seconds
    return dataclasses.replace(
        song,
        pitch=song.pitch[keep],
        start=song.start[keep],
        end=np.minimum(song.end[keep], seconds),
        velocity=song.velocity[keep],
        fingering=song.fingering[keep],
        sustain_time=song.sustain_time[pedal],
        sustain_value=song.sustain_value[pedal],
        sustain_instrument=None
        if song.sustain_instrument is None
        else song.sustain_instrument[pedal],
    )
