"""Add your own reward term without touching the package.

A term is any object with a `name` and `__call__(ctx) -> float`; `ctx` is a read-only
`pianomime_env.rewards.StepContext` (goal, key states, fingertips, joints, MjData, ...).

    .venv/bin/python demos/02_custom_reward_term.py
"""

import gymnasium as gym
import numpy as np

import pianomime_env  # noqa: F401


class FingertipsAboveKeys:
    """Penalty (m) for fingertips lower than 5 cm above the floor."""

    name = "tips_height"

    def __call__(self, ctx) -> float:
        return -float(np.clip(0.05 - ctx.fingertips[..., 2], 0.0, None).sum())


env = gym.make(
    "PianoMime-TwinkleTwinkleLittleStar-v0",
    reward_terms={"key_press": 1.0, "sustain": 0.5, "tips_height": (FingertipsAboveKeys(), 2.0)},
)
env.reset(seed=0)
_, reward, _, _, info = env.step(env.action_space.sample())
print(f"reward {reward:.3f}", {k: round(v, 3) for k, v in info.items() if k.startswith("reward/")})
