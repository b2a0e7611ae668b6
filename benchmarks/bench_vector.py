"""Benchmark: env steps/s of the native vector env vs Sync/AsyncVectorEnv (and RoboPianist).

For each N in ``--ns`` (default 1 2 4 8 16), in one process and with the same seeded random
actions (uniform over the 45-dim action space, a fresh row per env and step), it times total
env-steps/s of

* ``native``: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``
  (:class:`pianomime_env.envs.vector.PianoMimeVectorEnv`, physics on ``os.cpu_count()``
  threads);
* ``sync`` / ``async``: ``gym.make_vec(id, num_envs=N, vectorization_mode="sync" | "async")``;
* ``robopianist`` (``--peer``, N <= ``--peer-max-n``): RoboPianist + Shimmy
  (``pianomime_env.app.benchmark._make_peer``, settings matched to ours) in an
  ``AsyncVectorEnv``;
* ``ceiling``: the two-core physics ceiling, 2 x the rate of raw ``mujoco.mj_step(model, data,
  n_substeps)`` per control step on one ``MjData`` (``pianomime bench``'s ``mujoco`` row), and
  ``mujoco_threads``: the same raw steps of N ``MjData`` on a 2-thread pool (what threads
  really give on this machine, with no Python work at all).

With ``--residual`` it also times the residual envs (``ResidualIK`` around the sight-reader,
``make_vector_env(..., wrapper={"residual": True, ...})``): ``native_residual``,
``sync_residual`` and ``async_residual``.

Every round runs each contender once over ``--steps`` vector steps, in a rotating order
(interleaved, so that load from other processes hits all alike); episode ends autoreset inside
``step`` (next-step mode), which is part of what users pay; the first reset is not timed.
Medians over rounds are reported, and ratios are medians of per-round ratios.

Usage:
    .venv/bin/python benchmarks/bench_vector.py [--song TwinkleTwinkleRousseau] [--ns 1 2 4 8 16]
        [--steps 100] [--rounds 3] [--peer] [--peer-max-n 8] [--residual] [--residual-max-n 16]
        [--out results.json]

It also prints this process's CPU time per env step of the in-process contenders (native,
sync, robopianist's parent excluded): on a loaded machine wall-clock rates drift with the
load, CPU time much less.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")  # dm_control (robopianist) probes GL at import

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import pianomime_env  # noqa: E402, F401
from pianomime_env.envs.making import make_vector_env  # noqa: E402
from pianomime_env.sim import scene as scene_lib  # noqa: E402

RESIDUAL = {"residual": True, "residual_scale": 0.02, "sustain": "score", "n_demo_frames": 4}


#: This process's CPU time per env step (ms) of the last run of each in-process contender:
#: unlike wall time it hardly depends on other processes' load.
CPU_MS: dict[str, list[float]] = {}


def _vec_stepper(env, actions: np.ndarray, name: str = "") -> Callable[[], float]:
    """Returns ``run()``: steps ``env`` over ``actions`` (steps, N, A), env-steps/s; also
    appends the process CPU time per env step to ``CPU_MS[name]``."""

    def run() -> float:
        env.reset(seed=0)
        c0, t0 = time.process_time(), time.perf_counter()
        for a in actions:
            env.step(a)
        n = actions.shape[0] * actions.shape[1]
        CPU_MS.setdefault(name, []).append(1e3 * (time.process_time() - c0) / n)
        return n / (time.perf_counter() - t0)

    return run


def _raw_physics(n_substeps: int, timestep: float, actions: np.ndarray, n: int):
    """``run_one()`` (one MjData, one thread: steps/s) and ``run_threads()`` (n MjData on a
    2-thread pool, total steps/s): raw mj_step per control step, no env."""
    model = scene_lib.load_model()
    index = scene_lib.SceneIndex.from_model(model)
    scene_lib.configure_model(
        model,
        index,
        physics_timestep=timestep,
        gravity_compensation=False,
        disable_hand_collisions=False,
    )
    datas = [mujoco.MjData(model) for _ in range(max(n, 1))]
    nu = model.nu
    pool = ThreadPoolExecutor(1)

    def reset() -> None:
        for d in datas:
            mujoco.mj_resetData(model, d)
            mujoco.mj_forward(model, d)

    def step_all(ds, a) -> None:
        for d, row in zip(ds, a):
            d.ctrl[:] = row[:nu]
            mujoco.mj_step(model, d, n_substeps)

    def run_one() -> float:
        reset()
        d = datas[0]
        t0 = time.perf_counter()
        for a in actions[:, 0]:
            d.ctrl[:] = a[:nu]
            mujoco.mj_step(model, d, n_substeps)
        return actions.shape[0] / (time.perf_counter() - t0)

    def run_threads() -> float:
        reset()
        half = (n + 1) // 2
        t0 = time.perf_counter()
        for a in actions:
            if n == 1:
                step_all(datas[:1], a)
                continue
            fut = pool.submit(step_all, datas[half:n], a[half:n])
            step_all(datas[:half], a[:half])
            fut.result()
        return actions.shape[0] * n / (time.perf_counter() - t0)

    return run_one, run_threads, pool


def _contenders(song: str, n: int, actions: np.ndarray, peer: bool, residual: bool) -> dict:
    env_id = f"PianoMime-{song}-v0"
    envs: dict[str, Any] = {
        "native": gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point"),
        "sync": gym.make_vec(env_id, num_envs=n, vectorization_mode="sync"),
        "async": gym.make_vec(env_id, num_envs=n, vectorization_mode="async"),
    }
    if peer:
        from pianomime_env.app.benchmark import _make_peer

        envs["robopianist"] = gym.vector.AsyncVectorEnv([lambda: _make_peer(song)] * n)
    runs = {k: _vec_stepper(v, actions, k) for k, v in envs.items()}
    if residual:
        rng = np.random.default_rng(1)
        for kind in ("native", "sync", "async"):
            venv = make_vector_env(
                env_id,
                n,
                vectorization=kind,
                autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
                wrapper=RESIDUAL,
                flatten=False,
            )
            res_actions = rng.uniform(
                -1, 1, (*actions.shape[:2], venv.single_action_space.shape[0])
            )
            envs[f"{kind}_residual"] = venv
            runs[f"{kind}_residual"] = _vec_stepper(
                venv, res_actions.astype(np.float32), f"{kind}_residual"
            )
    return envs, runs


def measure(
    song: str,
    ns: list[int],
    steps: int,
    rounds: int,
    peer: bool,
    peer_max_n: int,
    residual: bool,
    residual_max_n: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    probe = gym.make(f"PianoMime-{song}-v0").unwrapped
    low, high = probe.action_low, probe.action_high
    n_substeps, timestep = probe.n_substeps, probe.physics_timestep
    probe.close()
    for n in ns:
        rng = np.random.default_rng(n)
        actions = rng.uniform(low, high, (steps, n, low.size)).astype(np.float32)
        envs, runs = _contenders(
            song, n, actions, peer and n <= peer_max_n, residual and n <= residual_max_n
        )
        CPU_MS.clear()
        run_one, run_threads, pool = _raw_physics(n_substeps, timestep, actions, n)
        runs["mujoco_1core"] = run_one
        runs["mujoco_threads"] = run_threads
        for run in runs.values():  # warm-up
            run()
        rates: dict[str, list[float]] = {k: [] for k in runs}
        keys = list(runs)
        loads = []
        for r in range(rounds):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                rates[key].append(runs[key]())
            loads.append(os.getloadavg()[0])
        for env in envs.values():
            env.close()
        pool.shutdown()
        rates["ceiling"] = [2 * x for x in rates.pop("mujoco_1core")]

        def ratio(a: str, b: str, rates: dict[str, list[float]] = rates) -> float | None:
            if a not in rates or b not in rates:
                return None
            return statistics.median([x / y for x, y in zip(rates[a], rates[b])])

        row: dict[str, Any] = {
            k: {"median": statistics.median(v), "runs": v} for k, v in rates.items()
        }
        row["ratios"] = {
            "native/ceiling": ratio("native", "ceiling"),
            "native/sync": ratio("native", "sync"),
            "native/async": ratio("native", "async"),
            "async/sync": ratio("async", "sync"),
            "native/robopianist": ratio("native", "robopianist"),
            "native_residual/sync_residual": ratio("native_residual", "sync_residual"),
            "native_residual/async_residual": ratio("native_residual", "async_residual"),
            "native_residual/ceiling": ratio("native_residual", "ceiling"),
        }
        row["loadavg_1min"] = loads
        # CPU of this process per env step (ms), in-process contenders (async: the parent only).
        row["cpu_ms_per_step"] = {
            k: statistics.median(v[1:]) for k, v in CPU_MS.items() if "async" not in k and v[1:]
        }
        out[str(n)] = row
        _print_row(n, row)
    return out


def _print_row(n: int, row: dict[str, Any]) -> None:
    parts = [f"N={n:2d}"]
    for key in (
        "native",
        "sync",
        "async",
        "robopianist",
        "ceiling",
        "mujoco_threads",
        "native_residual",
        "sync_residual",
        "async_residual",
    ):
        if key in row:
            parts.append(f"{key} {row[key]['median']:.0f}")
    r = {k: v for k, v in row["ratios"].items() if v is not None}
    parts.append(" ".join(f"{k}={v:.2f}" for k, v in r.items()))
    cpu = row["cpu_ms_per_step"]
    parts.append("cpu ms/step " + " ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    parts.append(f"load {np.mean(row['loadavg_1min']):.1f}")
    print("  ".join(parts), flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", default="TwinkleTwinkleRousseau")
    parser.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=100, help="vector steps per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--peer", action="store_true", help="also RoboPianist+Shimmy (async)")
    parser.add_argument("--peer-max-n", type=int, default=8, help="largest N for the peer")
    parser.add_argument("--residual", action="store_true", help="also the residual envs")
    parser.add_argument("--residual-max-n", type=int, default=16, help="largest N for them")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write results as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    res: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "song": args.song,
        "steps": args.steps,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "versions": {"mujoco": mujoco.__version__, "gymnasium": gym.__version__},
    }
    res["results"] = measure(
        args.song,
        args.ns,
        args.steps,
        args.rounds,
        args.peer,
        args.peer_max_n,
        args.residual,
        args.residual_max_n,
    )
    res["loadavg_end"] = list(os.getloadavg())
    res["wall_s"] = time.perf_counter() - started
    print(
        f"(wall {res['wall_s']:.0f} s, load {res['loadavg_start'][0]:.1f} -> "
        f"{res['loadavg_end'][0]:.1f})"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
