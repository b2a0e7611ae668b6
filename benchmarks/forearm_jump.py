"""Fastest reliable hand jump per distance: the forearm_tx command law the sight-reader uses.

    .venv/bin/python benchmarks/forearm_jump.py
    .venv/bin/python benchmarks/forearm_jump.py --gains 3,0 12,0.4 --distances 0.05 0.1

The right hand starts at rest (the sight-reader's first nominal pose, every other joint held
there); its ``forearm_tx`` target jumps by ``d`` and is commanded at 20 Hz as
``measured + kp (target - measured) - kd velocity`` (``kp`` 3, ``kd`` 0 is the old overshoot
2). Prints, per gain pair and distance, the control steps after which the forearm stays
within ``--tol`` of the target (over ``--steps`` steps; "-" = never) and the largest overshoot.
Deterministic, a few seconds. The planner's ``JUMP_STEPS`` come from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tyro

from pianomime_env.control.sightreader import SightReader
from pianomime_env.envs.piano import PianoMimeEnv


@dataclass
class Args:
    gains: tuple[str, ...] = ("3,0", "8,0.2", "12,0.3", "12,0.4", "16,0.4")
    """kp,kd pairs."""
    distances: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    """Jump distances (m, right hand toward the treble)."""
    tol: float = 0.003
    """Settled: within this (m) of the target from then on."""
    steps: int = 12


def jump(env: PianoMimeEnv, d: float, kp: float, kd: float, steps: int) -> np.ndarray:
    """Error (m) to the target after each control step of a jump of ``d`` (right hand)."""
    u = env.unwrapped
    env.reset(seed=0)
    reader = SightReader(env)
    reader.reset()
    base = reader.nominal(0)
    act_i = int(reader._tx_u[0])
    qa = int(reader.ik.qadr[0, reader._tx[0]])
    va = int(reader._tx_dof[0])
    target = float(u.data.qpos[qa]) + d
    err = []
    for _ in range(steps):
        q, v = float(u.data.qpos[qa]), float(u.data.qvel[va])
        action = base.copy()
        action[act_i] = q + kp * (target - q) - kd * v
        env.step(u.to_env_action(np.clip(action, u.action_low, u.action_high)))
        err.append(float(u.data.qpos[qa]) - target)
    return np.array(err)


def main(args: Args) -> None:
    env = PianoMimeEnv("CMajorScaleOneHand")
    print("| kp, kd | " + " | ".join(f"{d * 100:.0f} cm" for d in args.distances) + " |")
    print("|---|" + "---:|" * len(args.distances))
    for g in args.gains:
        kp, kd = (float(x) for x in g.split(","))
        cells = []
        for d in args.distances:
            e = jump(env, d, kp, kd, args.steps)
            settled = next((i + 1 for i in range(len(e)) if np.all(np.abs(e[i:]) < args.tol)), None)
            over = max(0.0, float(np.max(e))) * 1000
            cells.append(f"{settled if settled else '-'} ({over:.0f} mm)")
        print(f"| {kp:g}, {kd:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
