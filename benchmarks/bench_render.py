"""Benchmark: what one frame of ``pianomime play``'s video costs, by frame size and shadows.

The sight-reader plays the first ``--steps`` steps of a song; then, on that state, each
configuration renders ``--frames`` frames (keys coloured by the goal, as ``play`` does) and
encodes them to H.264. Configurations take turns ``--repeats`` times so that load on a shared
machine hits them alike; the table reports per-frame medians and the render time relative to the
first configuration. Results: docs/media.md ("The video").

Usage:
    .venv/bin/python benchmarks/bench_render.py
    .venv/bin/python benchmarks/bench_render.py --sizes 640x480 1024x576 --frames 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default="CMajorChordProgressionTwoHands")
    parser.add_argument("--steps", type=int, default=30, help="steps played before rendering")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1024x576", "1280x720"])
    parser.add_argument("--frames", type=int, default=20, help="frames per timing (5 w/ shadows)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-shadow-run", action="store_true", help="skip the shadows-on row")
    args = parser.parse_args(argv)

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.evaluation import make_policy
    from pianomime_env.media import VideoWriter
    from pianomime_env.sim.render import SceneRenderer

    env = PianoMimeEnv(args.song, trim_silence=True)
    act = make_policy("sight-reader", env, 0)
    obs, _ = env.reset(seed=0)
    act.reset()
    for _ in range(args.steps):
        obs, *_ = env.step(act(obs))
    goal = env.trajectory.keys[env.t - 1]
    configs = [(*map(int, s.split("x")), False) for s in args.sizes]
    if not args.no_shadow_run:
        configs.append((*configs[0][:2], True))
    renderers = {
        c: SceneRenderer(env.model, env.index, c[0], c[1], "back", shadows=c[2]) for c in configs
    }
    times: dict[tuple, list[tuple[float, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in renderers.values():
            r.render(env.data, env.key_activation, goal)  # warm up
        for _ in range(args.repeats):
            for c, r in renderers.items():
                n = 5 if c[2] else args.frames
                start = time.perf_counter()
                for _ in range(n):
                    frame = r.render(env.data, env.key_activation, goal)
                render = (time.perf_counter() - start) / n
                start = time.perf_counter()
                with VideoWriter(Path(tmp) / "bench.mp4", fps=20) as video:
                    for _ in range(n):
                        video.append(frame)
                encode = (time.perf_counter() - start) / n
                times[c].append((render, encode))
    for r in renderers.values():
        r.close()
    env.close()
    base = statistics.median(t[0] for t in times[configs[0]])
    print(f"song {args.song}, step {args.steps}, load average {os.getloadavg()[0]:.1f}")
    print("| frame | shadows + reflections | render | encode | render vs first |")
    print("|---|---|---|---|---|")
    for c, ts in times.items():
        render = statistics.median(t[0] for t in ts)
        encode = statistics.median(t[1] for t in ts)
        print(
            f"| {c[0]}x{c[1]} | {'on' if c[2] else 'off'} | {render * 1e3:.0f} ms "
            f"| {encode * 1e3:.0f} ms | {render / base:.2f} |"
        )


if __name__ == "__main__":
    main()
