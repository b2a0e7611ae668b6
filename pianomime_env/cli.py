"""The ``pianomime`` command.

pianomime play <song id | name | MIDI path> --out DIR   # one episode: metrics.json + performance.mp4
pianomime bench                                          # throughput vs RoboPianist and raw MuJoCo
pianomime songs                                          # list the built-in songs
"""

from __future__ import annotations

import os
import sys

# Headless machines render with EGL unless the user chose a backend; decided before mujoco loads.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import json  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

import tyro  # noqa: E402


@dataclass
class Play:
    """Play one episode of a song and write DIR/metrics.json and DIR/performance.mp4."""

    song: tyro.conf.Positional[str]
    """A built-in song name (see `pianomime songs`), a gym id `PianoMime-<name>-v0`, or a MIDI path."""
    out: Path = Path("runs/play")
    """Output directory (created)."""
    policy: str = "sight-reader"
    """`sight-reader` (plans the score and plays it by IK, no training), `random`, `idle`, or a
    path to a trained checkpoint."""
    video: bool = True
    """Write performance.mp4 (needs offscreen GL: EGL or OSMesa)."""
    width: int = 640
    height: int = 480
    camera: str = "back"
    seed: int = 0
    stretch: float = 1.0
    """Tempo factor (> 1 is slower)."""


@dataclass
class Bench:
    """Measure steps/s of this env vs RoboPianist (Shimmy) vs raw mj_step, and start-up costs."""

    song: str = "TwinkleTwinkleRousseau"
    steps: int = 300
    """Env steps per timing run."""
    runs: int = 3
    """Timing runs; the median is reported."""
    vector: bool = True
    """Also time sync vs async vector envs (2 workers)."""
    out: Path | None = None
    """Optional JSON file for the results."""


@dataclass
class Songs:
    """List the built-in and registered songs."""

    format: Literal["text", "json"] = "text"


def _song_arg(song: str) -> str:
    if song.startswith("PianoMime-") and song.endswith("-v0"):
        return song[len("PianoMime-") : -len("-v0")]
    return song


def run_play(args: Play) -> dict:
    from pianomime_env.play import play

    result = play(
        _song_arg(args.song),
        out_dir=args.out,
        policy=args.policy,
        video=args.video,
        width=args.width,
        height=args.height,
        camera=args.camera,
        seed=args.seed,
        stretch=args.stretch,
    )
    m = result["metrics"]
    print(
        f"{result['song']}: {result['steps']} steps | F1 {m['f1']:.3f} (P {m['precision']:.3f}, "
        f"R {m['recall']:.3f}) | note-onset F1 {m['note_f1']:.3f} "
        f"(P {m['note_precision']:.3f}, R {m['note_recall']:.3f}) | sustain F1 {m['sustain_f1']:.3f}"
    )
    for name in ("metrics", "pianoroll", "video"):
        if result.get(name + "_path"):
            print(f"wrote {result[name + '_path']}")
    return result


def run_bench(args: Bench) -> dict:
    from pianomime_env.benchmark import run_benchmark

    return run_benchmark(
        song=args.song, steps=args.steps, runs=args.runs, vector=args.vector, out=args.out
    )


def run_songs(args: Songs) -> None:
    from pianomime_env import songs

    names = list(songs.BUILTIN_SONGS) + [
        n for n in songs.registered_songs() if n not in songs.BUILTIN_SONGS
    ]
    if args.format == "json":
        print(json.dumps(names))
    else:
        print("\n".join(names))


def main(argv: list[str] | None = None) -> None:
    cmd = tyro.extras.subcommand_cli_from_dict(
        {"play": Play, "bench": Bench, "songs": Songs},
        args=argv,
        prog="pianomime",
    )
    from pianomime_env.songs import SongError

    try:
        if isinstance(cmd, Play):
            run_play(cmd)
        elif isinstance(cmd, Bench):
            run_bench(cmd)
        else:
            run_songs(cmd)
    except (SongError, FileNotFoundError, ValueError) as exc:
        print(f"pianomime: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
