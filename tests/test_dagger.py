"""DAgger (`baselines/bc.py --dagger-rounds K`, `pianomime_env.learning.dagger`): the beta
mixing and the teacher's shadow labels on a real env; a 2-round run writes its round datasets
in collect's layout, the aggregate grows, a killed run resumes at its last completed round, and
the final checkpoint plays through `pianomime play` and `baselines/evaluate.py`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SONG = "CMajorChordProgressionTwoHands"  # 81 steps
DATASET = "test/dagger-tiny-v0"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EVAL = ["--eval-songs", "TwinkleTwinkleLittleStar", "--eval-max-seconds", "2"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the rollout: beta mixing and shadow labels --------------------------------------------------


def replay_labels(env, episode, steps=None):
    """A fresh sight-reader's action at each observation of ``episode`` (replayed from its
    seed, options and executed actions), and whether the replay reproduced the observations."""
    from pianomime_env.control.sightreader import SightReader

    obs, _ = env.reset(seed=episode["seed"], options=dict(episode["options"]))
    reader = SightReader(env)
    labels, same = [], True
    for t in range(len(episode["actions"]) if steps is None else steps):
        same &= np.allclose(obs["hand_joints"], episode["observations"]["hand_joints"][t])
        labels.append(np.asarray(reader(obs), np.float32))
        obs, *_ = env.step(episode["actions"][t])
    return np.stack(labels), bool(same)


def test_beta_schedule_and_episode_rng():
    from pianomime_env.learning.dagger import beta_schedule, episode_rng, round_dataset_id

    assert [beta_schedule(0.5, 0.5, i) for i in (1, 2, 3)] == [0.5, 0.25, 0.125]
    assert beta_schedule(1.0, 1.0, 4) == 1.0 and beta_schedule(0.0, 0.5, 1) == 0.0
    with pytest.raises(ValueError):
        beta_schedule(0.5, 0.5, 0)
    with pytest.raises(ValueError):
        beta_schedule(1.5, 0.5, 1)
    a, b = episode_rng(0, 1, SONG, 0), episode_rng(0, 1, SONG, 0)
    assert a.random() == b.random()
    assert episode_rng(0, 2, SONG, 0).random() != episode_rng(0, 1, SONG, 0).random()
    assert round_dataset_id("dagger/run", 3) == "dagger/run-r3-v0"


def test_shadow_rollout_mixes_per_step_and_labels_the_learners_states():
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.dagger import mid_song_pose, shadow_rollout
    from pianomime_env.learning.evaluation import make_policy

    env = PianoMimeEnv(SONG)
    idle = make_policy("idle", env)  # the "learner": holds every joint at zero
    teacher = make_policy("sight-reader", env)
    idle_action = np.asarray(idle(None), np.float32)

    # beta 0: the learner acts every step; the labels are the sight-reader's on its states.
    ep = shadow_rollout(env, idle, teacher, 0.0, np.random.default_rng(0), seed=3)
    n = len(ep["actions"])
    assert n == env.n_steps == 81 and ep["teacher_steps"] == 0
    np.testing.assert_array_equal(ep["actions"], np.tile(idle_action, (n, 1)))
    labels = ep["infos"]["expert_action"]
    assert labels.shape == (n + 1, 45) and np.isnan(labels[-1]).all()
    assert {k: v.shape[0] for k, v in ep["observations"].items()} == dict.fromkeys(
        ep["observations"], n + 1
    )
    assert ep["terminations"][-1] and not ep["terminations"][:-1].any()
    assert not ep["truncations"].any()
    replayed, same = replay_labels(env, ep)
    assert same
    np.testing.assert_array_equal(replayed, labels[:n])
    # ... and those states are not the sight-reader's own: its labels differ from the idle
    # action, and from what it plays on its own.
    rng = np.random.default_rng(0)
    alone = shadow_rollout(env, teacher, make_policy("sight-reader", env), 1.0, rng, seed=3)
    assert np.abs(labels[:n] - idle_action).max() > 0.1
    assert not np.allclose(alone["infos"]["expert_action"][:n], labels[:n])

    # beta 1: the teacher acts every step (executed == label): its own rollout.
    ep1 = shadow_rollout(env, idle, teacher, 1.0, np.random.default_rng(0), seed=3)
    assert ep1["teacher_steps"] == n
    np.testing.assert_array_equal(ep1["actions"], ep1["infos"]["expert_action"][:n])
    np.testing.assert_array_equal(ep1["actions"], alone["actions"])
    assert ep1["metrics"]["f1"] == pytest.approx(alone["metrics"]["f1"])

    # beta 0.5: a per-step draw from the generator picks whose action runs.
    ep5 = shadow_rollout(env, idle, teacher, 0.5, np.random.default_rng(7), seed=3)
    pick = np.random.default_rng(7).random(n) < 0.5
    labels5 = ep5["infos"]["expert_action"][:n]
    np.testing.assert_array_equal(ep5["actions"][pick], labels5[pick])
    np.testing.assert_array_equal(ep5["actions"][~pick], np.tile(idle_action, ((~pick).sum(), 1)))
    assert ep5["teacher_steps"] == pick.sum() and 0 < pick.sum() < n
    replayed, same = replay_labels(env, ep5)
    assert same
    np.testing.assert_array_equal(replayed, labels5)

    # A mid-song segment: hands posed by IK at the plan, truncated after its steps, scored on
    # the steps played.
    pose = mid_song_pose(env, teacher, 30)
    seg = shadow_rollout(
        env, idle, teacher, 0.5, np.random.default_rng(1), seed=4, start=30, length=20,
        hand_qpos=pose,
    )  # fmt: skip
    assert len(seg["actions"]) == 20 and seg["truncations"][-1] and not seg["terminations"].any()
    assert seg["options"]["start_step"] == 30 and seg["options"]["hand_qpos"].shape == pose.shape
    assert 0.0 <= seg["metrics"]["f1"] <= 1.0
    replayed, same = replay_labels(env, seg, steps=5)
    assert same
    np.testing.assert_array_equal(replayed, seg["infos"]["expert_action"][:5])
    env.close()


# -- the baseline: bc.py --dagger-rounds ---------------------------------------------------------


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    """A 1-song, 2-episode sight-reader dataset (noise 0.1) from `pianomime collect`."""
    pytest.importorskip("minari")
    root = tmp_path_factory.mktemp("minari")
    env = dict(os.environ, MINARI_DATASETS_PATH=str(root))
    cmd = [str(BIN / "pianomime"), "collect", "--songs", SONG, "--dataset", DATASET]
    cmd += ["--episodes", "2", "--noise", "0.1", "--workers", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return env


def bc_command(args: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "baselines" / "bc.py"), *args, "--no-progress"]


@pytest.mark.slow
def test_dagger_two_rounds_resume_after_a_kill_and_play(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", data_env["MINARI_DATASETS_PATH"])
    root = Path(data_env["MINARI_DATASETS_PATH"])
    run_dir = tmp_path / "dagger"
    args = ["--dataset", DATASET, "--total-steps", "100", "--eval-every", "0", *EVAL]
    args += ["--dagger-rounds", "2", "--dagger-steps", "300", "--checkpoint-every", "100"]
    args += ["--dagger-beta", "0.5", "--dagger-beta-decay", "0.5", "--run-dir", str(run_dir)]
    round1 = root / "dagger" / "dagger-r1-v0"
    summary_path = run_dir / "summary.json"

    def killed_when(cmd: list[str], condition) -> None:
        """Runs ``cmd`` and SIGKILLs it (no checkpoint of its own) once ``condition()``."""
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=data_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while not condition() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        err = proc.communicate()[1].decode()
        assert proc.returncode == -signal.SIGKILL, err[-3000:]

    def in_round_1_training(since: float) -> bool:
        """summary.json rewritten after ``since`` by a checkpoint in round 1's training."""
        try:
            if summary_path.stat().st_mtime < since:
                return False
            d = json.loads(summary_path.read_text())["dagger"]
        except (OSError, ValueError, KeyError):
            return False
        return d["round"] == 1 and not d["complete"] and d["datasets"] == ["dagger/dagger-r1-v0"]

    # Killed once round 1's dataset has appeared (before or after a checkpoint of round 1),
    # resumed and killed again in round 1's training (after one of its checkpoints).
    killed_when(bc_command(args), round1.exists)
    written = round1.stat().st_mtime_ns
    assert [r["round"] for r in json.loads(summary_path.read_text())["dagger"]["rounds"]] == [0]
    since = time.time()
    killed_when(bc_command(["--resume", str(run_dir)]), lambda: in_round_1_training(since))
    assert in_round_1_training(since)

    # Resumed again: finishes round 1 (its dataset kept, not rolled out again), then round 2.
    proc = subprocess.run(
        bc_command(["--resume", str(run_dir)]),
        cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert round1.stat().st_mtime_ns == written
    summary = json.loads(summary_path.read_text())
    assert summary["final"]
    rounds = summary["dagger"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert [r["beta"] for r in rounds] == [None, 0.5, 0.25]
    assert rounds[0]["teacher"] == "sight-reader" and rounds[2]["teacher"] == "sight-reader"
    # The aggregate grows by one 81-step episode of the training song per round.
    assert [r["episodes"] for r in rounds] == [2, 3, 4]
    assert [r["steps"] for r in rounds] == [162, 243, 324]
    assert [r.get("new_steps") for r in rounds] == [None, 81, 81]
    assert rounds[2]["datasets"] == [DATASET, "dagger/dagger-r1-v0", "dagger/dagger-r2-v0"]
    assert [r["gradient_steps"] for r in rounds] == [100, 300, 300]
    assert [r["global_step"] for r in rounds] == [100, 400, 700]  # continued training
    assert summary["updates"] == rounds[2]["total_gradient_steps"] == 700
    for r in rounds:
        assert 0.0 <= r["eval"]["f1"] <= 1.0 and "note_f1" in r["eval"]
        assert r["train_s"] > 0 and r["eval_s"] > 0
    assert rounds[1]["rollout_s"] > 0 and rounds[0]["rollout_s"] == 0
    assert [e["round"] for e in summary["evals"]] == [0, 1, 2]
    for k in (0, 1, 2):
        assert (run_dir / f"model_round{k}.pt").is_file()

    # The round datasets: collect's layout, the learner's states, the teacher's labels.
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.dagger import round_metadata
    from pianomime_env.learning.datasets import dataset_info, episode_metadata, load_dataset

    info = dataset_info("dagger/dagger-r2-v0")
    assert info["episodes"] == 1 and info["steps"] == 81 and info["experts"] == ["sight-reader"]
    meta = round_metadata("dagger/dagger-r2-v0")
    assert meta["round"] == 2 and meta["beta"] == 0.25 and meta["run_dir"] == str(run_dir)
    assert meta["learner_global_step"] == 400
    m = episode_metadata("dagger/dagger-r2-v0")[0]
    assert m["song_source"] == SONG and m["dagger"]["round"] == 2
    ep = next(iter(load_dataset("dagger/dagger-r2-v0").iterate_episodes()))
    episode = {
        "seed": int(m["seed"]),
        "options": {"start_step": int(m["options"]["start_step"])},
        "actions": np.asarray(ep.actions),
        "observations": {"hand_joints": np.asarray(ep.observations["hand_joints"])},
    }
    labels = np.asarray(ep.infos["expert_action"])
    assert labels.shape == (82, 45) and np.isnan(labels[-1]).all()
    env = PianoMimeEnv(SONG)
    replayed, same = replay_labels(env, episode, steps=10)
    assert same
    np.testing.assert_array_equal(replayed, labels[:10])
    # The learner's actions ran on some steps (beta 0.25): executed differs from the label.
    assert not np.allclose(episode["actions"], labels[:81])
    env.close()

    # The final checkpoint plays through `pianomime play` (baselines/evaluate.py: below).
    cmd = [str(BIN / "pianomime"), "play", "CMajorScaleOneHand", "--policy", str(run_dir)]
    cmd += ["--no-video", "--out", str(tmp_path / "play")]
    proc = subprocess.run(cmd, cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "play" / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["f1"] <= 1.0


@pytest.mark.slow
def test_dagger_scratch_segments_checkpoint_teacher_and_refusals(data_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", data_env["MINARI_DATASETS_PATH"])
    # Retrain from scratch each round, random 30-step segments, a checkpoint as the teacher
    # (round 0's own policy: labels from any make_policy name).
    run_dir = tmp_path / "scratch"
    args = ["--dataset", DATASET, "--total-steps", "100", "--eval-every", "0", *EVAL]
    args += ["--run-dir", str(run_dir)]
    proc = subprocess.run(
        bc_command(args), cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    teacher = str(run_dir / "model.pt")
    args2 = ["--dataset", DATASET, "--total-steps", "100", "--eval-every", "0", *EVAL]
    args2 += ["--dagger-rounds", "1", "--dagger-retrain", "scratch", "--dagger-teacher", teacher]
    args2 += ["--dagger-segment-steps", "30", "--dagger-episodes", "2", "--dagger-beta", "0"]
    args2 += ["--run-dir", str(tmp_path / "d2"), "--dagger-dataset", "test/scratch"]
    proc = subprocess.run(
        bc_command(args2), cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rounds = json.loads((tmp_path / "d2" / "summary.json").read_text())["dagger"]["rounds"]
    assert [r["global_step"] for r in rounds] == [100, 100]  # a new network each round
    assert rounds[1]["new_steps"] == 60 and rounds[1]["teacher"] == teacher
    assert rounds[1]["teacher_fraction"] == 0.0
    from pianomime_env.learning.datasets import episode_metadata

    meta = episode_metadata("test/scratch-r1-v0")
    assert [m["total_steps"] for m in meta] == [30, 30]
    assert all(m["expert"] == teacher and "hand_qpos" in m["options"] for m in meta)

    # The round dataset of another run is not overwritten or reused; two-level is refused.
    other = [*args2[:-4], "--run-dir", str(tmp_path / "d3"), "--dagger-dataset", "test/scratch"]
    proc = subprocess.run(
        bc_command(other), cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "is not round 1 of this run" in proc.stderr
    proc = subprocess.run(
        bc_command([*args, "--dagger-rounds", "1", "--two-level"]),
        cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "--dagger-rounds with --two-level" in proc.stderr

    # The final checkpoint plays through baselines/evaluate.py.
    run_dir = tmp_path / "d2"
    cmd = [sys.executable, str(ROOT / "baselines" / "evaluate.py"), "--songs", "CMajorScaleOneHand"]
    cmd += ["--policy", str(run_dir / "model.pt"), "--max-seconds", "2", "--workers", "1"]
    cmd += ["--out", str(tmp_path / "eval")]
    proc = subprocess.run(cmd, cwd=ROOT, env=data_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "eval" / "results.json").is_file()
