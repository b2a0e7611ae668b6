"""baselines/bc.py: trains from a `pianomime collect` dataset (plain, goal encoder, residual),
its checkpoints play through `pianomime play --policy`, --resume, and bad inputs fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("minari")
pytestmark = pytest.mark.slow  # subprocess training runs (a minute or two each)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SONGS = ("CMajorChordProgressionTwoHands", "CMajorScaleOneHand")
DATASET = "test/generalist-tiny-v0"
# Held-out in these tests: a built-in song the dataset does not hold.
EVAL = ["--eval-songs", "TwinkleTwinkleLittleStar", "--eval-max-seconds", "2"]


def make_dataset(root: Path) -> dict[str, str]:
    """A 2-song, 2-episode sight-reader dataset (with action noise) made by `pianomime
    collect` in ``root``; returns the environment for subprocesses."""
    env = dict(os.environ, MINARI_DATASETS_PATH=str(root))
    if not (root / DATASET).exists():
        cmd = [str(BIN / "pianomime"), "collect", "--songs", *SONGS, "--dataset", DATASET]
        cmd += ["--episodes", "2", "--noise", "0.1", "--workers", "1"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return env


def run(script: str, args: list[str], env: dict[str, str], timeout: int = 600):
    cmd = [sys.executable, str(ROOT / "baselines" / script), *args, "--no-progress"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def play(checkpoint: Path | str, song: str, out: Path, env: dict[str, str]) -> dict:
    """`pianomime play SONG --policy CHECKPOINT --no-video`; returns its metrics.json."""
    cmd = [str(BIN / "pianomime"), "play", song, "--policy", str(checkpoint), "--no-video"]
    cmd += ["--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return json.loads((out / "metrics.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("minari"))


def test_bc_goal_encoder_trains_plays_and_resumes(data_env, tmp_path):
    run_dir = tmp_path / "bc"
    args = ["--dataset", DATASET, "--total-steps", "150", "--eval-every", "100", *EVAL]
    args += ["--goal-encoder", "train", "--goal-encoder-steps", "50", "--checkpoint-every", "100"]
    proc = run("bc.py", [*args, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 150 and summary["final"]
    assert summary["dataset"]["songs"] == 2 and summary["dataset"]["episodes"] == 4
    assert [e["global_step"] for e in summary["evals"]] == [100, 150]
    assert summary["eval"]["f1"] == summary["eval"]["songs"]["TwinkleTwinkleLittleStar"]
    # Training and evaluation time apart; the rate counts training time only.
    assert summary["train_s"] > 0 and summary["eval_s"] > 0 and summary["updates"] == 150
    assert summary["steps_per_s"] == pytest.approx(150 / summary["train_s"])
    assert summary["wall_s"] >= summary["train_s"] + summary["eval_s"]
    assert (run_dir / "goal_encoder.pt").is_file() and list(run_dir.glob("events.out.*"))

    from pianomime_env.learning.policies import load_checkpoint

    ckpt = load_checkpoint(run_dir / "model.pt")
    assert ckpt["algorithm"] == "bc" and ckpt["features"]["goal_encoder"]["latent_dim"] == 16
    assert ckpt["actor"]["config"]["hidden"] == [256, 256, 256]
    # 11 goal rows of 16-d latents + sustain instead of 11 x 89 raw rows.
    assert ckpt["actor"]["config"]["in_dim"] == 11 * 17 + 88 + 1 + 52 + 30
    metrics = play(run_dir / "model.pt", "CMajorScaleOneHand", tmp_path / "play", data_env)
    assert {"f1", "note_f1", "precision", "recall"} <= set(metrics)

    # Resume: continues from the checkpoint to a larger budget, keeping the earlier evals.
    proc = run("bc.py", ["--resume", str(run_dir), "--total-steps", "200"], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 200
    assert [e["global_step"] for e in summary["evals"]] == [100, 150, 200]


def test_bc_residual_plays_through_the_sight_reader(data_env, tmp_path):
    run_dir = tmp_path / "bc_res"
    args = ["--dataset", DATASET, "--residual", "--total-steps", "300", "--eval-every", "0"]
    proc = run("bc.py", [*args, *EVAL, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from pianomime_env.learning.policies import load_checkpoint

    ckpt = load_checkpoint(run_dir / "model.pt")
    assert ckpt["wrapper"]["residual"] and ckpt["actor"]["act_dim"] == 44
    keys = [k for k, _ in ckpt["observation_layout"]]
    assert "nominal_action" in keys and "demo_fingertips" in keys
    # The residual is bounded (2 % of each range) around the sight-reader and its labels are
    # all zero on sight-reader data: it plays what the sight-reader plays (F1 ~0.78 here).
    metrics = play(run_dir / "model.pt", "CMajorScaleOneHand", tmp_path / "play", data_env)
    reader = play("sight-reader", "CMajorScaleOneHand", tmp_path / "play_sr", data_env)
    assert metrics["f1"] == pytest.approx(reader["f1"], abs=0.05)

    # The checkpoint refuses an env whose observation layout differs, naming the key.
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import PolicyError, load_policy

    env = PianoMimeEnv("CMajorScaleOneHand", n_steps_lookahead=5)
    with pytest.raises(PolicyError, match="goal"):
        load_policy(run_dir / "model.pt", env)


def test_bc_refuses_other_layouts_and_training_songs_as_heldout(data_env, tmp_path):
    common = ["--dataset", DATASET, "--total-steps", "10", "--run-dir", str(tmp_path / "x")]
    proc = run("bc.py", [*common, *EVAL, "--env-kwargs", '{"n_steps_lookahead": 5}'], data_env)
    assert proc.returncode != 0
    assert "observation 'goal'" in proc.stderr and "(6, 89)" in proc.stderr
    proc = run("bc.py", [*common, "--eval-songs", "CMajorScaleOneHand"], data_env)
    assert proc.returncode != 0 and "in the training dataset" in proc.stderr
    before = set((ROOT / "runs").glob("bc__test-missing*"))
    proc = run("bc.py", ["--dataset", "test/missing-v0", *EVAL], data_env)
    assert proc.returncode != 0 and "no Minari dataset 'test/missing-v0'" in proc.stderr
    # A refused dataset leaves no run directory behind, named or default.
    assert not (tmp_path / "x").exists()
    assert set((ROOT / "runs").glob("bc__test-missing*")) == before


def test_bc_two_level_trains_plays_resumes_and_refuses_residual(data_env, tmp_path):
    run_dir = tmp_path / "bc_2l"
    args = ["--dataset", DATASET, "--two-level", "--total-steps", "200", "--eval-every", "100"]
    args += [*EVAL, "--checkpoint-every", "100", "--low-size", "3x256"]
    proc = run("bc.py", [*args, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [e["global_step"] for e in summary["evals"]] == [100, 200]  # played by load_policy

    import numpy as np

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import load_checkpoint, load_policy

    ckpt = load_checkpoint(run_dir / "model.pt")
    assert ckpt["actor"]["act_dim"] == 31 and ckpt["actor"]["config"]["out_dim"] == 31
    assert ckpt["target_norm"]["kind"] == "zscore" and ckpt["action_norm"] is None
    low = ckpt["low_level"]
    assert low["keys"] == ["hand_joints", "fingertips"] and low["act_dim"] == 44
    assert low["config"]["in_dim"] == 52 + 30 + 30 and low["config"]["hidden"] == [256] * 3
    metrics = play(run_dir / "model.pt", "CMajorScaleOneHand", tmp_path / "play", data_env)
    assert {"f1", "note_f1", "precision", "recall"} <= set(metrics)

    # Level 1 gives a target in metres near the hands; level 2 maps it to the joints; the
    # pedal is the target's.
    env = PianoMimeEnv("CMajorScaleOneHand")
    policy = load_policy(run_dir / "model.pt", env)
    obs, _ = env.reset(seed=0)
    policy.reset()
    action = policy(obs)
    target = policy.last_target
    assert action.shape == (45,) and target.shape == (31,)
    assert np.abs(target[:30] - obs["fingertips"]).max() < 0.1
    expected = env.action_from_normalized(policy.low_level_action(obs, target))
    np.testing.assert_allclose(action, env.to_env_action(expected), atol=1e-6)
    env.close()

    proc = run("bc.py", ["--resume", str(run_dir), "--total-steps", "250"], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 250

    proc = run("bc.py", [*args, "--residual", "--run-dir", str(tmp_path / "x")], data_env)
    assert proc.returncode != 0 and "--two-level with --residual is not built" in proc.stderr

    # --target-frame offset: level 1 predicts the next fingertips relative to the current ones;
    # the player adds the current fingertips back (the target level 2 gets is in metres).
    off = tmp_path / "bc_2l_off"
    args = ["--dataset", DATASET, "--two-level", "--target-frame", "offset", *EVAL]
    proc = run("bc.py", [*args, "--total-steps", "100", "--run-dir", str(off)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(off / "model.pt")
    assert ckpt["target_frame"] == "offset"
    world = load_checkpoint(run_dir)
    assert world["target_frame"] == "world"
    from pianomime_env.learning.generalist import GeneralistPolicy

    del world["target_frame"]  # checkpoints written before the option play as world targets
    assert GeneralistPolicy(world, PianoMimeEnv("CMajorScaleOneHand")).target_frame == "world"
    assert np.abs(ckpt["target_norm"]["offset"][:30].numpy()).max() < 0.05  # mean offset, m
    env = PianoMimeEnv("CMajorScaleOneHand")
    policy = load_policy(off / "model.pt", env)
    obs, _ = env.reset(seed=0)
    policy.reset()
    policy(obs)
    np.testing.assert_array_equal(policy.plan_origin, obs["fingertips"])
    assert np.abs(policy.last_target[:30] - obs["fingertips"]).max() < 0.1
    env.close()


def test_bc_dataset_steps_trains_on_a_subset_and_refuses_too_small(data_env, tmp_path):
    run_dir = tmp_path / "bc_sub"
    args = ["--dataset", DATASET, "--dataset-steps", "200", "--total-steps", "20"]
    proc = run("bc.py", [*args, "--eval-every", "0", *EVAL, "--run-dir", str(run_dir)], data_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dataset = json.loads((run_dir / "summary.json").read_text())["dataset"]
    # Episodes of 81 and 151 steps (two each): a 200-step budget holds one or two of them.
    assert dataset["max_steps"] == 200 and dataset["steps"] <= 200
    assert dataset["episodes"] in (1, 2) and dataset["steps"] in (81, 151, 162)
    small = ["--dataset", DATASET, "--dataset-steps", "50", *EVAL, "--run-dir", str(tmp_path / "y")]
    proc = run("bc.py", small, data_env)
    assert proc.returncode != 0 and "shorter than its shortest episode (81 steps)" in proc.stderr
    assert not (tmp_path / "y").exists()


def test_data_size_curve_trains_nested_subsets_and_plots(data_env, tmp_path):
    out = tmp_path / "curve"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "data_size_curve.py"), "--dataset", DATASET]
    cmd += ["--sizes", "100", "0", "--seeds", "0", "--total-steps", "20", "--out", str(out)]
    cmd += ["--heldout-songs", "TwinkleTwinkleLittleStar", "--max-seconds", "2"]
    cmd += ["--train-songs", "CMajorScaleOneHand"]
    proc = subprocess.run(cmd, cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = json.loads((out / "rows.json").read_text())
    small, full = record["rows"]
    assert small["steps"] == 81 and small["episodes"] == 1  # episodes of 81 and 151 steps
    assert full["steps"] == 2 * (81 + 151) and full["songs"] == 2
    assert small["gradient_steps"] == full["gradient_steps"] == 20
    assert 0 <= small["heldout_f1"] <= 1 and record["teacher"]["train_songs"]["f1"] > 0.5
    assert (out / "curve.png").stat().st_size > 0 and "sight-reader" in (
        out / "curve.md"
    ).read_text()
    # Run again: every output exists, nothing is retrained or re-evaluated.
    proc = subprocess.run(cmd, cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "+ " not in proc.stdout
