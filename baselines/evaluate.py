"""Evaluate a policy on a set of songs: RoboPianist F1 and note-onset F1, one row per song.

    .venv/bin/python baselines/evaluate.py --songs CMajorScaleOneHand TwinkleTwinkleLittleStar
    .venv/bin/python baselines/evaluate.py --suite builtin --policy sight-reader --out runs/eval
    .venv/bin/python baselines/evaluate.py --suite heldout     # chorales + folk tunes never tuned on
    .venv/bin/python baselines/evaluate.py --songs TwinkleTwinkleRousseau --policy runs/<run>/model.pt

Songs are built-in names, MIDI paths or ``music21:<corpus path>`` (corpus extra). Writes
``results.json`` and ``results.md`` (a Markdown table with the command line) to ``--out``.
Episodes run in parallel worker processes (``--workers``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

# Real pieces the sight-reader was never tuned on, from the training collections only (Bach
# chorales, folk tunes); the corpus's other composers are reserved for final evaluation.
HELDOUT_SONGS = (
    "music21:bach/bwv66.6",
    "music21:bach/bwv7.7",
    "music21:bach/bwv40.8",
    "music21:bach/bwv244.3",
    "music21:essenFolksong/altdeu10#1",
    "music21:ryansMammoth/7thRegimentReel",
    "music21:oneills1850/0001-0050#12",
)


@dataclass
class Args:
    songs: list[str] = field(default_factory=list)
    """Songs to play (names, MIDI paths, music21:<path>); overrides --suite."""
    suite: Literal["builtin", "heldout", "all"] = "builtin"
    """builtin: RoboPianist's 8 songs; heldout: HELDOUT_SONGS; all: both."""
    policy: str = "sight-reader"
    """sight-reader, sight-reader-lookahead, random, idle, or a checkpoint (a model.pt of baselines/ppo.py or droq.py, or
    its run directory; loaded by pianomime_env.policies.load_policy)."""
    max_seconds: float = 30.0
    """Play at most this much of each song (0 = whole song); keeps corpus pieces short."""
    trim_silence: bool = True
    """Drop leading/trailing silence (otherwise silent steps inflate per-step F1)."""
    seed: int = 0
    workers: int = max(1, min(2, os.cpu_count() or 1))
    out: Path | None = None
    """Directory for results.json and results.md."""


def song_env(song: str, max_seconds: float, trim_silence: bool):
    """The evaluation env of ``song``: silence trimmed, capped at ``max_seconds`` (0: whole)."""
    from pianomime_env.env import PianoMimeEnv
    from pianomime_env.songs import load_song

    source = load_song(song)
    if trim_silence:
        source = source.trim_silence()
    if max_seconds > 0 and source.duration > max_seconds:
        source = _truncate(source, max_seconds)
    return PianoMimeEnv(source)


def evaluate_song(
    song: str, policy: str, max_seconds: float, trim_silence: bool, seed: int
) -> dict:
    """Plays one song once with ``policy``; returns its metrics row."""
    from pianomime_env.play import make_policy

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


def _truncate(song, seconds: float):
    """The notes of ``song`` that start before ``seconds``, cut at ``seconds``."""
    import dataclasses

    import numpy as np

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


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| song | steps | F1 | precision | recall | note-onset F1 | note P | note R |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['song']} | {r['steps']} | {r['f1']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['note_f1']:.3f} | {r['note_precision']:.3f} | "
            f"{r['note_recall']:.3f} |"
        )
    if rows:
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("f1", "note_f1")}
        lines.append(f"| **mean** | | **{mean['f1']:.3f}** | | | **{mean['note_f1']:.3f}** | | |")
    return "\n".join(lines)


def main(args: Args) -> list[dict]:
    from pianomime_env.songs import BUILTIN_SONGS

    songs = (
        list(args.songs)
        or {
            "builtin": list(BUILTIN_SONGS),
            "heldout": list(HELDOUT_SONGS),
            "all": list(BUILTIN_SONGS) + list(HELDOUT_SONGS),
        }[args.suite]
    )
    jobs = [(s, args.policy, args.max_seconds, args.trim_silence, args.seed) for s in songs]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(evaluate_song, *zip(*jobs)))
    table = markdown_table(rows)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python " + " ".join(
            shlex.quote(a) for a in ["baselines/evaluate.py"] + sys.argv[1:]
        )
        (args.out / "results.json").write_text(
            json.dumps({"command": command, "rows": rows}, indent=2)
        )
        (args.out / "results.md").write_text(f"`{command}`\n\n{table}\n")
        print(f"wrote {args.out / 'results.md'}")
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
