"""CPU cost of DroQ's gradient updates at RP1M's settings (baselines/droq.py defaults: batch 256,
3x256 GELU actor and 2 critics with dropout 0.01 + layer norm, one update every 2 env steps):
CPU-ms per update and per env step, measured with ``time.thread_time`` (CPU time of this thread,
so other jobs on the machine hardly change it), torch at 1 thread, median of rounds.

    .venv/bin/python benchmarks/bench_droq_update.py --rounds 5
    .venv/bin/python benchmarks/bench_droq_update.py --profile   # ... and where an update's CPU goes

The env step's own CPU cost (≈ 3 ms, ``benchmarks/bench_vector.py``) comes on top.
"""

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    obs_dim: int = 1315
    """Flattened observation size (Twinkle Twinkle under ResidualIK: 1315)."""
    act_dim: int = 45
    """Action size."""
    updates: int = 20
    """Updates per timing round."""
    rounds: int = 5
    """Timing rounds; medians are reported."""
    profile: bool = False
    """Also run torch.profiler over --updates updates and print the ops by self CPU time."""


def _droq_script():
    spec = importlib.util.spec_from_file_location("droq_script", ROOT / "baselines" / "droq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(args: Args) -> dict:
    droq_script = _droq_script()
    import torch

    torch.set_num_threads(1)
    cfg = droq_script.Args(total_timesteps=10_000, learning_starts=0)
    learner = droq_script.DroQ(
        torch, cfg, args.obs_dim, args.act_dim, torch.device("cpu"), Path("."), None
    )
    rng = np.random.default_rng(0)
    n = 2048
    learner.buffer.add(
        rng.standard_normal((n, args.obs_dim)).astype(np.float32),
        rng.uniform(-1, 1, (n, args.act_dim)).astype(np.float32),
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal((n, args.obs_dim)).astype(np.float32),
        np.zeros(n, np.float32),
    )
    learner.rms.update(rng.standard_normal((n, args.obs_dim)))
    for _ in range(3):
        learner.update()
    per_update = []
    for _ in range(args.rounds):
        t0 = time.thread_time()
        for _ in range(args.updates):
            learner.update()
        per_update.append((time.thread_time() - t0) / args.updates * 1e3)
    ms = float(np.median(per_update))
    result = {
        "cpu_ms_per_update": ms,
        "cpu_ms_per_env_step_updates_only": ms * cfg.gradient_steps / cfg.update_every,
        "rounds": per_update,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.updates):
                learner.update()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
