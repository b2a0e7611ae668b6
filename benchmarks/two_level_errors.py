"""Level-1 target error vs level-2 tracking error of a two-level checkpoint (analysis for
docs/generalist.md). Per song (first 30 s, trimmed, seed 0):
  teacher: the sight-reader's clean rollout; at each of its states level 1 predicts the next
    fingertips; error = |prediction - the teacher's fingertips at t+1| (per fingertip, mm).
  policy: the two-level policy's own rollout; tracking = |fingertips reached at t+1 - level 1's
    target at t| (mm); step = |target - current fingertips| (mm, how far level 1 asks to move).
usage: .venv/bin/python benchmarks/two_level_errors.py MODEL.pt SONG... > out.json"""

import json
import sys
import time

import numpy as np

from pianomime_env.learning.evaluation import (
    make_policy,  # noqa: E402
    song_env,  # noqa: E402
)
from pianomime_env.learning.generalist import features  # noqa: E402
from pianomime_env.learning.policies import load_policy  # noqa: E402


def tip_err(a, b):
    d = (np.asarray(a)[..., :30] - np.asarray(b)[..., :30]).reshape(-1, 10, 3)
    return {
        "mm": float(np.linalg.norm(d, axis=-1).mean() * 1e3),
        "z_mm": float(np.abs(d[..., 2]).mean() * 1e3),
    }


def level1(policy, obs):
    policy.plan_origin = np.asarray(obs["fingertips"], np.float64).copy()
    feats = features(obs, policy.layout, policy.encoder)
    policy.history.append(feats)  # the diffusion policy's observation horizon
    return policy.network_actions(feats)[0]


out = {}
import os  # noqa: E402

STRIDE = int(os.environ.get("STRIDE", "1"))  # level-1 error at every STRIDE-th teacher state
model = sys.argv[1]
for song in sys.argv[2:]:
    t0 = time.perf_counter()
    env = song_env(song, 30.0, True)
    policy = load_policy(model, env)
    teacher = make_policy("sight-reader", env, 0)
    obs, _ = env.reset(seed=0)
    teacher.reset() if hasattr(teacher, "reset") else None
    policy.reset()
    preds, nxt, moves = [], [], []
    for t in range(env.n_steps):
        plan = t % STRIDE == 0
        if plan:
            preds.append(level1(policy, obs))
        else:  # keep the observation history of the diffusion policy current
            policy.history.append(features(obs, policy.layout, policy.encoder))
        cur = obs["fingertips"].copy()
        obs, _, term, trunc, info = env.step(teacher(obs))
        if plan:
            nxt.append(obs["fingertips"].copy())
        moves.append(obs["fingertips"] - cur)
        if term or trunc:
            break
    teacher_f1 = info["metrics"]["f1"]
    l1 = tip_err(np.array(preds), np.array(nxt))
    move = tip_err(np.array(moves), np.zeros_like(np.array(moves)))
    obs, _ = env.reset(seed=0)
    policy.reset()
    targets, reached, steps = [], [], []
    for _ in range(env.n_steps):
        a = policy(obs)
        targets.append(policy.last_target.copy())
        steps.append(policy.last_target[:30] - obs["fingertips"])
        obs, _, term, trunc, info = env.step(a)
        reached.append(obs["fingertips"].copy())
        if term or trunc:
            break
    out[song] = {
        "steps": env.t,
        "teacher_f1": teacher_f1,
        "policy_f1": info["metrics"]["f1"],
        "teacher_step_mm": move,
        "level1_error_on_teacher_states": l1,
        "level2_tracking_error": tip_err(np.array(reached), np.array(targets)),
        "level1_requested_step": tip_err(np.array(steps), np.zeros_like(np.array(steps))),
        "seconds": time.perf_counter() - t0,
    }
    print(song, json.dumps(out[song]), file=sys.stderr)
    env.close()
print(json.dumps(out, indent=1))
