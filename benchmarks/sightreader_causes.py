"""Why the sight-reader misses planned notes: the histogram of causes in docs/sightreader.md.

    .venv/bin/python benchmarks/sightreader_causes.py --policy sight-reader \
        --songs music21:bach/bwv1.6 NocturneRousseau music21:bach/bwv26.6 --out runs/causes
    .venv/bin/python benchmarks/sightreader_causes.py --policy sight-reader-lookahead ...

Every planned key-step (a goal key the plan gives a finger at that step) is classified after
the env step, first match wins:

- ``pressed``: the key is down (active);
- the finger was not sent down yet (still lifted above its key):
  ``transit``: more than ``--y-tol`` off its key along the keyboard while the hand's forearm is
  more than ``--forearm-tol`` from its IK target (the hand is still moving);
  ``arrived_off``: as far off, with the forearm arrived;
  ``beyond_front``: its tip is beyond the key's front edge;
  ``behind_black``: a white key's finger still behind the black keys' front;
  ``descending``: over its key, going down at this step;
- the finger was sent down: ``partly_down`` / ``mostly_down`` (key < 60 % / ≥ 60 % of its travel,
  not yet active), ``off_key`` (the key did not move, the tip beside it along the keyboard),
  ``over_key`` (the key did not move, the tip over it).

Goal key-steps with no finger in the plan (``unplanned``, e.g. held notes released for a hand
move) are counted beside. Writes ``causes.json`` (counts per song and in total) and prints
the table. Songs are capped at 30 s after trimming silence, as in ``baselines/evaluate.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tyro

from pianomime_env.demos.planner import key_geometry  # noqa: E402
from pianomime_env.learning.evaluation import (
    make_policy,  # noqa: E402
    song_env,  # noqa: E402
)

CAUSES = (
    "pressed",
    "transit",
    "arrived_off",
    "beyond_front",
    "behind_black",
    "descending",
    "partly_down",
    "mostly_down",
    "off_key",
    "over_key",
)


@dataclass
class Args:
    songs: list[str] = field(
        default_factory=lambda: ["music21:bach/bwv1.6", "NocturneRousseau", "music21:bach/bwv26.6"]
    )
    """Songs to classify (default: the tuning-set and built-in songs of docs/sightreader.md)."""
    policy: str = "sight-reader"
    """sight-reader or sight-reader-lookahead."""
    max_seconds: float = 30.0
    """Play at most this much of each song (0: whole songs)."""
    y_tol: float = 0.012
    """A lifted finger this far (m) off its key along the keyboard is 'off' (the reader's
    lift_xy_tolerance)."""
    forearm_tol: float = 0.01
    """A forearm this far (m) from its IK target is still moving."""
    out: Path | None = None
    """Directory for causes.json (optional)."""


def classify_song(song: str, policy: str, max_seconds: float, y_tol: float, forearm_tol: float):
    """Counts per cause (and ``unplanned``) for one deterministic episode of ``song``."""
    env = song_env(song, max_seconds, True)
    act = make_policy(policy, env, 0)
    geo = key_geometry(env.model, env.index)
    front = geo.center[:, 0] + geo.half_size[:, 0]
    tx = np.array([list(row).index("forearm_tx") for row in env.joint_names])
    n_joints = len(env.joint_names[0])
    goal = env.trajectory.keys > 0.5
    counts = dict.fromkeys((*CAUSES, "unplanned"), 0)
    obs, _ = env.reset(seed=0)
    act.reset()
    for _ in range(env.n_steps):
        t = env.t
        obs, _, terminated, truncated, info = env.step(act(obs))
        # The look-ahead player plays through one of its SightReaders (its current plan).
        reader = getattr(act, "reader", act)
        fing = reader.demo.fingering[min(t, reader.demo.n_steps - 1)]
        tips = env.fingertip_positions
        q = np.asarray(obs["hand_joints"]).reshape(2, n_joints)
        forearm_off = np.abs(reader.forearm_targets - q[np.arange(2), tx])
        down = reader.descended_keys
        counts["unplanned"] += int(np.count_nonzero(goal[t] & (fing < 0)))
        for k in np.flatnonzero(goal[t] & (fing >= 0)):
            h, f = divmod(int(fing[k]), 5)
            tip = tips[h, f]
            y_off = abs(tip[1] - geo.center[k, 1])
            if env.key_activation[k]:
                cause = "pressed"
            elif down[h, f] != k:
                if y_off > y_tol:
                    cause = "transit" if forearm_off[h] > forearm_tol else "arrived_off"
                elif tip[0] > front[k]:
                    cause = "beyond_front"
                elif not geo.is_black[k] and tip[0] < geo.black_front:
                    cause = "behind_black"
                else:
                    cause = "descending"
            elif env.key_state[k] > 0.05:
                cause = "mostly_down" if env.key_state[k] >= 0.6 else "partly_down"
            else:
                cause = "off_key" if y_off > geo.half_size[k, 1] else "over_key"
            counts[cause] += 1
        if terminated or truncated:
            break
    counts["f1"] = float(info["metrics"]["f1"])
    counts["note_f1"] = float(info["metrics"]["note_f1"])
    env.close()
    return counts


def main(args: Args) -> dict:
    per_song = {
        s: classify_song(s, args.policy, args.max_seconds, args.y_tol, args.forearm_tol)
        for s in args.songs
    }
    total = {c: sum(r[c] for r in per_song.values()) for c in (*CAUSES, "unplanned")}
    planned = sum(total[c] for c in CAUSES)
    result = {"policy": args.policy, "songs": per_song, "total": total, "planned": planned}
    print(f"{args.policy}: {planned} planned key-steps, {total['unplanned']} unplanned")
    for c in CAUSES:
        print(f"| {c} | {total[c] / max(planned, 1):.3f} |")
    goal_steps = planned + total["unplanned"]
    print(f"unplanned / goal key-steps: {total['unplanned'] / max(goal_steps, 1):.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "causes.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
