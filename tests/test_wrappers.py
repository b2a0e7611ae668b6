"""ResidualIK wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pianomime_env.control.residual import ResidualIK, finger_actuators, residual_bounds
from pianomime_env.demos import from_midi
from pianomime_env.envs.piano import PianoMimeEnv

SONG = "CMajorChordProgressionTwoHands"


@pytest.fixture(scope="module")
def demo():
    return from_midi(SONG)


def test_check_env(demo):
    check_env(ResidualIK(PianoMimeEnv(SONG), demo), skip_render_check=True)
    check_env(ResidualIK(PianoMimeEnv(SONG), demo, sustain="policy"), skip_render_check=True)


@pytest.mark.parametrize("normalized", [False, True])
def test_zero_residual_is_nominal(demo, normalized):
    w = ResidualIK(PianoMimeEnv(SONG, normalized_actions=normalized), demo, residual_scale=0.03)
    obs, _ = w.reset(seed=0)
    for _ in range(5):
        nominal = obs["nominal_action"].astype(np.float64)
        obs, *_ = w.step(np.zeros(w.action_space.shape, np.float32))
        np.testing.assert_allclose(w.last_env_action, nominal, atol=1e-5)
    ctrl = w.env.unwrapped.data.ctrl
    np.testing.assert_allclose(ctrl, w.last_env_action[:-1], atol=1e-4)


def test_residual_scaled_and_bounded(demo):
    w = ResidualIK(PianoMimeEnv(SONG), demo, residual_scale=0.02)
    obs, _ = w.reset(seed=0)
    a = w.residual_to_action(np.ones(w.action_space.shape))
    u = w.env.unwrapped
    span = u.action_high[:-1] - u.action_low[:-1]
    expect = np.clip(
        obs["nominal_action"][:-1] + 0.02 * span, u.action_low[:-1], u.action_high[:-1]
    )
    np.testing.assert_allclose(a[:-1], expect, atol=1e-5)
    assert obs["demo_fingertips"].shape == (4, 30)


def test_finger_residual_scale_widens_only_the_finger_joints(demo):
    w = ResidualIK(PianoMimeEnv(SONG), demo, residual_scale=0.02, finger_residual_scale=0.1)
    obs, _ = w.reset(seed=0)
    u = w.env.unwrapped
    names = u.action_names[:-1]
    fingers = finger_actuators(names)
    # 18 per hand: thumb 5, first/middle/ring finger 3 each, little finger 4 (no wrist, forearm).
    assert len(fingers) == 36
    assert {names[i].split("_A_")[1][:2] for i in fingers} == {"TH", "FF", "MF", "RF", "LF"}
    span = u.action_high[:-1] - u.action_low[:-1]
    fraction = np.full(len(names), 0.02)
    fraction[fingers] = 0.1
    np.testing.assert_allclose(w.residual_bound, fraction * span)
    np.testing.assert_allclose(residual_bounds(u, 0.02, 0.1), fraction * span)
    a = w.residual_to_action(-np.ones(w.action_space.shape))
    expect = np.clip(
        obs["nominal_action"][:-1] - fraction * span, u.action_low[:-1], u.action_high[:-1]
    )
    np.testing.assert_allclose(a[:-1], expect, atol=1e-5)
    with pytest.raises(ValueError, match="finger_residual_scale"):
        ResidualIK(PianoMimeEnv(SONG), demo, finger_residual_scale=-0.1)


def test_rejects_bad_settings(demo):
    with pytest.raises(ValueError, match="Dict"):
        ResidualIK(PianoMimeEnv(SONG, flatten=True), demo)
    with pytest.raises(ValueError, match="steps"):
        ResidualIK(PianoMimeEnv("CMajorScaleOneHand"), demo)
    with pytest.raises(ValueError, match="sustain"):
        ResidualIK(PianoMimeEnv(SONG), demo, sustain="pedal")


def test_reference_state_init_starts_mid_song_posed_by_ik():
    env = PianoMimeEnv("CMajorScaleOneHand")
    demo = from_midi(env.trajectory, env=env)
    wrapped = ResidualIK(env, demo, reference_state_init=True)
    obs, _ = wrapped.reset(seed=3)
    start = env.t
    assert 0 < start < env.n_steps
    np.testing.assert_array_equal(obs["goal"][:, :88], env.trajectory.keys[start : start + 11])
    # The fingertips sit where the demo frame puts them (within the IK's reach).
    tips = env.fingertip_positions
    assert np.abs(tips - demo.fingertips[start]).max() < 0.02
    # Same seed, same start; the metrics cover only the steps played.
    wrapped.reset(seed=3)
    assert env.t == start
    steps = 0
    while True:
        *_, terminated, _, info = wrapped.step(np.zeros(wrapped.action_space.shape, np.float32))
        steps += 1
        if terminated:
            break
    assert steps == env.n_steps - start and "metrics" in info
    obs, _ = wrapped.reset(options={"start_step": 5})
    assert env.t == 5


def test_env_reset_options_are_validated():
    env = PianoMimeEnv("CMajorScaleOneHand")
    with pytest.raises(ValueError, match="start_step"):
        env.reset(options={"start_step": env.n_steps})
    with pytest.raises(ValueError, match="hand_qpos"):
        env.reset(options={"hand_qpos": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"bogus": 1})


def test_zero_residual_plays_like_the_sight_reader():
    from pianomime_env.control.sightreader import SightReader

    env = PianoMimeEnv("CMajorScaleOneHand")
    demo = from_midi(env.trajectory, env=env)
    reader = SightReader(env, demo)
    obs, _ = env.reset(seed=0)
    reader.reset()
    while True:
        obs, _, terminated, _, info = env.step(reader(obs))
        if terminated:
            direct = info["metrics"]
            break
    wrapped = ResidualIK(PianoMimeEnv("CMajorScaleOneHand"), demo)
    zero = np.zeros(wrapped.action_space.shape, np.float32)
    wrapped.reset(seed=0)
    while True:
        _, _, terminated, _, info = wrapped.step(zero)
        if terminated:
            break
    assert info["metrics"] == direct
    assert direct["f1"] > 0.8  # the sight-reader plays this scale (0.86 at commit time)


def test_ik_nominal_option():
    env = PianoMimeEnv("CMajorScaleOneHand")
    demo = from_midi(env.trajectory, env=env)
    wrapped = ResidualIK(env, demo, nominal="ik")
    check_env(wrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="nominal"):
        ResidualIK(env, demo, nominal="oracle")
