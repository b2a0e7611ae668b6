"""Benchmark: what ``fast_physics`` costs in playing and gains in speed (the sight-reader plays).

For each song and each physics variant, the sight-reader plays one whole episode (silence trimmed,
at most ``--max-seconds`` of the song) and we record RoboPianist's per-step F1, the note-onset F1,
instability warnings, and the time spent inside ``env.step`` alone (the controller excluded).
Speed ratios are per song against the default physics measured in the same worker, so machine
drift between songs cancels; the table reports their median. Method and results:
docs/benchmarks.md ("Fast physics").

Usage:
    .venv/bin/python benchmarks/bench_fast_physics.py --out docs/fast-physics-results.json
    .venv/bin/python benchmarks/bench_fast_physics.py --songs CMajorScaleOneHand --variants fast
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# Env kwargs of each candidate; "default" is RoboPianist's physics.
VARIANTS: dict[str, dict] = {
    "default": {},
    "fast": {"fast_physics": True},
    "dt0.00625": {"physics_timestep": 0.00625},
    "fast+no-hand-collisions": {"fast_physics": True, "disable_hand_collisions": True},
}


def _songs(suite: str) -> list[str]:
    from baselines.evaluate import HELDOUT_SONGS

    from pianomime_env.songs import BUILTIN_SONGS

    return {
        "builtin": list(BUILTIN_SONGS),
        "heldout": list(HELDOUT_SONGS),
        "all": list(BUILTIN_SONGS) + list(HELDOUT_SONGS),
    }[suite]


def play_song(song: str, variants: list[str], max_seconds: float) -> dict:
    """Plays ``song`` once per variant; returns {variant: metrics + step seconds}."""
    from baselines.evaluate import _truncate

    from pianomime_env.env import PianoMimeEnv
    from pianomime_env.sightreader import SightReader
    from pianomime_env.songs import load_song

    source = load_song(song).trim_silence()
    if max_seconds > 0 and source.duration > max_seconds:
        source = _truncate(source, max_seconds)
    rows = {}
    for name in variants:
        env = PianoMimeEnv(source, **VARIANTS[name])
        reader = SightReader(env)
        obs, _ = env.reset(seed=0)
        reader.reset()
        step_s, unstable, info = 0.0, 0, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(env.n_steps):
                action = reader(obs)
                t0 = time.perf_counter()
                obs, _, terminated, truncated, info = env.step(action)
                step_s += time.perf_counter() - t0
                unstable += info["physics_unstable"]
                if terminated or truncated:
                    break
        m = info["metrics"]
        rows[name] = {
            "f1": m["f1"],
            "note_f1": m["note_f1"],
            "steps": env.t,
            "env_step_ms": 1e3 * step_s / env.t,
            "unstable_steps": unstable,
            "physics_timestep": env.physics_timestep,
        }
        env.close()
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["builtin", "heldout", "all"], default="all")
    parser.add_argument("--songs", nargs="*", default=None, help="overrides --suite")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    variants = ["default"] + [v for v in args.variants if v != "default"]
    songs = args.songs or _songs(args.suite)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(play_song, s, variants, args.max_seconds) for s in songs]
        per_song = {s: f.result() for s, f in zip(songs, futures)}
    summary = {}
    for v in variants:
        deltas = [per_song[s][v]["f1"] - per_song[s]["default"]["f1"] for s in songs]
        speed = [
            per_song[s]["default"]["env_step_ms"] / per_song[s][v]["env_step_ms"] for s in songs
        ]
        summary[v] = {
            "kwargs": VARIANTS[v],
            "speedup_median": statistics.median(speed),
            "mean_f1": statistics.fmean(per_song[s][v]["f1"] for s in songs),
            "mean_note_f1": statistics.fmean(per_song[s][v]["note_f1"] for s in songs),
            "max_abs_f1_delta": max(abs(d) for d in deltas),
            "songs_within_0.02": sum(abs(d) <= 0.02 for d in deltas),
            "unstable_steps": sum(per_song[s][v]["unstable_steps"] for s in songs),
        }
    result = {
        "command": "python benchmarks/bench_fast_physics.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs",
        "wall_s": time.perf_counter() - started,
        "songs": per_song,
        "summary": summary,
    }
    print(f"{'song':40s} " + " ".join(f"{v[:22]:>24s}" for v in variants))
    for s in songs:
        cells = [
            f"{per_song[s][v]['f1']:.3f} ({per_song[s][v]['env_step_ms']:.1f} ms)" for v in variants
        ]
        print(f"{s[:40]:40s} " + " ".join(f"{c:>24s}" for c in cells))
    for v, row in summary.items():
        print(
            f"{v}: speed x{row['speedup_median']:.2f}, mean F1 {row['mean_f1']:.3f}, "
            f"max |dF1| {row['max_abs_f1_delta']:.3f}, within 0.02: "
            f"{row['songs_within_0.02']}/{len(songs)}, unstable steps {row['unstable_steps']}"
        )
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.out)
    return result


if __name__ == "__main__":
    main()
