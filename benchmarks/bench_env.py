"""Benchmark: PianoMime env steps/s vs RoboPianist (Shimmy) vs raw mj_step, plus start-up costs.

A thin script around :func:`pianomime_env.app.benchmark.run_benchmark` (the same as ``pianomime
bench``). Results and method: docs/benchmarks.md.

Usage:
    .venv/bin/python benchmarks/bench_env.py [--song TwinkleTwinkleRousseau] [--steps 300]
        [--runs 3] [--no-vector] [--no-startup] [--out results.json]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # dm_control (robopianist) probes GL at import


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default="TwinkleTwinkleRousseau")
    parser.add_argument("--steps", type=int, default=300, help="env steps per timing run")
    parser.add_argument("--runs", type=int, default=3, help="timing runs; medians are reported")
    parser.add_argument(
        "--no-vector", dest="vector", action="store_false", help="skip sync/async vector envs"
    )
    parser.add_argument(
        "--no-startup",
        dest="startup",
        action="store_false",
        help="skip the start-up subprocesses (import, construction, RSS, cold build)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write results as JSON")
    args = parser.parse_args(argv)

    from pianomime_env.app.benchmark import run_benchmark

    return run_benchmark(
        song=args.song,
        steps=args.steps,
        runs=args.runs,
        vector=args.vector,
        out=args.out,
        startup=args.startup,
    )


if __name__ == "__main__":
    main()
