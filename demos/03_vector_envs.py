"""Step several envs in parallel worker processes (Gymnasium's async vector env).

.venv/bin/python demos/03_vector_envs.py
"""

import time

import gymnasium as gym

import pianomime_env  # noqa: F401

if __name__ == "__main__":
    envs = gym.make_vec(
        "PianoMime-TwinkleTwinkleRousseau-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
    )
    envs.reset(seed=0)
    start, steps = time.perf_counter(), 100
    for _ in range(steps):
        envs.step(envs.action_space.sample())
    rate = steps * envs.num_envs / (time.perf_counter() - start)
    print(f"{envs.num_envs} envs: {rate:.0f} env-steps/s")
    envs.close()
