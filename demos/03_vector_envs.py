"""Step several pianos at once: the native vector env (one process, physics on threads) next to
Gymnasium's async vector env (one worker process per env). Same envs, same numbers.

.venv/bin/python demos/03_vector_envs.py
"""

import time

import gymnasium as gym

import pianomime_env  # noqa: F401  (registers the ids and their vector_entry_point)


def rate(envs, steps: int = 100) -> float:
    envs.reset(seed=0)
    envs.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        envs.step(envs.action_space.sample())
    return steps * envs.num_envs / (time.perf_counter() - start)


if __name__ == "__main__":
    song = "PianoMime-TwinkleTwinkleRousseau-v0"
    for mode, extra in (
        ("vector_entry_point", {}),
        ("async", {"vector_kwargs": {"context": "spawn"}}),
    ):
        envs = gym.make_vec(song, num_envs=2, vectorization_mode=mode, **extra)
        print(f"{mode}: {type(envs.unwrapped).__name__}, {rate(envs):.0f} env-steps/s")
        envs.close()
