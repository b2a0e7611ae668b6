"""The residual-IK action space a learning agent would use (PianoMime's formulation).

The policy outputs a small residual in [-1, 1] that is added to a nominal action; by default the
nominal is the closed-loop sight-reader's action for the demonstration, so a zero residual plays
exactly as the sight-reader does (`nominal="ik"` gives PianoMime's open-loop IK nominal).

    .venv/bin/python demos/05_residual_ik.py
"""

import numpy as np

from pianomime_env import PianoMimeEnv, ResidualIK, from_midi

demo = from_midi("CMajorScaleOneHand")
env = PianoMimeEnv("CMajorScaleOneHand", demo=demo, reward_terms={"key_press": 1.0, "style": 0.5})
# reference_state_init=True would start each episode at a random step, hands posed by IK.
env = ResidualIK(env, demo, residual_scale=0.02)
obs, _ = env.reset(seed=0)
print("observation keys:", sorted(obs))
terminated, total = False, 0.0
while not terminated:
    obs, reward, terminated, truncated, info = env.step(
        np.zeros(env.action_space.shape, np.float32)
    )
    total += reward
print(f"zero residual: return {total:.1f}, F1 {info['metrics']['f1']:.3f}")
