"""IK cost per control step for both hands: our HandIK vs mink on the same targets.

Both get the same fingertip targets (the planned demonstration of TwinkleTwinkleRousseau with its
silence trimmed, 200 frames), 3 iterations per control step, warm-started from the previous step's solution. mink
solves on the full model (all 140 dofs, daqp QP solver, posture task + joint-limit constraint);
HandIK on the hands' own dofs (numpy damped least squares) with the sight-reader's posture
weight. Median of several runs, plus the mean fingertip error after each step's iterations
(HandIK trades some accuracy for its curved-finger posture pull; the error shows how much).

Run: ``.venv/bin/python benchmarks/bench_ik.py`` (mink comes with the ``dev`` extra)
"""

from __future__ import annotations

import time

import mujoco
import numpy as np

from pianomime_env.demos import from_midi
from pianomime_env.music.sources import load_song
from pianomime_env.sim import scene
from pianomime_env.sim.ik import HandIK


def _tip_error(model, data, sites, targets) -> float:
    return float(np.linalg.norm(data.site_xpos[sites] - targets.reshape(-1, 3), axis=1).mean())


def bench_handik(model, index, frames, n_runs: int) -> tuple[float, float]:
    from pianomime_env.control.sightreader import SightReaderConfig

    ik = HandIK(model, index, posture_weight=SightReaderConfig().posture_weight)
    data = mujoco.MjData(model)
    sites = index.fingertip_sites.ravel()
    runs, errors = [], []
    for _ in range(n_runs):
        q = ik.posture.copy()
        t0 = time.perf_counter()
        for f in frames:
            q = ik.solve(f, q, iterations=3)
        runs.append((time.perf_counter() - t0) / len(frames) * 1e3)
    q = ik.posture.copy()
    for f in frames:
        q = ik.solve(f, q, iterations=3)
        data.qpos[index.hand_qpos] = q
        mujoco.mj_kinematics(model, data)
        errors.append(_tip_error(model, data, sites, f))
    return float(np.median(runs)), float(np.mean(errors))


def bench_mink(model, index, frames, n_runs: int) -> tuple[float, float]:
    import mink

    names = [
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in index.fingertip_sites.ravel()
    ]
    tasks = [
        mink.FrameTask(frame_name=n, frame_type="site", position_cost=1.0, orientation_cost=0.0)
        for n in names
    ]
    posture = mink.PostureTask(model, cost=1e-3)
    limits = [mink.ConfigurationLimit(model)]
    config = mink.Configuration(model)

    def run() -> list[float]:
        config.update(model.qpos0)
        posture.set_target_from_configuration(config)
        errors = []
        for f in frames:
            for task, p in zip(tasks, f.reshape(-1, 3)):
                task.set_target(mink.SE3.from_translation(p.astype(np.float64)))
            for _ in range(3):
                v = mink.solve_ik(
                    config, [*tasks, posture], 1.0, solver="daqp", damping=1e-3, limits=limits
                )
                config.integrate_inplace(v, 1.0)
            errors.append(_tip_error(model, config.data, index.fingertip_sites.ravel(), f))
        return errors

    runs = []
    for _ in range(n_runs):
        t0 = time.perf_counter()
        errors = run()
        runs.append((time.perf_counter() - t0) / len(frames) * 1e3)
    return float(np.median(runs)), float(np.mean(errors))


def main(n_runs: int = 5, n_calls: int = 200) -> dict[str, float]:
    model = scene.load_model()
    index = scene.SceneIndex.from_model(model)
    song = load_song("TwinkleTwinkleRousseau").trim_silence()
    frames = from_midi(song).fingertips[:n_calls]
    ours_ms, ours_err = bench_handik(model, index, frames, n_runs)
    print(
        f"HandIK (hand dofs, numpy DLS): {ours_ms:.3f} ms/step, mean tip error "
        f"{ours_err * 1e3:.2f} mm"
    )
    out = {"handik_ms": ours_ms, "handik_err_m": ours_err}
    try:
        mink_ms, mink_err = bench_mink(model, index, frames, max(1, n_runs // 2))
    except ImportError:
        print('mink not installed (pip install "pianomime-env[dev]"): no peer timing')
        return out
    print(
        f"mink (full model, daqp):       {mink_ms:.3f} ms/step, mean tip error "
        f"{mink_err * 1e3:.2f} mm"
    )
    print(f"mink / HandIK time = {mink_ms / ours_ms:.1f}x (3 iterations per control step each)")
    out.update(mink_ms=mink_ms, mink_err_m=mink_err)
    return out


if __name__ == "__main__":
    main()
