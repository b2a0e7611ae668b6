"""MultiSongEnv: a seeded song per reset, fixed-length segments, ResidualIK planned once per
song, registration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from pianomime_env.envs.multisong import MultiSongEnv

SONGS = ["CMajorScaleOneHand", "CMajorChordProgressionTwoHands"]


def test_songs_segments_and_seeds():
    env = MultiSongEnv(SONGS, segment_steps=12)
    drawn = []
    for k in range(6):
        obs, info = env.reset(seed=k)
        assert env.observation_space.contains(obs)
        drawn.append((info["song"], info["start_step"]))
        n = env.current.unwrapped.n_steps
        assert 0 <= info["start_step"] <= n - 12
        steps, term, trunc = 0, False, False
        while not (term or trunc):
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            steps += 1
        assert info["metrics"]["note_f1"] < 0.5  # random actions do not play the window
        assert steps == 12 and info["song"] == drawn[-1][0]
    assert {s for s, _ in drawn} == set(SONGS)  # both songs come up
    again = [env.reset(seed=k)[1] for k in range(6)]
    assert [(i["song"], i["start_step"]) for i in again] == drawn  # seeded
    _, info = env.reset(seed=0, options={"song": 1, "start_step": 3})
    assert info["song"] == SONGS[1] and info["start_step"] == 3
    env.close()
    with pytest.raises(ValueError, match="segment_steps"):
        MultiSongEnv(SONGS, segment_steps=0)


def test_residual_plans_once_per_song_and_registers():
    env = gym.make("PianoMime-MultiSong-v0", songs=SONGS, segment_steps=5, residual=True)
    inner = env.unwrapped
    assert isinstance(inner, MultiSongEnv)
    assert "nominal_action" in env.observation_space.spaces and env.action_space.shape == (44,)
    for k in range(4):
        env.reset(seed=k)
        _, r, *_ = env.step(np.zeros(44, np.float32))  # a zero residual: the sight-reader
        assert np.isfinite(r)
    assert inner.plans == 2 and sorted(inner.cached_songs) == sorted(SONGS)
    env.close()


def test_residual_wrapper_config_builds_the_residual_multi_song_env():
    """env_make_kwargs turns a residual wrapper config into MultiSongEnv's own residual
    settings; wrap_env then keeps the env, whose observation layout is ResidualIK's on one song."""
    from pianomime_env.control.residual import ResidualIK
    from pianomime_env.demos import from_midi
    from pianomime_env.envs.making import env_make_kwargs, is_multi_song, wrap_env
    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import observation_layout

    wrapper = {"residual": True, "residual_scale": 0.02, "finger_residual_scale": 0.1}
    env_id = "PianoMime-MultiSong-v0"
    assert is_multi_song(env_id) and not is_multi_song("PianoMime-CMajorScaleOneHand-v0")
    kwargs = env_make_kwargs(env_id, {"songs": SONGS, "segment_steps": 5}, wrapper)
    assert kwargs["residual"] and kwargs["finger_residual_scale"] == 0.1
    env = gym.make(env_id, **kwargs)
    assert wrap_env(env, wrapper) is env
    single = PianoMimeEnv(SONGS[0], flatten=False)
    one = ResidualIK(single, from_midi(single.trajectory, env=single), finger_residual_scale=0.1)
    assert observation_layout(env.observation_space) == observation_layout(one.observation_space)
    env.reset(seed=0)
    np.testing.assert_allclose(env.unwrapped.current.residual_bound, one.residual_bound)
    plain = gym.make(env_id, songs=SONGS, segment_steps=5)
    with pytest.raises(ValueError, match="residual=True"):
        wrap_env(plain, wrapper)
    assert env_make_kwargs("PianoMime-CMajorScaleOneHand-v0", {}, wrapper) == {}


@pytest.mark.parametrize("residual", [False, True])
def test_ppo_trains_across_songs(tmp_path, residual):
    """baselines/ppo.py takes the env by its module-qualified id, plain or residual (each song
    in ResidualIK); the checkpoint plays any song."""
    pytest.importorskip("torch")
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    kwargs = json.dumps({"songs": SONGS, "segment_steps": 40})
    cmd = [sys.executable, str(root / "baselines" / "ppo.py"), "--env-id"]
    cmd += ["PianoMime-MultiSong-v0", "--env-kwargs", kwargs]
    cmd += ["--num-envs", "1", "--num-steps", "64", "--total-timesteps", "128"]
    cmd += ["--eval-every", "0", "--run-dir", str(tmp_path / "ppo"), "--no-progress"]
    if residual:
        cmd += ["--residual", "--finger-residual-scale", "0.1"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "ppo" / "summary.json").read_text())
    assert summary["global_step"] == 128
    if residual:  # 128 steps barely move a residual: it still plays as the sight-reader
        assert summary["eval"]["f1"] == pytest.approx(summary["evals"][0]["f1"], abs=0.05)
        assert summary["evals"][0]["f1"] > 0.5
    else:  # a from-scratch policy this young presses next to nothing
        assert summary["eval"]["note_f1"] < 0.2

    from pianomime_env.envs.piano import PianoMimeEnv
    from pianomime_env.learning.policies import load_checkpoint, load_policy

    env = PianoMimeEnv("TwinkleTwinkleLittleStar")
    policy = load_policy(tmp_path / "ppo" / "model.pt", env)
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(policy(obs))
    wrapper = load_checkpoint(tmp_path / "ppo" / "model.pt")["wrapper"]
    assert wrapper["residual"] is residual
    if residual:
        assert wrapper["finger_residual_scale"] == 0.1
