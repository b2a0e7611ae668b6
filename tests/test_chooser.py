"""The distilled look-ahead's pieces on the real env: features, the numpy network, the teacher's
labels, and the checkpoint played through load_policy."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env.control.lookahead import LookaheadSightReader
from pianomime_env.control.sightreader import SightReader
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.learning.chooser import (
    FEATURE_NAMES,
    ChooserNetwork,
    choice_features,
    pick,
    record_choices,
)
from pianomime_env.learning.evaluation import evaluate_song
from pianomime_env.learning.policies import PolicyError, build_mlp, load_policy, save_checkpoint

SONG = "CMajorChordProgressionTwoHands"
torch = pytest.importorskip("torch")


def test_features_read_the_env_and_the_plans():
    env = PianoMimeEnv(SONG)
    reader = LookaheadSightReader(env)
    obs, _ = env.reset(seed=0)
    reader.reset()
    for _ in range(12):
        obs, *_ = env.step(reader(obs))
    x = choice_features(obs, reader)
    named = dict(zip(FEATURE_NAMES, x))
    assert x.shape == (len(FEATURE_NAMES),) and x.dtype == np.float32 and np.isfinite(x).all()
    t = env.t
    goal = env.trajectory.keys > 0.5
    tips = obs["fingertips"].reshape(2, 5, 3)
    assert named["tip_error/L/3/y"] == pytest.approx(
        tips[1, 3, 1] - reader.demo.fingertips[t, 1, 3, 1], abs=1e-6
    )
    assert named["goal_keys/now"] == goal[t].sum()
    assert named["goal_key_steps/window"] == goal[t : t + 20].sum()
    plan = reader.plans[6]  # the release_reach candidate's plan
    assert named["unfingered/candidate6"] == np.count_nonzero(
        goal[t : t + 20] & (plan.fingering[t : t + 20] < 0)
    )
    centre = reader.demo.fingertips[:, :, :, :2].mean(axis=2)
    assert named["plan_move/R/+10/x"] == pytest.approx(centre[t + 10, 0, 0] - centre[t, 0, 0])


def _network(in_dim: int, out_dim: int, seed: int = 0, zero: bool = False) -> dict:
    torch.manual_seed(seed)
    net = build_mlp(in_dim, [16, 8], out_dim, "tanh")
    if zero:
        for p in net.parameters():
            torch.nn.init.zeros_(p)
    actor = {
        "state_dict": net.state_dict(),
        "in_dim": in_dim,
        "hidden": [16, 8],
        "out_dim": out_dim,
        "activation": "tanh",
    }
    mean, var = torch.linspace(-1, 1, in_dim, dtype=torch.float64), torch.full((in_dim,), 4.0)
    return {
        "net": net,
        "actor": actor,
        "obs_norm": {"mean": mean, "var": var, "clip": 5.0, "eps": 1e-6},
    }


def test_numpy_network_equals_torch():
    n = _network(len(FEATURE_NAMES), 7, seed=3)
    x = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES))) * 4
    xn = np.clip((x - n["obs_norm"]["mean"].numpy()) / np.sqrt(4.0 + 1e-6), -5, 5)
    with torch.no_grad():
        expected = n["net"](torch.as_tensor(xn, dtype=torch.float32)).numpy()
    net = ChooserNetwork(n["actor"], n["obs_norm"])
    got = np.stack([net.gains(row) for row in x])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_pick_keeps_the_default_unless_a_gain_beats_the_margin():
    assert pick(np.array([5.0, -0.1, -0.2]), 0.0) == 0  # column 0 is the default: gain 0
    assert pick(np.array([0.0, 0.05, 0.2, 0.1]), 0.0) == 2
    assert pick(np.array([0.0, 0.05, 0.2, 0.1]), 0.3) == 0


def test_teacher_episode_is_the_look_ahead_and_labels_its_picks():
    """beta = 1: the recorded episode is the look-ahead's own (same metrics, same picks), and each
    label row's argmax is the pick."""
    rec = record_choices(SONG, 2.0, beta=1.0)
    ref = evaluate_song(SONG, "sight-reader-lookahead", 2.0, True, 0)
    assert rec["metrics"]["f1"] == ref["f1"] and rec["metrics"]["note_f1"] == ref["note_f1"]
    c = len(rec["chosen"])
    assert c == -(-rec["steps"] // 10) and rec["features"].shape == (c, len(FEATURE_NAMES))
    assert rec["scores"].shape == (c, 7)
    assert (rec["chunk_steps"], rec["horizon_steps"], rec["control_timestep"]) == (10, 20, 0.05)
    np.testing.assert_array_equal(rec["chosen"], rec["teacher"])
    np.testing.assert_array_equal(rec["teacher"], rec["scores"].argmax(axis=1))


def test_learner_rounds_mix_by_beta():
    """beta = 0 with a network predicting no gain: every chunk plays the default, while the
    labels still carry the teacher's pick from the learner's own states."""
    n = _network(len(FEATURE_NAMES), 7, zero=True)
    rec = record_choices(SONG, 2.0, network=n, beta=0.0)
    assert (rec["chosen"] == 0).all()
    np.testing.assert_array_equal(rec["teacher"], rec["scores"].argmax(axis=1))
    plain = evaluate_song(SONG, "sight-reader", 2.0, True, 0)
    assert rec["metrics"]["f1"] == plain["f1"]  # the default candidate is the plain reader


def _checkpoint(tmp_path, n: dict, **extra) -> str:
    path = tmp_path / "model.pt"
    save_checkpoint(
        path,
        {
            "algorithm": "lookahead-chooser",
            "actor": n["actor"],
            "obs_norm": n["obs_norm"],
            "env": {"id": "PianoMime-v0", "kwargs": {}},
            "observation_layout": [],
            "wrapper": {"residual": False},
            "candidates": [{}, {"forearm_overshoot": 3.0}, {"lead": 1}],
            "chunk_steps": 10,
            "horizon_steps": 20,
            "margin": 0.0,
            "control_timestep": 0.05,
            **extra,
        },
    )
    return str(path)


def test_checkpoint_plays_through_load_policy(tmp_path):
    # Three candidates here: the features' last block has one entry per candidate.
    n = _network(len(FEATURE_NAMES) - 4, 3, zero=True)
    env = PianoMimeEnv(SONG)
    policy = load_policy(_checkpoint(tmp_path, n), env)
    plain_env = PianoMimeEnv(SONG)
    plain = SightReader(plain_env)
    obs, _ = env.reset(seed=0)
    obs_p, _ = plain_env.reset(seed=0)
    policy.reset()
    plain.reset()
    for _ in range(25):  # a zero network predicts no gain: the plain sight-reader, step for step
        a = policy(obs)
        np.testing.assert_array_equal(a, plain(obs_p))
        obs, *_ = env.step(a)
        obs_p, *_ = plain_env.step(a)
    assert [c for _, c in policy.reader.choices] == [0, 0, 0]


def test_checkpoint_for_another_control_rate_is_refused(tmp_path):
    n = _network(len(FEATURE_NAMES) - 4, 3, zero=True)
    with pytest.raises(PolicyError, match="0.02 s control step"):
        load_policy(_checkpoint(tmp_path, n, control_timestep=0.02), PianoMimeEnv(SONG))
