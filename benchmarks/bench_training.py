"""Training throughput, updates included: env steps/s of our PPO (plain and residual over the
sight-reader, 2 envs; plain also with ``fast_physics=True``), our DroQ (residual, 1 env), and the peer, Stable-Baselines3 PPO on
RoboPianist through Shimmy (2 subprocess envs), in one run, on the same song.

    .venv/bin/python benchmarks/bench_training.py --out docs/bench-training.json
    .venv/bin/python benchmarks/bench_training.py --contenders ppo sb3-robopianist --steps 2048

Every contender runs in its own fresh process, one after the other; its clock covers the training
loop only (env stepping, normalization, gradient updates; not imports or env construction). Our
scripts are run with ``--eval-every -1`` (no evaluation episodes). The PPO settings are the same
for ours and the peer: rollouts of 1024 steps per env, minibatch 256, 10 epochs, MLP 2x256,
normalized observations and rewards, 1 torch thread. The load average before and after each
contender is recorded: on a shared machine the numbers move with the other jobs. Less sensitive
to them: CPU-ms per env step (CPU time of the process tree, minus that of a 0-step run of the
same contender for start-up and teardown).

Also measured (no learning): CPU-ms per env step of the plain env and of ``ResidualIK`` with a
zero residual (env + sight-reader), which bounds the residual learner's throughput.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("ppo", "ppo-residual", "ppo-fast", "droq-residual", "sb3-robopianist")

SB3_CHILD = r"""
import json, os, sys, time
os.environ.setdefault("MUJOCO_GL", "egl")
import torch
torch.set_num_threads(1)
import gymnasium as gym
import shimmy
from robopianist import suite
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

song, steps, n_envs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def make():
    import shimmy
    from robopianist import suite
    import gymnasium as gym
    env = shimmy.DmControlCompatibilityV0(suite.load(
        f"RoboPianist-debug-{song}-v0",
        task_kwargs={"n_steps_lookahead": 10, "disable_fingering_reward": True,
                     "disable_forearm_reward": False, "energy_penalty_coef": 5e-3}))
    return gym.wrappers.FlattenObservation(env)

# fork: the workers are children of this process, so their CPU time is counted
envs = VecNormalize(SubprocVecEnv([make] * n_envs, start_method="fork"), norm_obs=True,
                   norm_reward=True, gamma=0.95)
model = PPO("MlpPolicy", envs, n_steps=1024, batch_size=256, n_epochs=10, gamma=0.95,
            learning_rate=3e-4, policy_kwargs=dict(net_arch=[256, 256], log_std_init=-1.0),
            device="cpu", seed=0, verbose=0)
start = time.perf_counter()
model.learn(total_timesteps=steps)
wall = time.perf_counter() - start
print(json.dumps({"global_step": int(model.num_timesteps), "wall_s": wall,
                  "sps": model.num_timesteps / wall}))
envs.close()
"""


@dataclass
class Args:
    steps: int = 4096
    """Env steps per PPO contender (2 iterations of 2 x 1024)."""
    droq_steps: int = 1024
    """Env steps for DroQ (learning from step 256, one update every 2 steps)."""
    song: str = "TwinkleTwinkleRousseau"
    """A built-in song that is also a RoboPianist debug env."""
    contenders: tuple[str, ...] = CONTENDERS
    """Which to run: ppo, ppo-residual, ppo-fast (plain PPO on the env's fast_physics=True),
    droq-residual, sb3-robopianist."""
    repeats: int = 1
    """Rounds; each round runs every contender once (round-robin, so slow phases of a shared
    machine hit all of them); the median env steps/s is reported."""
    cpu: bool = True
    """Also report CPU-ms per env step (CPU time of the run minus that of a 0-step run)."""
    step_cost: bool = True
    """Also measure ms per env step of the plain env and of ResidualIK (zero residual)."""
    out: Path | None = None
    """Write the results as JSON here."""


def _run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Runs ``cmd``; returns it and the CPU seconds (user + system) of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, cpu


def _ours(script: str, song: str, steps: int, *extra: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(ROOT / "baselines" / script),
            "--env-id",
            f"PianoMime-{song}-v0",
            "--total-timesteps",
            str(steps),
            "--eval-every",
            "-1",
            "--checkpoint-every",
            str(10**9),
            "--no-progress",
            "--run-dir",
            tmp,
            *extra,
        ]
        proc, cpu = _run(cmd)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed: {proc.stderr[-2000:]}")
        s = json.loads((Path(tmp) / "summary.json").read_text())
    return {
        "global_step": s["global_step"],
        "wall_s": s["wall_s"],
        "sps": s["sps"],
        "cpu_s": cpu,
        "cmd": cmd,
    }


def _sb3(song: str, steps: int, n_envs: int = 2) -> dict:
    cmd = [sys.executable, "-c", SB3_CHILD, song, str(steps), str(n_envs)]
    proc, cpu = _run(cmd)
    if proc.returncode != 0:
        raise RuntimeError(f"SB3 peer failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu_s"] = cpu
    out["cmd"] = ["stable-baselines3 PPO (SB3_CHILD in this file)", song, str(steps), str(n_envs)]
    return out


def step_cost(song: str, repeats: int = 2) -> dict:
    """CPU-ms per env step (process time, mean over ``repeats`` full episodes): plain env with
    zero normalized actions, and ResidualIK (sight-reader nominal) with a zero residual."""
    import numpy as np

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import wrap_env

    out = {}
    for name in ("plain", "residual"):
        env = PianoMimeEnv(song, trim_silence=True, normalized_actions=name == "plain")
        if name == "residual":
            env = wrap_env(env, {"residual": True, "residual_scale": 0.02})
        zero = np.zeros(env.action_space.shape, np.float32)
        steps, wall = 0, 0.0
        for r in range(repeats):
            env.reset(seed=r)
            t0 = time.process_time()
            while True:
                *_, terminated, truncated, _ = env.step(zero)
                steps += 1
                if terminated or truncated:
                    break
            wall += time.process_time() - t0
        out[f"{name}_ms_per_step"] = 1e3 * wall / steps
    out["sight_reader_share"] = 1.0 - out["plain_ms_per_step"] / out["residual_ms_per_step"]
    return out


def main(args: Args) -> dict:
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"unknown contenders {sorted(unknown)}; choose from {CONTENDERS}")
    results: dict = {
        "song": args.song,
        "machine": f"{os.cpu_count()} CPUs",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "contenders": {},
    }
    runs = {
        "ppo": lambda n: _ours("ppo.py", args.song, n, "--num-envs", "2"),
        "ppo-residual": lambda n: _ours("ppo.py", args.song, n, "--num-envs", "2", "--residual"),
        "ppo-fast": lambda n: _ours(
            "ppo.py", args.song, n, "--num-envs", "2", "--env-kwargs", '{"fast_physics": true}'
        ),
        "droq-residual": lambda n: _ours(
            "droq.py", args.song, n, "--residual", "--learning-starts", "256"
        ),
        "sb3-robopianist": lambda n: _sb3(args.song, n),
    }
    for rnd in range(args.repeats):
        for name in args.contenders:
            load0 = os.getloadavg()[0]
            print(f"{name} (round {rnd + 1}/{args.repeats}): running ...", flush=True)
            r = runs[name](args.droq_steps if name.startswith("droq") else args.steps)
            r["loadavg_1min"] = [load0, os.getloadavg()[0]]
            entry = results["contenders"].setdefault(name, {"runs": []})
            entry["runs"].append(r)
            entry["sps"] = statistics.median(x["sps"] for x in entry["runs"])
            print(
                f"{name}: {r['sps']:.1f} env steps/s ({r['global_step']} steps, {r['wall_s']:.1f} s)"
            )
    c = results["contenders"]
    if args.cpu:  # CPU time is far less sensitive to other jobs than wall time
        for name in args.contenders:
            base = runs[name](0)  # start-up and teardown only
            n = c[name]["runs"][0]["global_step"]
            used = statistics.median(x["cpu_s"] for x in c[name]["runs"])
            c[name]["startup_cpu_s"] = base["cpu_s"]
            c[name]["cpu_ms_per_step"] = 1e3 * (used - base["cpu_s"]) / n
            print(f"{name}: {c[name]['cpu_ms_per_step']:.2f} CPU-ms per env step")
    if "sb3-robopianist" in c:
        for name in ("ppo", "ppo-residual"):
            if name in c:
                results[f"{name}/sb3-robopianist"] = c[name]["sps"] / c["sb3-robopianist"]["sps"]
                print(f"{name} / sb3-robopianist = {results[f'{name}/sb3-robopianist']:.2f}x")
    if args.step_cost:
        results["step_cost"] = step_cost(args.song)
        print("step cost:", json.dumps(results["step_cost"]))
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
