"""Where a policy misses on one song: the goal key-steps it does not press, split by the
sight-reader plan's fingering, by time and by onset, and the key-steps it presses wrongly.

    .venv/bin/python benchmarks/policy_misses.py --song TwinkleTwinkleRousseau \
        --policies sight-reader runs/leadrl/tw_s0/model.pt runs/leadrl/tw_s1/model.pt \
        --env-kwargs '{"initial_buffer_time": 1.0}'

A goal key-step the plan (``from_midi``, the residual learners' nominal) gives no finger is out
of reach of any residual that follows the plan (``benchmarks/residual_ceiling.py``); a
fingered one missed in the song's first ``--first-steps`` steps of music is usually a hand
still on its way from the rest pose (what a lead-in, ``initial_buffer_time``, buys time for).
Each policy plays the whole trimmed song once (seed 0, deterministic) in
``PianoMimeEnv(song, trim_silence=True, **env_kwargs)``; a checkpoint is loaded by
``load_policy`` into that env (its observation layout must match). A few seconds per policy.

RoboPianist's per-step F1 gives a silent step where nothing is pressed 1.0, so a lead-in's
silence raises the episode's F1 by itself (Twinkle: 20 such steps of 178); the column "F1,
song steps only" averages the steps after the lead-in, comparable with runs without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from pianomime_env.demos import from_midi
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.learning.evaluation import make_policy
from pianomime_env.music.metrics import note_onsets, per_step_prf


@dataclass
class Args:
    song: str = "TwinkleTwinkleRousseau"
    """A built-in song name or a song spec the env accepts."""
    policies: list[str] = field(default_factory=lambda: ["sight-reader"])
    """sight-reader, sight-reader-lookahead, or checkpoints (model.pt or run directories)."""
    env_kwargs: str = "{}"
    """More PianoMimeEnv arguments (JSON object), e.g. '{"initial_buffer_time": 1.0}'."""
    first_steps: int = 20
    """The song's first this many steps of music (from its first goal key-step) count apart."""
    out: Path | None = None
    """Also write the rows as JSON here."""


def misses(song: str, policy: str, env_kwargs: dict, first_steps: int) -> dict:
    """One episode of ``policy``; counts of goal key-steps missed by cause and of wrong ones."""
    env = PianoMimeEnv(song, trim_silence=True, **env_kwargs)
    act = make_policy(policy, env, seed=0)
    obs, _ = env.reset(seed=0)
    if hasattr(act, "reset"):
        act.reset()
    info: dict = {}
    for _ in range(env.n_steps):
        obs, _, terminated, truncated, info = env.step(act(obs))
        if terminated or truncated:
            break
    played = env.played_keys
    n = len(played)
    goal = env.trajectory.keys[:n] > 0.5
    plan = from_midi(env.trajectory, control_timestep=env.control_timestep, env=env)
    fingered = np.asarray(plan.fingering)[:n] >= 0
    onset = np.zeros_like(goal)
    onset[note_onsets(goal)] = True  # the note-onset metric's onsets
    first = int(np.flatnonzero(goal.any(axis=1))[0]) if goal.any() else 0
    early = np.zeros_like(goal)
    early[first : first + first_steps] = True
    missed = goal & ~played
    # RoboPianist's per-step F1 scores a silent step with nothing pressed 1.0, so a lead-in of
    # silence raises the episode's F1 by itself: "f1_song" averages the song's own steps only.
    lead = int(round(float(env_kwargs.get("initial_buffer_time", 0.0)) / env.control_timestep))
    env.close()
    return {
        "song": song,
        "policy": policy,
        "env_kwargs": env_kwargs,
        "f1": float(info["metrics"]["f1"]),
        "f1_song": float(per_step_prf(goal[lead:], played[lead:])[2].mean()),
        "lead_in_steps": lead,
        "precision": float(info["metrics"]["precision"]),
        "recall": float(info["metrics"]["recall"]),
        "note_f1": float(info["metrics"]["note_f1"]),
        "goal": int(goal.sum()),
        "missed": int(missed.sum()),
        "not_fingered": int((missed & ~fingered).sum()),
        "fingered": int((missed & fingered).sum()),
        "fingered_first_steps": int((missed & fingered & early).sum()),
        "fingered_onsets": int((missed & fingered & onset).sum()),
        "wrong": int((played & ~goal).sum()),
    }


def main(args: Args) -> list[dict]:
    env_kwargs = json.loads(args.env_kwargs)
    rows = [misses(args.song, p, env_kwargs, args.first_steps) for p in args.policies]
    print(
        f"| policy | F1 | F1, song steps only | note-onset F1 | goal key-steps | missed | not fingered by the plan | "
        f"fingered | ... in the first {args.first_steps} steps | ... note onsets | wrong |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['policy']} | {r['f1']:.3f} | {r['f1_song']:.3f} | {r['note_f1']:.3f} | "
            f"{r['goal']} | "
            f"{r['missed']} | {r['not_fingered']} | {r['fingered']} | "
            f"{r['fingered_first_steps']} | {r['fingered_onsets']} | {r['wrong']} |"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
