"""baselines/diffusion_policy.py: trains from a `pianomime collect` dataset (plain, residual
with the goal encoder), plays through `pianomime play --policy`, resumes; the loaded policy's
receding horizon (action queue) and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("minari")
pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow  # subprocess training runs (a minute or two each)

from tests.test_bc import DATASET, EVAL, make_dataset, play, run  # noqa: E402

TINY = ["--down-dims", "16", "32", "--obs-embed", "32", "--step-embed", "16"]
TINY += ["--batch-size", "16", "--inference-steps", "3", "--lr-warmup-steps", "10"]


def episode(env, policy, n: int) -> np.ndarray:
    """Actions of the first n steps of a seed-0 episode (the policy reset after the env)."""
    obs, _ = env.reset(seed=0)
    policy.reset()
    acts = []
    for _ in range(n):
        acts.append(policy(obs))
        obs, *_ = env.step(acts[-1])
    return np.array(acts)


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("minari"))


def test_diffusion_policy_trains_plays_and_resumes(data_env, tmp_path):
    run_dir = tmp_path / "dp"
    args = ["--dataset", DATASET, "--total-steps", "60", "--eval-every", "40", *EVAL, *TINY]
    proc = run("diffusion_policy.py", [*args, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 60 and summary["final"]
    assert [e["global_step"] for e in summary["evals"]] == [40, 60]
    assert summary["eval"]["f1"] == summary["eval"]["songs"]["TwinkleTwinkleLittleStar"]
    assert summary["train_s"] > 0 and summary["eval_s"] > 0 and summary["parameters"] > 0
    assert summary["steps_per_s"] == pytest.approx(60 / summary["train_s"])

    from pianomime_env.learning.policies import load_checkpoint

    ckpt = load_checkpoint(run_dir / "model.pt")
    assert ckpt["algorithm"] == "diffusion-policy" and ckpt["actor"]["kind"] == "unet"
    assert ckpt["horizons"] == {"obs": 2, "pred": 16, "exec": 8}
    assert ckpt["action_norm"]["kind"] == ckpt["obs_norm"]["kind"] == "minmax"
    assert ckpt["action_norm"]["offset"].shape == (45,) and ckpt["action_norm"]["scale"].min() > 0
    play(run_dir / "model.pt", "CMajorScaleOneHand", tmp_path / "play", data_env)

    proc = run("diffusion_policy.py", ["--resume", str(run_dir), "--total-steps", "70"], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 70 and len(summary["evals"]) == 3


def test_diffusion_policy_residual_goal_encoder_receding_horizon(data_env, tmp_path, monkeypatch):
    run_dir = tmp_path / "dp_res"
    args = ["--dataset", DATASET, "--total-steps", "30", "--eval-every", "0", *EVAL, *TINY]
    args += ["--residual", "--goal-encoder", "train", "--goal-encoder-steps", "30"]
    proc = run("diffusion_policy.py", [*args, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The residual rides on the sight-reader (bounded, zero labels): it plays what it plays.
    metrics = play(run_dir / "model.pt", "CMajorScaleOneHand", tmp_path / "play", data_env)
    reader = play("sight-reader", "CMajorScaleOneHand", tmp_path / "play_sr", data_env)
    assert metrics["f1"] == pytest.approx(reader["f1"], abs=0.05)

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import load_policy

    env = PianoMimeEnv("CMajorScaleOneHand")
    policy = load_policy(run_dir / "model.pt", env)
    assert policy.encoder is not None and policy.residual
    calls = []
    plan = policy.network_actions
    monkeypatch.setattr(policy, "network_actions", lambda f: calls.append(1) or plan(f))

    a = episode(env, policy, 17)
    # Plans at steps 0, 8 and 16 (execution horizon 8); each plan's actions are executed.
    assert len(calls) == 3 and len(policy.queue) == 7
    assert a.shape == (17, 45) and np.all(a >= env.action_low - 1e-6)
    b = episode(
        env, policy, 17
    )  # reset clears the queue and reseeds the diffusion noise: same episode
    assert len(calls) == 6
    np.testing.assert_allclose(a, b)


def test_diffusion_policy_two_level_plans_targets_level_two_every_step(
    data_env, tmp_path, monkeypatch
):
    run_dir = tmp_path / "dp_2l"
    args = ["--dataset", DATASET, "--two-level", "--total-steps", "30", "--eval-every", "0"]
    args += [*EVAL, *TINY, "--low-batch-size", "32", "--target-frame", "offset"]
    proc = run("diffusion_policy.py", [*args, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 30 and summary["evals"][-1]["global_step"] == 30

    from pianomime_env.learning.policies import load_checkpoint

    ckpt = load_checkpoint(run_dir / "model.pt")
    assert ckpt["actor"]["act_dim"] == 31 and ckpt["action_norm"] is None
    assert ckpt["target_norm"]["kind"] == "minmax" and ckpt["target_norm"]["offset"].shape == (31,)
    assert ckpt["target_frame"] == "offset"
    assert ckpt["low_level"]["act_dim"] == 44 and ckpt["low_level"]["keys"][0] == "hand_joints"
    # (`pianomime play --policy` of a two-level checkpoint: tests/test_bc.py; the evaluation
    # above played this one through load_policy.)

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import load_policy

    env = PianoMimeEnv("CMajorScaleOneHand")
    policy = load_policy(run_dir / "model.pt", env)
    assert policy.two_level
    plans, lows = [], []
    plan, low = policy.network_actions, policy.low_level_action
    monkeypatch.setattr(policy, "network_actions", lambda f: plans.append(1) or plan(f))
    origins = []
    monkeypatch.setattr(
        policy,
        "low_level_action",
        lambda o, t: lows.append(t) or origins.append(policy.plan_origin) or low(o, t),
    )

    a = episode(env, policy, 10)
    # The high level plans at steps 0 and 8; level 2 closes the loop at every step, on the
    # queue's targets: offsets (within the min-max range of the training windows) from the
    # fingertips observed when the plan was made.
    assert len(plans) == 2 and len(lows) == 10 and len(policy.queue) == 6
    t, o = np.array(lows), np.array(origins)
    assert np.all(o[:8] == o[0]) and np.all(o[8:] == o[8]) and not np.all(o[8] == o[0])
    lo = ckpt["target_norm"]["offset"].numpy() - ckpt["target_norm"]["scale"].numpy()
    hi = ckpt["target_norm"]["offset"].numpy() + ckpt["target_norm"]["scale"].numpy()
    d = np.concatenate([t[:, :30] - o, t[:, 30:]], axis=1)
    assert t.shape == (10, 31) and np.all(d >= lo - 1e-5) and np.all(d <= hi + 1e-5)
    assert a.shape == (10, 45) and np.all(a >= env.action_low - 1e-6)
    np.testing.assert_allclose(a, episode(env, policy, 10))  # deterministic after reset

    proc = run(
        "diffusion_policy.py", [*args, "--residual", "--run-dir", str(tmp_path / "x")], data_env
    )
    assert proc.returncode != 0 and "--two-level with --residual is not built" in proc.stderr
