"""Benchmark: per-step cost of the ``ot_fingering`` (and ``fingering``, ``style``) reward terms.

Rolls out the real env on a song (default NocturneRousseau, chord-heavy: up to 5 keys per step,
46 % of its steps have >= 3 keys) with smooth random actions. At every step a timing term
calls each benchmarked term ``--repeats`` times on the step's real ``StepContext`` and keeps the
median; the report is the median / p90 / max over steps, overall and by number of keys due. The
default ``key_press`` term is timed too, for scale, and ``ot_fingering + info()`` is what the env
pays per step (it calls ``info`` after the term).

Usage:
    .venv/bin/python benchmarks/bench_fingering.py [--song NocturneRousseau] [--episodes 2]
        [--repeats 21] [--seed 0]
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import statistics
import sys
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402

import pianomime_env  # noqa: E402, F401
from pianomime_env import rewards as rewards_lib  # noqa: E402
from pianomime_env.rewards import fingering as fingering_lib  # noqa: E402


class _Timer:
    """A reward term (weight 0) that times other terms on each step's real context."""

    name = "bench_timer"

    def __init__(self, terms: dict[str, object], repeats: int) -> None:
        self.terms = terms
        self.repeats = repeats
        self.times: dict[str, list[float]] = {name: [] for name in terms}
        self.n_keys: list[int] = []

    def reset(self, episode) -> None:
        for term in self.terms.values():
            if hasattr(term, "reset"):
                term.reset(episode)

    def __call__(self, ctx) -> float:
        self.n_keys.append(int((ctx.goal_keys > 0.5).sum()))
        clock = time.perf_counter_ns
        for name, term in self.terms.items():
            samples = []
            for _ in range(self.repeats):
                t0 = clock()
                term(ctx)
                samples.append(clock() - t0)
            self.times[name].append(statistics.median(samples) / 1e3)  # µs
        return 0.0


class _WithInfo:
    """What the env pays per step for a term with ``info``: the call, then ``info(ctx)``."""

    def __init__(self, term) -> None:
        self.term = term

    def __call__(self, ctx) -> float:
        value = self.term(ctx)
        self.term.info(ctx)
        return value


def _stats(values: list[float]) -> str:
    a = np.asarray(values)
    return (
        f"median {np.median(a):6.1f} µs   p90 {np.percentile(a, 90):6.1f} µs   "
        f"max {a.max():7.1f} µs   (n={a.size})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default="NocturneRousseau")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = gym.make(f"PianoMime-{args.song}-v0", reward_terms={"key_press": 1.0})
    n_steps = env.unwrapped.n_steps
    # A demo for the style term: the env's own start pose, jittered (only the cost matters here).
    rng = np.random.default_rng(args.seed)
    env.reset(seed=args.seed)
    tips0 = env.unwrapped.fingertip_positions
    demo = SimpleNamespace(
        fingertips=(tips0[None] + rng.normal(0, 0.02, (n_steps, 2, 5, 3))).astype(np.float32)
    )
    env.close()

    ot = fingering_lib.OTFingering()
    terms = {
        "ot_fingering": ot,
        "ot_fingering + info()": _WithInfo(ot),
        "fingering": fingering_lib.Fingering(),
        "style": fingering_lib.Style(),
        "style(use_z)": fingering_lib.Style(use_z=True),
        "key_press (core, for scale)": rewards_lib.KeyPress(),
    }
    timer = _Timer(terms, args.repeats)
    env = gym.make(
        f"PianoMime-{args.song}-v0",
        reward_terms={"key_press": 1.0, "bench_timer": (timer, 0.0)},
        demo=demo,
    )
    low, high = env.action_space.low, env.action_space.high
    t0 = time.perf_counter()
    for ep in range(args.episodes):
        env.reset(seed=args.seed + ep)
        a = 0.5 * (low + high)
        done = False
        while not done:  # smooth random walk over the action box: hands wander over the keys
            a = np.clip(a + 0.1 * (high - low) * rng.normal(size=a.shape), low, high)
            _, _, done, _, _ = env.step(a.astype(np.float32))
    wall = time.perf_counter() - t0
    env.close()

    n_keys = np.asarray(timer.n_keys)
    print(
        f"song {args.song}: {args.episodes} episode(s) x {n_steps} steps = {n_keys.size} states "
        f"({wall:.1f} s); keys due per step: max {n_keys.max()}, "
        f"{(n_keys >= 3).mean():.0%} of steps >= 3, {(n_keys == 0).mean():.0%} silent"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or ''}"
        f" {platform.machine()}; each value = median of {args.repeats} calls on that step's state"
    )
    for name, values in timer.times.items():
        print(f"{name:28s} {_stats(values)}")
    ot = np.asarray(timer.times["ot_fingering"])
    print("ot_fingering by keys due:")
    for k in np.unique(n_keys):
        sel = n_keys == k
        print(f"  {k} keys: median {np.median(ot[sel]):6.1f} µs  (n={sel.sum()})")
    chord = ot[n_keys >= 1]
    verdict = "OK" if np.median(chord) <= 50 else "OVER"
    print(
        f"ot_fingering, steps with >= 1 key: median {np.median(chord):.1f} µs -> {verdict} (≤ 50)"
    )


if __name__ == "__main__":
    main()
