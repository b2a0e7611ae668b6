"""Roll out one episode of a built-in song with random actions and print the musical metrics.

.venv/bin/python demos/01_random_agent.py
"""

import gymnasium as gym

import pianomime_env  # noqa: F401  (registers the PianoMime-* envs)

env = gym.make("PianoMime-CMajorScaleOneHand-v0")
obs, info = env.reset(seed=0)
print({key: value.shape for key, value in obs.items()})
episode_return, terminated = 0.0, False
while not terminated:
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    episode_return += reward
print(f"return {episode_return:.2f}")
print({name: round(value, 3) for name, value in info["metrics"].items()})
