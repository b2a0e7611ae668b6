"""How far can a residual over the sight-reader go on a song? Splits the sight-reader's missed
goal key-steps into those its plan gives no finger (held notes released early for a hand move)
and those it fingers but does not press, and bounds the per-step F1 of a residual policy that
keeps the plan's fingering: every fingered goal key-step pressed, no false positive.

Then tests the residual's authority directly: a scripted residual that, whenever the plan has
released a key whose goal is still on, drives the flexion joints of the finger that held it
(MCP J3 and the coupled J0; the thumb's THJ2/THJ1) to the full residual bound, for several
finger bounds. If that cannot keep the key down, no learned residual of that bound can.

    .venv/bin/python benchmarks/residual_ceiling.py --song TwinkleTwinkleRousseau
    .venv/bin/python benchmarks/residual_ceiling.py --song CMajorChordProgressionTwoHands \\
        --finger-scales 0.02 0.1 0.2 0.5

Deterministic (seed 0, trimmed song); one episode per line, a few seconds each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from pianomime_env.control.residual import ResidualIK
from pianomime_env.demos import from_midi
from pianomime_env.demos.coverage import plan_coverage
from pianomime_env.envs.piano import PianoMimeEnv

FINGER_NAMES = ("TH", "FF", "MF", "RF", "LF")


@dataclass
class Args:
    song: str = "TwinkleTwinkleRousseau"
    """A built-in song name or a song spec the env accepts."""
    finger_scales: tuple[float, ...] = (0.02, 0.1, 0.2)
    """Finger residual bounds (fraction of each finger joint's range) for the scripted test."""
    out: Path | None = None
    """Also write the results as JSON here."""


def flexion_actuators(action_names: tuple[str, ...], finger: int) -> list[int]:
    """Action indices of finger ``finger``'s flexion (0-4 right thumb..little, 5-9 left)."""
    hand = "rh" if finger < 5 else "lh"
    name = FINGER_NAMES[finger % 5]
    joints = ("THJ2", "THJ1") if name == "TH" else (f"{name}J3", f"{name}J0")
    return [action_names.index(f"{hand}_A_{j}") for j in joints]


def play(song: str, finger_scale: float | None) -> dict:
    """One episode through ResidualIK: zero residual (``finger_scale`` None) or the scripted
    hold residual. Returns the metrics and the goal / played / fingered key-step masks."""
    env = PianoMimeEnv(song, trim_silence=True, flatten=False)
    demo = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env)
    wrapped = ResidualIK(env, demo, finger_residual_scale=finger_scale)
    obs, _ = wrapped.reset(seed=0)
    goal = env.trajectory.keys > 0.5
    holder: dict[int, int] = {}
    played = []
    while True:
        t = env.t
        action = np.zeros(wrapped.action_space.shape, np.float32)
        for key in np.flatnonzero(goal[t]):
            if demo.fingering[t, key] >= 0:
                holder[key] = int(demo.fingering[t, key])
            elif finger_scale is not None and key in holder and t > 0 and goal[t - 1, key]:
                action[flexion_actuators(env.action_names, holder[key])] = 1.0
        obs, _, terminated, truncated, info = wrapped.step(action)
        played.append(env.key_activation)
        if terminated or truncated:
            break
    n = len(played)
    return {
        "metrics": {k: float(info["metrics"][k]) for k in ("f1", "precision", "recall", "note_f1")},
        "goal": goal[:n],
        "played": np.array(played),
        "fingered": demo.fingering[:n] >= 0,
    }


def main(args: Args) -> dict:
    base = play(args.song, None)
    goal, played, fingered = base["goal"], base["played"], base["fingered"]
    onset = goal & ~np.vstack([np.zeros((1, goal.shape[1]), bool), goal[:-1]])
    missed = goal & ~played
    coverage = plan_coverage(fingered.astype(np.int8) - 1, goal)  # the plan's coverage
    n_goal, n_fingered = coverage.goal, coverage.covered
    recall_ceiling = coverage.fraction
    out = {
        "song": args.song,
        "sight_reader": base["metrics"],
        "goal_key_steps": n_goal,
        "fingered_by_plan": n_fingered,
        "missed": int(missed.sum()),
        "missed_unfingered": int((missed & ~fingered).sum()),
        "missed_fingered": int((missed & fingered).sum()),
        "missed_fingered_onset_step": int((missed & fingered & onset).sum()),
        "false_positives": int((played & ~goal).sum()),
        "recall_ceiling": recall_ceiling,
        "f1_ceiling": 2 * recall_ceiling / (1 + recall_ceiling),
        "scripted_hold": {},
    }
    print(json.dumps({k: v for k, v in out.items() if k != "scripted_hold"}, indent=1))
    for scale in args.finger_scales:
        m = play(args.song, scale)["metrics"]
        out["scripted_hold"][str(scale)] = m
        print(f"scripted hold residual, finger bound {scale}: " + json.dumps(m))
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
