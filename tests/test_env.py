"""PianoMimeEnv: Gymnasium API, options, determinism, pickling, parity with RoboPianist."""

from __future__ import annotations

import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import pianomime_env
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.music.songs import BUILTIN_SONGS, SongError
from tests.conftest import random_actions, rollout


@pytest.mark.parametrize("song", BUILTIN_SONGS)
def test_check_env_every_registered_song(song):
    env = gym.make(pianomime_env.env_id(song))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_midi_path_and_register_song(tiny_midi):
    env = gym.make("PianoMime-v0", midi=str(tiny_midi)).unwrapped
    assert env.n_steps == 41  # 2.0 s at 20 Hz, plus the frame at the end time (as RoboPianist)
    check_env(env, skip_render_check=True)
    env_id = pianomime_env.register_song("TinyTestSong", tiny_midi)
    assert env_id == "PianoMime-TinyTestSong-v0"
    env2 = gym.make(env_id).unwrapped
    np.testing.assert_array_equal(env2.trajectory.keys, env.trajectory.keys)


def test_observation_layout_and_flatten():
    env = PianoMimeEnv("CMajorScaleOneHand")
    obs, _ = env.reset(seed=0)
    assert list(obs) == ["goal", "piano_state", "sustain_state", "hand_joints", "fingertips"]
    assert obs["goal"].shape == (11, 89)
    assert obs["hand_joints"].shape == (52,)
    assert all(v.dtype == np.float32 for v in obs.values())
    np.testing.assert_array_equal(obs["goal"][:, :88], env.trajectory.keys[:11])
    flat_env = PianoMimeEnv("CMajorScaleOneHand", flatten=True)
    flat, _ = flat_env.reset(seed=0)
    assert flat.shape == (89 * 11 + 88 + 1 + 52 + 30,) == flat_env.observation_space.shape
    np.testing.assert_array_equal(flat, np.concatenate([v.ravel() for v in obs.values()]))
    np.testing.assert_array_equal(gym.spaces.flatten(env.observation_space, obs), flat)
    vel = PianoMimeEnv("CMajorScaleOneHand", joint_velocities=True)
    obs, _ = vel.reset(seed=0)
    assert obs["hand_velocities"].shape == (52,)


def test_fingertips_match_sites():
    env = PianoMimeEnv("CMajorScaleOneHand")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    tips = obs["fingertips"].reshape(2, 5, 3)
    np.testing.assert_allclose(tips, env.fingertip_positions, atol=1e-6)
    # The right hand sits at +y (treble side), the left at -y.
    assert tips[0, :, 1].mean() > tips[1, :, 1].mean()


def test_reduced_and_normalized_action_spaces():
    env = PianoMimeEnv("CMajorScaleOneHand", reduced_action_space=True, normalized_actions=True)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (39,)
    assert obs["hand_joints"].shape == (46,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    full = env.action_from_normalized(np.ones(39))
    np.testing.assert_allclose(full[:-1], env.model.actuator_ctrlrange[:, 1])
    env.step(np.zeros(39, dtype=np.float32))
    np.testing.assert_allclose(env.data.ctrl, env.model.actuator_ctrlrange.mean(axis=1))
    check_env(env, skip_render_check=True)


def test_song_end_is_terminated_with_metrics():
    env = PianoMimeEnv("CMajorChordProgressionTwoHands")
    env.reset(seed=0)
    idle = np.clip(np.zeros(45), env.action_space.low, env.action_space.high)
    for t in range(env.n_steps):
        obs, reward, terminated, truncated, info = env.step(idle)
        assert not truncated
        assert terminated == (t == env.n_steps - 1)
    assert set(info["metrics"]) >= {"precision", "recall", "f1", "note_f1", "sustain_f1"}
    # Silence scores nothing on note onsets, whatever per-step F1 says.
    assert info["metrics"]["note_f1"] == 0.0
    assert not obs["goal"].any()  # past the end the goal is zero
    with pytest.raises(RuntimeError, match="reset"):
        env.step(idle)


def test_wrong_press_termination_ends_early():
    env = PianoMimeEnv("TwinkleTwinkleRousseau", wrong_press_termination=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(env.n_steps):  # noqa: B007 - t is read after the loop
        *_, terminated, _, info = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        if terminated:
            break
    assert info["wrong_press"] and t < env.n_steps - 1
    assert "metrics" in info


def test_seeded_determinism_and_randomized_hands():
    kwargs = dict(randomize_hand_positions=True)
    a, b = (
        PianoMimeEnv("CMajorScaleTwoHands", **kwargs),
        PianoMimeEnv("CMajorScaleTwoHands", **kwargs),
    )
    actions = random_actions(a, 30)
    ra, rb = rollout(a, actions, seed=7), rollout(b, actions, seed=7)
    for (oa, ra_, _), (ob, rb_, _) in zip(ra, rb):
        assert ra_ == rb_
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
    rc = rollout(b, actions[:1], seed=8)
    assert not np.array_equal(ra[0][0]["fingertips"], rc[0][0]["fingertips"])
    # Re-seeding the same env reproduces the first episode.
    rd = rollout(a, actions, seed=7)
    np.testing.assert_array_equal(rd[-1][0]["hand_joints"], ra[-1][0]["hand_joints"])


def test_pickle_round_trip():
    env = PianoMimeEnv("CMajorScaleOneHand", n_steps_lookahead=3, flatten=True)
    clone = pickle.loads(pickle.dumps(env))
    actions = random_actions(env, 10)
    for (o1, r1, _), (o2, r2, _) in zip(rollout(env, actions), rollout(clone, actions)):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


def test_async_vector_env():
    envs = gym.make_vec("PianoMime-CMajorScaleOneHand-v0", num_envs=2, vectorization_mode="async")
    obs, _ = envs.reset(seed=0)
    assert obs["goal"].shape == (2, 11, 89)
    obs, rew, term, trunc, infos = envs.step(envs.action_space.sample())
    assert rew.shape == (2,) and "reward/key_press" in infos
    envs.close()


def test_options_change_the_model_and_song():
    base = PianoMimeEnv("CMajorScaleOneHand")
    env = PianoMimeEnv(
        "CMajorScaleOneHand",
        gravity_compensation=True,
        disable_hand_collisions=True,
        stretch=2.0,
        initial_buffer_time=0.5,
        control_timestep=0.1,
        physics_timestep=0.01,
        n_steps_lookahead=0,
    )
    assert env.model.opt.timestep == 0.01
    assert env.model.body_gravcomp.sum() > 50 and base.model.body_gravcomp.sum() == 0
    assert env.metadata["render_fps"] == 10
    # Twice as slow at half the control rate: same number of steps, plus 5 buffer steps.
    assert env.n_steps == base.n_steps + 5
    obs, _ = env.reset(seed=0)
    assert obs["goal"].shape == (1, 89) and not obs["goal"].any()
    shifted = PianoMimeEnv("CMajorScaleOneHand", shift=2)
    on = np.flatnonzero(base.trajectory.keys.any(0))
    np.testing.assert_array_equal(np.flatnonzero(shifted.trajectory.keys.any(0)), on + 2)


def test_disable_hand_collisions_lets_hands_overlap():
    def contacts_between_hands(env):
        env.reset(seed=0)
        names = env.joint_names
        env.data.qpos[env.index.hand_qpos[0][names[0].index("forearm_tx")]] = -0.15
        env.data.qpos[env.index.hand_qpos[1][names[1].index("forearm_tx")]] = 0.15
        mujoco.mj_forward(env.model, env.data)
        return env.data.ncon

    assert contacts_between_hands(PianoMimeEnv("CMajorScaleOneHand")) > 0
    assert (
        contacts_between_hands(PianoMimeEnv("CMajorScaleOneHand", disable_hand_collisions=True))
        == 0
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_steps_lookahead=-1), "n_steps_lookahead"),
        (dict(n_steps_lookahead=2.5), "n_steps_lookahead"),
        (dict(control_timestep=0.05, physics_timestep=0.03), "whole multiple"),
        (dict(physics_timestep=0.0), "physics_timestep"),
        (dict(initial_buffer_time=-1.0), "initial_buffer_time"),
        (dict(render_mode="human"), "render_mode"),
        (dict(render_mode="rgb_array", camera="nope"), "unknown camera"),
        (dict(width=0), "width"),
        (dict(reward_terms={"not_a_term": 1.0}), "unknown reward term"),
        (dict(reward_terms={"key_press": float("nan")}), "finite"),
    ],
)
def test_invalid_kwargs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PianoMimeEnv("CMajorScaleOneHand", **kwargs)


def test_unknown_kwarg_and_song():
    with pytest.raises(TypeError, match="no_such_option"):
        gym.make("PianoMime-CMajorScaleOneHand-v0", no_such_option=1)
    with pytest.raises(SongError, match="TwinkleTwinkleLittleStar"):
        PianoMimeEnv("TwinkleTwinkleLittleStr")
    with pytest.raises(TypeError, match="needs a song"):
        PianoMimeEnv()


def test_bad_actions():
    env = PianoMimeEnv("CMajorScaleOneHand")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(45))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(44,\), expected \(45,\)"):
        env.step(np.zeros(44))
    bad = np.zeros(45)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf at indices \\[3\\]"):
        env.step(bad)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(bad)
    with pytest.raises(ValueError, match="numeric"):
        env.step("press all keys")
    # The env is still usable after rejected actions; out-of-range values are clipped.
    env.step(np.full(45, 100.0))
    np.testing.assert_allclose(env.data.ctrl, env.model.actuator_ctrlrange[:, 1])


def test_render_rgb_array():
    env = PianoMimeEnv("CMajorScaleOneHand", render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    try:
        frame = env.render()
    except RuntimeError as exc:  # no GL library on this machine
        pytest.skip(f"no offscreen GL: {exc}")
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank image
    # A pressed key is drawn green: force key 39 (C4) down and compare frames.
    env._key_activation[:] = False
    before = env.render().astype(int)
    env._key_activation[39] = True
    after = env.render().astype(int)
    changed = np.abs(after - before).sum(-1) > 30
    assert changed.any()
    assert (
        after[changed][:, 1] > after[changed][:, 0]
    ).mean() > 0.8  # the changed pixels are green
    env.close()


def test_no_gl_until_render():
    env = PianoMimeEnv("CMajorScaleOneHand", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env._renderer is None


def test_parity_with_robopianist():
    """Same actions -> same observations and reward terms as RoboPianist's own env."""
    import warnings

    warnings.filterwarnings("ignore")
    suite = pytest.importorskip("robopianist.suite")
    song = "CMajorScaleTwoHands"
    rp = suite.load(f"RoboPianist-debug-{song}-v0", task_kwargs=dict(n_steps_lookahead=10))
    env = PianoMimeEnv(song, song_end="truncate")
    ts = rp.reset()
    obs, _ = env.reset(seed=0)
    task = rp.task
    rng = np.random.default_rng(0)
    spec = rp.action_spec()
    n_steps = 0
    while True:  # the whole song: the episode-end flags are compared too
        a = rng.uniform(spec.minimum, spec.maximum)
        ts = rp.step(a)
        obs, _, terminated, truncated, info = env.step(a)
        n_steps += 1
        # RoboPianist ends the episode with discount 1 at the song's end: truncation.
        assert ts.last() == (terminated or truncated)
        if ts.last():
            assert truncated and not terminated and ts.discount == 1.0
            assert n_steps == env.n_steps
            break
        o = ts.observation
        np.testing.assert_allclose(obs["goal"].ravel(), o["goal"])
        np.testing.assert_allclose(obs["piano_state"], o["piano/state"], atol=1e-6)
        np.testing.assert_allclose(obs["sustain_state"], o["piano/sustain_state"], atol=1e-6)
        hands = np.concatenate([o["rh_shadow_hand/joints_pos"], o["lh_shadow_hand/joints_pos"]])
        np.testing.assert_allclose(obs["hand_joints"], hands, atol=1e-5)
        assert info["reward/key_press"] == pytest.approx(task._compute_key_press_reward(rp.physics))
        assert info["reward/sustain"] == pytest.approx(task._compute_sustain_reward(rp.physics))
        assert info["reward/energy"] == pytest.approx(task._compute_energy_reward(rp.physics))
        assert info["reward/forearm_collision"] == task._compute_forearm_reward(rp.physics)
        np.testing.assert_array_equal(env.key_activation, task.piano.activation)


def test_song_end_modes():
    """The song's last step: terminated (default) or truncated (RoboPianist); wrong-press
    termination is a termination in both modes."""
    for mode, flags in [("terminate", (True, False)), ("truncate", (False, True))]:
        env = PianoMimeEnv("CMajorChordProgressionTwoHands", song_end=mode)
        env.reset(seed=0)
        idle = np.clip(np.zeros(env.action_space.shape), env.action_low, env.action_high)
        for t in range(env.n_steps):
            _, _, terminated, truncated, info = env.step(idle)
            if t < env.n_steps - 1:
                assert not (terminated or truncated)
        assert (terminated, truncated) == flags and "metrics" in info
    with pytest.raises(ValueError, match="song_end must be one of"):
        PianoMimeEnv("CMajorScaleOneHand", song_end="stop")


def test_instability_is_reported_every_time(recwarn, tmp_path, monkeypatch):
    """MuJoCo's silent state reset (mjWARN_BADQACC) shows in info and as a warning, each step."""
    from pianomime_env.envs.piano import PhysicsInstabilityWarning

    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warnings to ./MUJOCO_LOG.TXT
    env = PianoMimeEnv("CMajorScaleOneHand")
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["physics_unstable"] is False
    env.model.dof_damping[:] = -1e4  # destabilise on purpose: negative damping blows up
    for _ in range(3):
        _, _, _, _, info = env.step(env.action_space.sample())
        assert info["physics_unstable"] is True
    assert sum(issubclass(w.category, PhysicsInstabilityWarning) for w in recwarn) == 3


def test_fast_physics_timestep_and_stability():
    env = PianoMimeEnv("CMajorScaleOneHand", fast_physics=True)
    assert env.physics_timestep == pytest.approx(0.01) and env.n_substeps == 5
    assert PianoMimeEnv("CMajorScaleOneHand").n_substeps == 10
    explicit = PianoMimeEnv("CMajorScaleOneHand", fast_physics=True, physics_timestep=0.0025)
    assert explicit.n_substeps == 20
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(env.n_steps):  # random actions for a whole song: no instability
        a = rng.uniform(env.action_low, env.action_high).astype(np.float32)
        _, _, terminated, _, info = env.step(a)
        assert not info["physics_unstable"]
        if terminated:
            break


def test_controller_api_round_trip():
    env = PianoMimeEnv("CMajorScaleOneHand", normalized_actions=True)
    low, high = env.action_low, env.action_high
    assert low.shape == high.shape == (45,) and (low < high).all()
    assert low[-1] == 0.0 and high[-1] == 1.0
    with pytest.raises(ValueError):
        low[0] = 1.0  # read-only: a controller cannot corrupt the env's bounds
    a = np.random.default_rng(0).uniform(low, high)
    np.testing.assert_allclose(env.action_from_normalized(env.action_to_normalized(a)), a)
    np.testing.assert_allclose(env.action_to_normalized(low), -1.0)
    assert env.to_env_action(high).dtype == np.float32
    np.testing.assert_allclose(env.to_env_action(high), 1.0)
    plain = PianoMimeEnv("CMajorScaleOneHand")
    np.testing.assert_allclose(plain.to_env_action(a), a.astype(np.float32))
    assert [n for n, _, _ in plain.reward_terms] == list(plain.reward_term_names)


def test_played_keys_and_sustain_recorded_per_step():
    env = PianoMimeEnv("CMajorScaleOneHand")
    env.reset(seed=0)
    a = np.clip(np.zeros(env.action_space.shape), env.action_low, env.action_high)
    a[-1] = 1.0  # pedal down
    for _ in range(3):
        env.step(a)
    assert env.played_keys.shape == (3, 88) and env.played_sustain.tolist() == [True] * 3


def test_physics_state_continues_in_a_copy():
    """A pickled copy reset to another env's physics state and step steps exactly as it does."""
    import pickle

    from pianomime_env.control.sightreader import SightReader

    env = PianoMimeEnv("CMajorChordProgressionTwoHands")
    obs, _ = env.reset(seed=0)
    reader = SightReader(env)
    reader.reset()
    for _ in range(15):
        obs, *_ = env.step(reader(obs))
    copy = pickle.loads(pickle.dumps(env))
    obs_c, _ = copy.reset(options={"start_step": env.t, "physics_state": env.physics_state()})
    np.testing.assert_array_equal(obs_c["hand_joints"], obs["hand_joints"])
    np.testing.assert_array_equal(obs_c["goal"], obs["goal"])
    for _ in range(10):
        action = reader(obs)
        obs, *_ = env.step(action)
        obs_c, *_ = copy.step(action)
        np.testing.assert_array_equal(obs_c["hand_joints"], obs["hand_joints"])
        np.testing.assert_array_equal(copy.key_activation, env.key_activation)
    with pytest.raises(ValueError, match="physics_state.*shape"):
        copy.reset(options={"physics_state": np.zeros(3)})
