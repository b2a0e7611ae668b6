"""IK cost per control step for both hands (3 iterations, warm start), median of several runs.

Run: ``.venv/bin/python benchmarks/bench_ik.py``
"""

from __future__ import annotations

import time

import numpy as np

from pianomime_env import scene
from pianomime_env.demos import from_midi
from pianomime_env.ik import HandIK


def main(n_runs: int = 7, n_calls: int = 200) -> float:
    model = scene.load_model()
    ik = HandIK(model, scene.SceneIndex.from_model(model))
    demo = from_midi("TwinkleTwinkleRousseau")
    frames = demo.fingertips[:n_calls]
    runs = []
    for _ in range(n_runs):
        q = ik.posture.copy()
        t0 = time.perf_counter()
        for f in frames:
            q = ik.solve(f, q, iterations=3)
        runs.append((time.perf_counter() - t0) / len(frames) * 1e3)
    med = float(np.median(runs))
    print(f"HandIK.solve, both hands, 3 iterations: median {med:.3f} ms/step over {n_runs} runs")
    return med


if __name__ == "__main__":
    main()
