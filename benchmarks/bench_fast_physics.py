"""Benchmark: what ``fast_physics`` costs in playing and gains in speed (the sight-reader plays).

For each song and each physics variant, the sight-reader plays one whole episode (silence trimmed,
at most ``--max-seconds`` of the song) and we record RoboPianist's per-step F1, the note-onset F1,
instability warnings, and the time spent inside ``env.step`` alone (the controller excluded).
All variants of a song step in lockstep (one env step each in turn), so load on a shared machine
hits them alike; speed ratios are per song against the default physics, and the table reports
their median. ``--repeats K`` plays each song K times from slightly perturbed start poses (the
same perturbation for every variant) and compares per-song mean F1: closed-loop F1 moves by a few
hundredths under *any* tiny change, and the repeats measure that noise floor. Method and results:
docs/benchmarks.md ("Fast physics").

Usage:
    .venv/bin/python benchmarks/bench_fast_physics.py --variants fast --repeats 3 \
        --out docs/fast-physics-results.json
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

#: Std of the initial hand-joint perturbation of repeats > 0 (rad).
PERTURB_RAD = 1e-3
# Env kwargs of each candidate; "default" is RoboPianist's physics.
VARIANTS: dict[str, dict] = {
    "default": {},
    "fast": {"fast_physics": True},
    "dt0.00833": {"physics_timestep": 0.05 / 6},
    "fast+no-hand-collisions": {"fast_physics": True, "disable_hand_collisions": True},
}


def _songs(suite: str) -> list[str]:
    from pianomime_env.learning.evaluation import HELDOUT_SONGS
    from pianomime_env.music.songs import BUILTIN_SONGS

    return {
        "builtin": list(BUILTIN_SONGS),
        "heldout": list(HELDOUT_SONGS),
        "all": list(BUILTIN_SONGS) + list(HELDOUT_SONGS),
    }[suite]


def play_song(song: str, variants: list[str], max_seconds: float, repeat: int) -> dict:
    """Plays ``song`` once per variant, all variants in lockstep (one env step each in turn, so
    load on the machine hits them alike); returns {variant: metrics + env-step ms}.

    ``repeat`` > 0 starts every variant's hands from the same small random pose perturbation
    (N(0, PERTURB_RAD) per joint, seeded by ``repeat``): closed-loop F1 is sensitive to tiny
    changes, and repeats measure that sensitivity, the noise floor any physics change is
    compared with.
    """
    import numpy as np

    from pianomime_env.control.sightreader import SightReader
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.evaluation import truncate_song as _truncate
    from pianomime_env.music.sources import load_song

    source = load_song(song).trim_silence()
    if max_seconds > 0 and source.duration > max_seconds:
        source = _truncate(source, max_seconds)
    envs, readers, obs = {}, {}, {}
    for name in variants:
        env = envs[name] = PianoMimeEnv(source, **VARIANTS[name])
        options = {}
        if repeat:
            rng = np.random.default_rng(repeat)
            options["hand_qpos"] = rng.normal(0.0, PERTURB_RAD, env.index.hand_qpos.shape)
        obs[name], _ = env.reset(seed=0, options=options)
        readers[name] = SightReader(env)
    step_s = dict.fromkeys(variants, 0.0)
    unstable = dict.fromkeys(variants, 0)
    final: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(final) < len(variants):
            for name in variants:
                if name in final:
                    continue
                action = readers[name](obs[name])
                t0 = time.perf_counter()
                obs[name], _, terminated, truncated, info = envs[name].step(action)
                step_s[name] += time.perf_counter() - t0
                unstable[name] += info["physics_unstable"]
                if terminated or truncated:
                    final[name] = info["metrics"]
    rows = {}
    for name, env in envs.items():
        rows[name] = {
            "f1": final[name]["f1"],
            "note_f1": final[name]["note_f1"],
            "steps": env.t,
            "env_step_ms": 1e3 * step_s[name] / env.t,
            "unstable_steps": unstable[name],
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
    parser.add_argument(
        "--repeats", type=int, default=1, help="episodes per song and variant (1 = unperturbed)"
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    variants = ["default"] + [v for v in args.variants if v != "default"]
    songs = args.songs or _songs(args.suite)
    started = time.perf_counter()
    jobs = [(s, r) for s in songs for r in range(args.repeats)]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(play_song, s, variants, args.max_seconds, r) for s, r in jobs]
        runs = [f.result() for f in futures]
    per_song: dict[str, dict] = {}
    for (song, _), rows in zip(jobs, runs):
        for v, row in rows.items():
            per_song.setdefault(song, {}).setdefault(v, []).append(row)

    def mean(song: str, v: str, key: str) -> float:
        return statistics.fmean(r[key] for r in per_song[song][v])

    summary = {}
    for v in variants:
        deltas = [mean(s, v, "f1") - mean(s, "default", "f1") for s in songs]
        speed = [mean(s, "default", "env_step_ms") / mean(s, v, "env_step_ms") for s in songs]
        summary[v] = {
            "kwargs": VARIANTS[v],
            "speedup_median": statistics.median(speed),
            "mean_f1": statistics.fmean(mean(s, v, "f1") for s in songs),
            "mean_note_f1": statistics.fmean(mean(s, v, "note_f1") for s in songs),
            "f1_delta_per_song": dict(zip(songs, deltas)),
            "max_abs_f1_delta": max(abs(d) for d in deltas),
            "songs_within_0.02": sum(abs(d) <= 0.02 for d in deltas),
            "unstable_steps": sum(r["unstable_steps"] for s in songs for r in per_song[s][v]),
        }
    if args.repeats > 1:  # how much F1 moves under a 1 mrad change of the start pose alone
        spread = [
            max(r["f1"] for r in per_song[s]["default"])
            - min(r["f1"] for r in per_song[s]["default"])
            for s in songs
        ]
        summary["default"]["f1_range_over_repeats_max"] = max(spread)
        summary["default"]["f1_range_over_repeats_median"] = statistics.median(spread)
    result = {
        "command": "python benchmarks/bench_fast_physics.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs",
        "repeats": args.repeats,
        "perturb_rad": PERTURB_RAD,
        "wall_s": time.perf_counter() - started,
        "songs": per_song,
        "summary": summary,
    }
    print(f"{'song (mean F1, env ms/step)':40s} " + " ".join(f"{v[:22]:>24s}" for v in variants))
    for s in songs:
        cells = [f"{mean(s, v, 'f1'):.3f} ({mean(s, v, 'env_step_ms'):.1f} ms)" for v in variants]
        print(f"{s[:40]:40s} " + " ".join(f"{c:>24s}" for c in cells))
    for v, row in summary.items():
        print(
            f"{v}: speed x{row['speedup_median']:.2f}, mean F1 {row['mean_f1']:.3f}, "
            f"max |dF1| {row['max_abs_f1_delta']:.3f}, within 0.02: "
            f"{row['songs_within_0.02']}/{len(songs)}, unstable steps {row['unstable_steps']}"
        )
    if "f1_range_over_repeats_max" in summary["default"]:
        d = summary["default"]
        print(
            f"noise floor (default physics, F1 range over {args.repeats} start poses): "
            f"median {d['f1_range_over_repeats_median']:.3f}, max {d['f1_range_over_repeats_max']:.3f}"
        )
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.out)
    return result


if __name__ == "__main__":
    main()
