"""Adam steps per second of PPO's network (baselines/ppo.py defaults: 2x256 tanh actor and
critic, minibatch 256) with 1 and 2 torch threads, interleaved rounds, medians: the measurement
behind ``ppo.py --update-threads``' default. Run it on a quiet machine and again with another job
on the cores; it prints ``uptime``'s load with the figures.

    .venv/bin/python benchmarks/bench_update_threads.py --rounds 5
"""

import json
import os
import time
from dataclasses import dataclass

import numpy as np
import tyro

from pianomime_env.extras import require_torch
from pianomime_env.learning.policies import build_mlp


@dataclass
class Args:
    obs_dim: int = 1150
    """Flattened observation size (Twinkle Twinkle, plain PPO: 1150)."""
    act_dim: int = 45
    """Action size."""
    minibatch: int = 256
    """Minibatch size (2 envs x 1024 steps / 8 minibatches)."""
    steps: int = 40
    """Adam steps per timing."""
    rounds: int = 5
    """Interleaved rounds (1 thread, 2 threads, 1, 2, ...); the median is reported."""
    threads: tuple[int, ...] = (1, 2)
    """Thread counts to compare."""


def adam_steps_per_s(torch, n_threads: int, args: Args) -> float:
    torch.set_num_threads(n_threads)
    torch.manual_seed(0)
    actor = build_mlp(args.obs_dim, (256, 256), args.act_dim, "tanh")
    critic = build_mlp(args.obs_dim, (256, 256), 1, "tanh")
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=3e-4, eps=1e-5)
    x = torch.randn(args.minibatch, args.obs_dim)
    y = torch.randn(args.minibatch, args.act_dim)

    def step():
        loss = ((actor(x) - y) ** 2).mean() + critic(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps / (time.perf_counter() - t0)


def main(args: Args) -> dict:
    torch = require_torch()
    rates: dict[int, list[float]] = {n: [] for n in args.threads}
    for _ in range(args.rounds):
        for n in args.threads:
            rates[n].append(adam_steps_per_s(torch, n, args))
    result = {
        "adam_steps_per_s": {str(n): float(np.median(r)) for n, r in rates.items()},
        "all": {str(n): r for n, r in rates.items()},
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
