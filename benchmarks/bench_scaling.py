"""Benchmark: how `pianomime collect` scales with workers, and what its fixed costs are.

End to end (``collect`` into a fresh Minari root, everything timed: start-up, rollouts, shards,
the dataset) in four modes, each ``--repeats`` times (medians reported):

- ``inproc``: ``--workers 1``, the songs in this process;
- ``pool-2``: the local process pool, 2 workers;
- ``ray-1`` / ``ray-2``: a local Ray instance with 1 / 2 CPUs (one task per song).

For each: env steps/s and per-core efficiency = steps/s / (workers x the in-process steps/s).
Then the fixed costs that decide a large run, measured alone (medians of ``--repeats``):

- worker start-up: a fresh interpreter importing the env and the sight-reader (what a
  ``spawn``ed pool worker or a new Ray worker pays once), and ``ray.init`` + a first trivial
  task (Ray's own start-up);
- scene load: per song, building ``PianoMimeEnv`` + the sight-reader (its score plan);
- rollout: env steps/s of the sight-reader alone (no load, no writes): the per-core rate;
- shard write (driver): pickling a song's episodes and writing them (temp file + fsync +
  rename), and writing the Minari dataset, per env step.

Usage:
    .venv/bin/python benchmarks/bench_scaling.py --out runs/bench-scaling/builtin.json
    .venv/bin/python benchmarks/bench_scaling.py --songs CMajorScaleTwoHands --episodes 1 \
        --repeats 1 --modes inproc pool-2          # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pianomime_env.music.songs import BUILTIN_SONGS  # noqa: E402

MODES = {"inproc": (1, False), "pool-2": (2, False), "ray-1": (1, True), "ray-2": (2, True)}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def _quiet():
    """collect's bars and lines off the terminal, its workers' too (file descriptors 1, 2)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def run_collect(mode: str, args: argparse.Namespace) -> dict:
    from pianomime_env.collection.collect import collect

    workers, ray = MODES[mode]
    with tempfile.TemporaryDirectory(prefix=f"bench-scaling-{mode}-") as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        with _quiet():
            s = collect(
                f"bench/{mode}-v0",
                args.songs,
                episodes=args.episodes,
                noise=0.05,
                seed=0,
                workers=workers,
                ray=ray,
            )
        wall = time.perf_counter() - t0
    return {"mode": mode, "workers": workers, "steps": s.steps, "wall_s": wall, "load": load}


def fixed_costs(args: argparse.Namespace) -> dict:
    import numpy as np

    from pianomime_env.collection.collect import (
        CollectSettings,
        _env_spec,
        _rollout,
        _write_atomic,
        collect_song,
    )
    from pianomime_env.collection.experts import make_expert
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.datasets import write_dataset

    r = args.repeats
    env_kwargs = {"trim_silence": True, "randomize_hand_positions": False}
    settings = CollectSettings(
        songs=tuple(args.songs), episodes=args.episodes, noise=0.05, env_kwargs=env_kwargs
    )
    out: dict = {}
    # Worker start-up: a fresh interpreter importing what a song task imports.
    code = (
        "import pianomime_env.collection.collect, pianomime_env.envs.piano, "
        "pianomime_env.control.sightreader"
    )
    times = []
    for _ in range(r):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    out["worker_import_s"] = statistics.median(times)
    try:
        import ray

        times = []
        for _ in range(r):
            t0 = time.perf_counter()
            with _quiet():
                ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
                ray.get(ray.remote(lambda: 0).remote())
            times.append(time.perf_counter() - t0)
            ray.shutdown()
        out["ray_init_first_task_s"] = statistics.median(times)
    except ImportError:
        out["ray_init_first_task_s"] = None
    # Scene load (env + sight-reader plan) and the rollout rate, per song.
    load_s, load_steps, roll_s, roll_steps = [], [], [], []
    for song in args.songs:
        loads, rolls = [], []
        for _ in range(r):
            t0 = time.perf_counter()
            env = PianoMimeEnv(song, **env_kwargs)
            expert = make_expert("sight-reader", env, song=song, env_kwargs=env_kwargs)
            loads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ep = _rollout(env, expert, settings, 0, env.n_steps, seed=0)
            rolls.append(time.perf_counter() - t0)
            env.close()
        load_s.append(statistics.median(loads))
        load_steps.append(env.n_steps)
        roll_s.append(statistics.median(rolls))
        roll_steps.append(len(ep["actions"]))
    out["scene_load_s_per_song"] = float(np.mean(load_s))
    out["song_steps_mean"] = float(np.mean(load_steps))
    out["rollout_steps_per_s"] = sum(roll_steps) / sum(roll_s)
    # Driver side: a song's shard, and the dataset, per env step.
    with tempfile.TemporaryDirectory(prefix="bench-scaling-write-") as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        with _quiet():
            results = [collect_song(s, i, settings, root) for i, s in enumerate(args.songs)]
        steps = sum(len(e["actions"]) for res in results for e in res["episodes"])
        times = []
        for _ in range(r):
            t0 = time.perf_counter()
            nbytes = 0
            for i, res in enumerate(results):
                data = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
                nbytes += len(data)
                _write_atomic(Path(root) / "shards" / f"{i}.pkl", data)
            times.append(time.perf_counter() - t0)
        out["shard_write_us_per_step"] = statistics.median(times) / steps * 1e6
        out["shard_bytes_per_step"] = nbytes / steps
        times = []
        for k in range(r):
            t0 = time.perf_counter()
            with _quiet():
                path = write_dataset(
                    f"bench/write{k}-v0",
                    iter([res["episodes"] for res in results]),
                    env_spec=_env_spec(args.songs[0], env_kwargs),
                )
            times.append(time.perf_counter() - t0)
        out["dataset_write_us_per_step"] = statistics.median(times) / steps * 1e6
        size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        out["dataset_bytes_per_step"] = size / steps
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", nargs="+", default=list(BUILTIN_SONGS))
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--no-fixed-costs", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = p.parse_args()

    started = _uptime()
    print(f"start: {started}", flush=True)
    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
    for k in range(args.repeats):  # interleaved, so a change of load hits every mode alike
        for mode in args.modes:
            if MODES[mode][1]:
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print(f"{mode}: skipped (pip install -e '.[distributed]')")
                    continue
            row = run_collect(mode, args)
            runs[mode].append(row)
            print(json.dumps({"repeat": k, **row}), flush=True)
    rows = []
    for mode, rs in runs.items():
        if not rs:
            continue
        walls = [r["wall_s"] for r in rs]
        rows.append(
            {
                "mode": mode,
                "workers": rs[0]["workers"],
                "steps": rs[0]["steps"],
                "wall_s_median": statistics.median(walls),
                "wall_s_all": walls,
                "steps_per_s": rs[0]["steps"] / statistics.median(walls),
                "load_before": [r["load"] for r in rs],
            }
        )
    base = next((r["steps_per_s"] for r in rows if r["mode"] == "inproc"), None)
    for r in rows:
        r["efficiency"] = r["steps_per_s"] / (r["workers"] * base) if base else None
    result: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "cpus": os.cpu_count(),
        "uptime_start": started,
        "rows": rows,
    }
    if not args.no_fixed_costs:
        result["fixed_costs"] = fixed_costs(args)
    result["uptime_end"] = _uptime()

    print()
    print("| mode | workers | env steps | wall (s), median | env steps/s | per-core efficiency |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] is not None else "n/a"
        print(
            f"| {r['mode']} | {r['workers']} | {r['steps']} | {r['wall_s_median']:.1f} "
            f"| {r['steps_per_s']:.0f} | {eff} |"
        )
    if "fixed_costs" in result:
        print()
        for k, v in result["fixed_costs"].items():
            print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")
    print(f"\nstart: {started}\nend:   {result['uptime_end']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
