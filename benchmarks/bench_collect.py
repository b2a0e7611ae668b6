"""Benchmark: expert data collection (``pianomime collect``) with the sight-reader.

Collects the same songs x episodes three ways — in this process (``--workers 1``), a local
process pool, and a local Ray instance (one task per song) — each into a fresh Minari root,
and reports wall time (everything: start-up, rollouts, writing the dataset), episodes/hour,
env steps/s and bytes per env step on disk. Then it works out what an RP1M-scale collection
(2k songs x 500 episodes of 550-step segments) costs with this pipeline from the measured
single-worker rate (env steps per CPU-second of that process), next to RP1M's ~44k GPU-hours of expert training.

Usage:
    .venv/bin/python benchmarks/bench_collect.py                       # the 8 built-in songs
    .venv/bin/python benchmarks/bench_collect.py --songs corpus:bach --max-songs 4 --modes pool
    .venv/bin/python benchmarks/bench_collect.py --out docs/bench-collect.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pianomime_env.music.songs import BUILTIN_SONGS  # noqa: E402

# RP1M (Zhao et al., 2024): ~2k songs, one DroQ expert per song (8M steps, ~21 GPU-hours each),
# 500 rollouts per song of 550-step segments.
RP1M_SONGS = 2000
RP1M_EPISODES = 500
RP1M_SEGMENT = 550
RP1M_GPU_HOURS = 44_000


def run_mode(mode: str, songs: list[str], args: argparse.Namespace) -> dict:
    from pianomime_env.collection.collect import collect
    from pianomime_env.learning.datasets import dataset_info

    with tempfile.TemporaryDirectory(prefix=f"bench-collect-{mode}-") as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        load = os.getloadavg()[0]
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        summary = collect(
            f"bench/{mode}-v0",
            songs,
            episodes=args.episodes,
            noise=args.noise,
            seed=args.seed,
            segment_steps=args.segment_steps,
            workers=1 if mode == "inproc" else args.workers,
            ray=mode == "ray",
            max_songs=args.max_songs,
        )
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        info = dataset_info(f"bench/{mode}-v0")
    return {
        "mode": mode,
        "workers": 1 if mode == "inproc" else args.workers,
        "songs": summary.songs - len(summary.failed),
        "failed": list(summary.failed),
        "episodes": summary.episodes_kept,
        "steps": summary.steps,
        "wall_s": wall,
        "episodes_per_hour": summary.episodes_kept / wall * 3600.0,
        "steps_per_s": summary.steps / wall,
        # CPU time of this process and its reaped children (the pool's workers); Ray's workers
        # are not our children, so n/a there. Less sensitive to other jobs than wall time.
        "cpu_s": cpu if mode != "ray" else None,
        "steps_per_cpu_s": summary.steps / cpu if mode != "ray" and cpu > 0 else None,
        "bytes_per_step": info["bytes_per_step"],
        "size_bytes": info["size_bytes"],
        "mean_f1": info["f1"]["mean"],
        "load_before": load,
    }


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rp1m_estimate(steps_per_cpu_s: float, bytes_per_step: float) -> dict:
    steps = RP1M_SONGS * RP1M_EPISODES * RP1M_SEGMENT
    core_hours = steps / steps_per_cpu_s / 3600.0
    return {
        "env_steps": steps,
        "steps_per_cpu_s": steps_per_cpu_s,
        "cpu_core_hours": core_hours,
        "wall_hours_on_512_cores": core_hours / 512,
        "disk_tb": steps * bytes_per_step / 1e12,
        "rp1m_gpu_hours": RP1M_GPU_HOURS,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", nargs="+", default=list(BUILTIN_SONGS))
    p.add_argument("--max-songs", type=int, default=None)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--segment-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="pool / Ray workers")
    p.add_argument("--modes", nargs="+", default=["inproc", "pool", "ray"])
    p.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = p.parse_args()

    rows = []
    for mode in args.modes:
        if mode == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                print("ray: skipped (pip install -e '.[distributed]')")
                continue
        row = run_mode(mode, args.songs, args)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        "| mode | workers | songs | episodes | env steps | wall (s) | episodes/h | steps/s "
        "| steps per CPU-s | bytes/step | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_cpu = f"{r['steps_per_cpu_s']:.0f}" if r["steps_per_cpu_s"] else "n/a"
        print(
            f"| {r['mode']} | {r['workers']} | {r['songs']} | {r['episodes']} | {r['steps']} | "
            f"{r['wall_s']:.1f} | {r['episodes_per_hour']:.0f} | {r['steps_per_s']:.0f} | "
            f"{per_cpu} | {r['bytes_per_step']:.0f} | {r['load_before']:.1f} |"
        )
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    single = [r for r in rows if r["mode"] == "inproc"]
    if single:
        # One worker = one core: the per-core rate is the single process's steps per CPU-second.
        est = rp1m_estimate(single[0]["steps_per_cpu_s"], single[0]["bytes_per_step"])
        result["rp1m_estimate"] = est
        print()
        print(
            f"RP1M scale ({RP1M_SONGS} songs x {RP1M_EPISODES} episodes x {RP1M_SEGMENT} steps = "
            f"{est['env_steps'] / 1e6:.0f}M env steps) at {est['steps_per_cpu_s']:.0f} "
            f"steps per CPU-second: {est['cpu_core_hours']:.0f} CPU core-hours "
            f"({est['wall_hours_on_512_cores']:.1f} h on 512 cores), "
            f"{est['disk_tb']:.1f} TB on disk; RP1M: ~{RP1M_GPU_HOURS} GPU-hours of expert training"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
