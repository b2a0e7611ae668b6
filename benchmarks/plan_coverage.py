"""Plan coverage per song: the goal key-steps ``from_midi``'s plan gives a pressing finger.

    .venv/bin/python benchmarks/plan_coverage.py                  # built-ins + tuning set
    .venv/bin/python benchmarks/plan_coverage.py --suite builtin --planner v3
    .venv/bin/python benchmarks/plan_coverage.py --max-seconds 30 # as baselines/evaluate.py plays

Coverage is counted as ``benchmarks/residual_ceiling.py`` does (goal key-steps with a finger in
the plan, :func:`pianomime_env.demos.coverage.plan_coverage`); the uncovered ones are split into
those after the note's finger let go (early release), before it arrives, gaps and notes never
fingered. Songs are trimmed of silence; whole songs unless ``--max-seconds``. No physics: a
second or so per song. The tuning set is the one of docs/sightreader.md (never the held-out
``HELDOUT_SONGS``: ``--songs`` refuses them unless ``--allow-heldout``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from pianomime_env.demos.coverage import plan_coverage
from pianomime_env.demos.planner import from_midi
from pianomime_env.learning.evaluation import HELDOUT_SONGS, song_env
from pianomime_env.music.songs import BUILTIN_SONGS

#: The tuning set of docs/sightreader.md (chorales and folk tunes, disjoint from HELDOUT_SONGS).
TUNING_SONGS = (
    "music21:bach/bwv1.6",
    "music21:bach/bwv10.7",
    "music21:bach/bwv101.7",
    "music21:bach/bwv26.6",
    "music21:essenFolksong/altdeu10#10",
    "music21:essenFolksong/altdeu10#2",
    "music21:ryansMammoth/AcaciaReel",
)


@dataclass
class Args:
    suite: Literal["builtin", "tuning", "both"] = "both"
    """builtin: the 8 built-in songs; tuning: the tuning set; both."""
    songs: list[str] = field(default_factory=list)
    """Songs to measure instead of --suite."""
    planner: str = "default"
    """Planner version passed to from_midi (default: its default; 'v3': the old plan)."""
    max_seconds: float = 0.0
    """Plan at most this much of each song (0: whole song; evaluate.py plays 30 s)."""
    allow_heldout: bool = False
    """Allow held-out songs in --songs (measure them only once, at the end)."""
    out: Path | None = None
    """Also write the rows as JSON here."""


def measure(song: str, planner: str, max_seconds: float) -> dict:
    env = song_env(song, max_seconds, True)
    kwargs = {} if planner == "default" else {"planner": planner}
    start = time.perf_counter()
    demo = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env, **kwargs)
    seconds = time.perf_counter() - start
    c = plan_coverage(demo, env.trajectory.keys)
    env.close()
    return {"song": song, "coverage": c.fraction, "plan_s": seconds, **c.__dict__}


def main(args: Args) -> list[dict]:
    songs = list(args.songs)
    if not songs:
        songs = [*(BUILTIN_SONGS if args.suite != "tuning" else ())]
        songs += [*(TUNING_SONGS if args.suite != "builtin" else ())]
    bad = [s for s in songs if s in HELDOUT_SONGS]
    if bad and not args.allow_heldout:
        raise SystemExit(f"{bad} are held-out songs; pass --allow-heldout to measure them")
    rows = []
    print("| song | goal key-steps | covered | coverage | after release | other | plan s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in songs:
        r = measure(s, args.planner, args.max_seconds)
        rows.append(r)
        other = r["before_finger"] + r["gap"] + r["never"]
        print(
            f"| {s} | {r['goal']} | {r['covered']} | {r['coverage']:.3f} | "
            f"{r['after_release']} | {other} | {r['plan_s']:.2f} |"
        )
    for name, group in (
        ("built-in", [r for r in rows if r["song"] in BUILTIN_SONGS]),
        ("tuning set", [r for r in rows if r["song"] in TUNING_SONGS]),
        ("all", rows),
    ):
        if group:
            pooled = sum(r["covered"] for r in group) / max(sum(r["goal"] for r in group), 1)
            mean = sum(r["coverage"] for r in group) / len(group)
            print(f"{name}: pooled coverage {pooled:.3f}, mean over songs {mean:.3f}")
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
