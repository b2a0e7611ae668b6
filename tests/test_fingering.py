"""Tests for the fingering / style reward terms (real env, real MuJoCo, real scipy)."""

from __future__ import annotations

import dataclasses
import itertools
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from dm_control.utils.rewards import tolerance

import pianomime_env  # noqa: F401
from pianomime_env.music.sources import load_song
from pianomime_env.rewards import (
    REWARD_TERMS,
    EpisodeContext,
    StepContext,
    build_terms,
    reward_term_factory,
)
from pianomime_env.rewards import fingering as fl

SONG = "TwinkleTwinkleRousseau"
ENV_ID = f"PianoMime-{SONG}-v0"
FAR = np.array([0.0, 0.0, 1.0])  # 1 m above the keyboard: farther than any key


def tol(x, bound=0.01, margin=0.1):
    return tolerance(np.asarray(x, float), bounds=(0, bound), margin=margin, sigmoid="gaussian")


@pytest.fixture(scope="module")
def scene():
    env = gym.make(ENV_ID, reward_terms={"key_press": 1.0})
    env.reset(seed=0)
    u = env.unwrapped
    yield SimpleNamespace(env=u, model=u.model, data=u.data, index=u.index)
    env.close()


def episode(scene, *, fingering=None, demo=None, goal_keys=None):
    goal = np.zeros((5, 88), np.float32) if goal_keys is None else goal_keys
    fing = np.full(goal.shape, -1, np.int8) if fingering is None else fingering
    return EpisodeContext(
        model=scene.model,
        index=scene.index,
        goal_keys=goal,
        goal_sustain=np.zeros(goal.shape[0], np.float32),
        fingering=fing,
        control_timestep=0.05,
        demo=demo,
    )


def step_ctx(scene, ep, *, keys=(), fingertips, fingering=None, t=0):
    goal = np.zeros(88, np.float32)
    goal[list(keys)] = 1.0
    return StepContext(
        t=t,
        goal_keys=goal,
        goal_sustain=0.0,
        fingering=np.full(88, -1, np.int8) if fingering is None else fingering,
        key_state=np.zeros(88),
        key_activation=np.zeros(88, bool),
        sustain_state=0.0,
        sustain_activation=False,
        hand_joints=np.zeros((2, 26)),
        fingertips=np.asarray(fingertips, float).reshape(2, 5, 3),
        actuator_force=np.zeros(scene.model.nu),
        actuator_velocity=np.zeros(scene.model.nu),
        data=scene.data,
        episode=ep,
    )


def targets(scene):
    return fl.key_targets(scene.model, scene.data, scene.index.key_geoms)


def tips_far():
    return np.tile(FAR, (10, 1))


# -- helpers ------------------------------------------------------------------------------------


def test_registered_by_name():
    for name, cls in [
        ("ot_fingering", fl.OTFingering),
        ("fingering", fl.Fingering),
        ("style", fl.Style),
    ]:
        assert name in REWARD_TERMS
        assert reward_term_factory(name) is cls
    assert [n for n, _, _ in build_terms({"ot_fingering": 2.0})] == ["ot_fingering"]


def test_gaussian_tolerance_matches_dm_control():
    x = np.concatenate([[0.0, 0.005, 0.01, 0.011, 0.11, 0.3], np.random.default_rng(0).random(50)])
    np.testing.assert_allclose(fl.gaussian_tolerance(x, 0.01, 0.1), tol(x), rtol=1e-12)
    np.testing.assert_allclose(
        fl.gaussian_tolerance(x, 0.005, 0.005), tol(x, 0.005, 0.005), rtol=1e-12
    )
    assert fl._mean_tolerance(x.copy(), 0.01, 0.1) == pytest.approx(tol(x).mean(), rel=1e-12)


def test_key_targets_are_robopianists(scene):
    m, d, geoms = scene.model, scene.data, scene.index.key_geoms
    got = targets(scene)
    for k in (0, 1, 39, 40, 87):  # white and black keys
        g = geoms[k]
        expected = d.geom_xpos[g].copy()
        expected[-1] += 0.5 * m.geom_size[g][2]  # robopianist 1.0.10, verbatim
        expected[0] += 0.35 * m.geom_size[g][0]
        np.testing.assert_allclose(got[k], expected)


# -- ot_fingering -------------------------------------------------------------------------------


def ot_term(scene, ep=None):
    term = fl.OTFingering()
    term.reset(ep or episode(scene))
    return term


def test_ot_no_keys_is_one(scene):
    term = ot_term(scene)
    ctx = step_ctx(scene, episode(scene), fingertips=tips_far())
    assert term(ctx) == 1.0
    info = term.info(ctx)["ot_fingering/assignment"]
    assert info.dtype == np.int8 and info.shape == (10,) and (info == -1).all()


def test_ot_finger_on_target_is_one_and_at_margin_is_point_one(scene):
    term, ep, p = ot_term(scene), episode(scene), targets(scene)
    tips = tips_far()
    tips[7] = p[40]  # left index finger exactly on key 40's target
    ctx = step_ctx(scene, ep, keys=[40], fingertips=tips)
    assert term(ctx) == pytest.approx(1.0)
    a = term.info(ctx)["ot_fingering/assignment"]
    assert a[7] == 40 and (np.delete(a, 7) == -1).all()

    tips[7] = p[40] + [0.0, 0.0, 0.11]  # bound 0.01 + margin 0.1 -> 0.1
    assert term(step_ctx(scene, ep, keys=[40], fingertips=tips)) == pytest.approx(0.1)
    tips[7] = p[40] + [0.0, 0.1, 0.0]  # 0.1 m: exp(-0.5·2 ln10·0.9²)
    expected = np.exp(-np.log(10) * 0.9**2)
    assert term(step_ctx(scene, ep, keys=[40], fingertips=tips)) == pytest.approx(expected)


def test_ot_optimal_not_greedy(scene):
    """Two white keys an octave apart; greedy nearest-pair matching would pick the wrong pairs."""
    term, ep, p = ot_term(scene), episode(scene), targets(scene)
    a, b = 39, 51
    delta = p[b] - p[a]
    assert abs(delta[0]) < 1e-9 and abs(delta[2]) < 1e-9  # both white: differ along y only
    tips = tips_far()
    tips[1] = p[a] + 0.6 * delta  # 0.6Δ from a, 0.4Δ from b (the globally nearest pair)
    tips[2] = p[a] + 1.5 * delta  # 1.5Δ from a, 0.5Δ from b
    ctx = step_ctx(scene, ep, keys=[a, b], fingertips=tips)
    r = term(ctx)
    # greedy: finger1->b (0.4Δ) then finger2->a (1.5Δ), total 1.9Δ; optimal: 0.6Δ + 0.5Δ = 1.1Δ.
    assign = term.info(ctx)["ot_fingering/assignment"]
    assert assign[1] == a and assign[2] == b
    assert (np.delete(assign, [1, 2]) == -1).all()
    d = np.linalg.norm(delta)
    assert r == pytest.approx(tol([0.6 * d, 0.5 * d]).mean())


def test_ot_more_than_ten_keys_scores_best_ten(scene):
    term, ep, p = ot_term(scene), episode(scene), targets(scene)
    keys = list(range(20, 32))  # 12 keys
    tips = p[21:31].copy()  # 10 fingertips exactly on keys 21..30; keys 20 and 31 left over
    ctx = step_ctx(scene, ep, keys=keys, fingertips=tips)
    assert term(ctx) == pytest.approx(1.0)  # the two unassigned keys are ignored
    assign = term.info(ctx)["ot_fingering/assignment"]
    np.testing.assert_array_equal(assign, np.arange(21, 31))


def test_ot_info_recomputes_for_a_new_context(scene):
    term, ep, p = ot_term(scene), episode(scene), targets(scene)
    tips = tips_far()
    tips[0] = p[45]
    a = term.info(step_ctx(scene, ep, keys=[45], fingertips=tips))["ot_fingering/assignment"]
    assert a[0] == 45
    a2 = term.info(step_ctx(scene, ep, fingertips=tips))["ot_fingering/assignment"]
    assert (a2 == -1).all() and a[0] == 45  # a fresh array per step


def brute_force_ot(tips, p, keys):
    cost = np.linalg.norm(tips.reshape(10, 1, 3) - p[keys][None], axis=2)
    best = min(
        itertools.permutations(range(10), len(keys)),
        key=lambda fingers: cost[list(fingers), range(len(keys))].sum(),
    )
    return tol(cost[list(best), range(len(keys))]).mean()


def test_ot_in_env_matches_brute_force():
    env = gym.make(ENV_ID, reward_terms={"ot_fingering": 1.0}, trim_silence=True)
    env.reset(seed=0)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    checked = 0
    for _ in range(60):
        t = u.t
        obs, reward, *_, info = env.step(rng.uniform(low, high).astype(np.float32))
        keys = np.flatnonzero(u.trajectory.keys[t] > 0.5)
        assign = info["ot_fingering/assignment"]
        assert assign.dtype == np.int8 and assign.shape == (10,)
        assert sorted(assign[assign >= 0].tolist()) == keys.tolist()
        assert 0.0 <= info["reward/ot_fingering"] <= 1.0
        assert reward == pytest.approx(info["reward/ot_fingering"])
        if keys.size:
            p = fl.key_targets(u.model, u.data, u.index.key_geoms)
            expected = brute_force_ot(u.fingertip_positions, p, keys)
            assert info["reward/ot_fingering"] == pytest.approx(expected, rel=1e-9)
            checked += 1
        else:
            assert info["reward/ot_fingering"] == 1.0
    assert checked > 10
    env.close()


# -- fingering ----------------------------------------------------------------------------------


def test_fingering_hand_values(scene):
    fing_song = np.full((5, 88), -1, np.int8)
    fing_song[0, 40] = 3
    ep = episode(scene, fingering=fing_song)
    term = fl.Fingering()
    term.reset(ep)
    p = targets(scene)
    fing = np.full(88, -1, np.int8)
    fing[40] = 3  # right ring finger
    tips = tips_far()
    tips[3] = p[40]
    ctx = step_ctx(scene, ep, keys=[40], fingertips=tips, fingering=fing)
    assert term(ctx) == pytest.approx(1.0)
    assert term.info(ctx)["fingering/assignment"].tolist() == [-1, -1, -1, 40] + [-1] * 6

    tips[3] = p[40] + [0.11, 0.0, 0.0]
    assert term(step_ctx(scene, ep, keys=[40], fingertips=tips, fingering=fing)) == (
        pytest.approx(0.1)
    )
    tips[3], tips[2] = FAR, p[40]  # the wrong finger on the key earns (almost) nothing
    assert term(step_ctx(scene, ep, keys=[40], fingertips=tips, fingering=fing)) < 1e-6

    # Two keys, one with unknown fingering: only the known one counts.
    tips[3] = p[40]
    ctx = step_ctx(scene, ep, keys=[40, 44], fingertips=tips, fingering=fing)
    assert term(ctx) == pytest.approx(1.0)
    # No key due (or none with known fingering) -> 0.0, as RoboPianist.
    assert term(step_ctx(scene, ep, fingertips=tips, fingering=fing)) == 0.0
    assert term(step_ctx(scene, ep, keys=[44], fingertips=tips, fingering=fing)) == 0.0


def test_fingering_in_env_matches_robopianist():
    """Our ``fingering`` term against RoboPianist's own ``_compute_fingering_reward``, step by
    step, with the same actions sent to both envs (the sight-reader's, so fingers are near the
    keys and the values are far from 0 and 1)."""
    import warnings

    warnings.filterwarnings("ignore")
    suite = pytest.importorskip("robopianist.suite")
    from pianomime_env.control.sightreader import SightReader
    from pianomime_env.envs.piano import PianoMimeEnv

    rp = suite.load(
        f"RoboPianist-debug-{SONG}-v0", task_kwargs=dict(n_steps_lookahead=10, trim_silence=True)
    )
    env = PianoMimeEnv(SONG, reward_terms={"fingering": 1.0}, trim_silence="robopianist")
    reader = SightReader(env)
    rp.reset()
    obs, _ = env.reset(seed=0)
    reader.reset()
    values = []
    for _ in range(120):
        action = reader(obs)
        rp.step(action.astype(np.float64))
        obs, reward, *_, info = env.step(action)
        expected = rp.task._compute_fingering_reward(rp.physics)
        assert info["reward/fingering"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-9)
        values.append(expected)
    values = np.array(values)
    assert ((values > 0.05) & (values < 0.95)).sum() > 10, "the comparison saw no partial values"


def test_fingering_song_without_fingering_raises():
    song = load_song(SONG)
    bare = dataclasses.replace(
        song, name="NoFingers", fingering=np.full(song.fingering.shape, -1, np.int8)
    )
    env = gym.make("PianoMime-v0", song=bare, reward_terms={"fingering": 1.0})
    with pytest.raises(ValueError, match="ot_fingering"):
        env.reset(seed=0)
    env.close()


# -- style --------------------------------------------------------------------------------------


def test_style_hand_values(scene):
    rng = np.random.default_rng(0)
    demo_tips = rng.normal(0, 0.1, (5, 2, 5, 3)).astype(np.float32)
    ep = episode(scene, demo=SimpleNamespace(fingertips=demo_tips))
    term, term_z = fl.Style(), fl.Style(use_z=True)
    term.reset(ep)
    term_z.reset(ep)
    row = demo_tips[3].astype(float).reshape(10, 3)
    ctx = step_ctx(scene, ep, fingertips=row, t=3)
    assert term(ctx) == pytest.approx(1.0) and term_z(ctx) == pytest.approx(1.0)
    assert term.info(ctx)["style/xy_dist"] == pytest.approx(0.0)
    # The row is chosen by ctx.t: the same tips scored against row 2 are off.
    assert term(step_ctx(scene, ep, fingertips=row, t=2)) < 0.5

    off = row + [0.06, 0.0, 0.0]  # 1 cm bound + 5 cm margin -> 0.1 in xy, z exact
    ctx = step_ctx(scene, ep, fingertips=off, t=3)
    assert term(ctx) == pytest.approx(0.1)
    assert term_z(ctx) == pytest.approx(0.5 * (0.1 + 1.0))
    assert term.info(ctx)["style/xy_dist"] == pytest.approx(0.06)
    up = row + [0.0, 0.0, 0.01]  # z: 5 mm bound + 5 mm margin -> 0.1
    ctx = step_ctx(scene, ep, fingertips=up, t=3)
    assert term(ctx) == pytest.approx(1.0)
    assert term_z(ctx) == pytest.approx(0.5 * (1.0 + 0.1))
    half = row.copy()
    half[:5] += [0.0, 0.03, 0.0]  # right hand 3 cm off: mean of 5 x 1 and 5 x tol(0.03)
    expected = 0.5 * (1.0 + tol(0.03, 0.01, 0.05))
    assert term(step_ctx(scene, ep, fingertips=half, t=3)) == pytest.approx(expected)


def test_style_in_env_rollout():
    probe = gym.make(ENV_ID)
    probe.reset(seed=0)
    n, tips0 = probe.unwrapped.n_steps, probe.unwrapped.fingertip_positions
    probe.close()
    drift = np.linspace(0, 0.05, n)[:, None, None, None] * np.array([0.0, 1.0, 0.0])
    demo = SimpleNamespace(fingertips=(tips0[None] + drift).astype(np.float32))
    env = gym.make(ENV_ID, reward_terms={"style": 1.0}, demo=demo)
    env.reset(seed=0)
    u = env.unwrapped
    action = np.zeros(env.action_space.shape, np.float32)
    for _ in range(30):
        t = u.t
        _, reward, *_, info = env.step(action)
        value = info["reward/style"]
        assert 0.0 <= value <= 1.0 and reward == pytest.approx(value)
        d = np.linalg.norm((u.fingertip_positions - demo.fingertips[t])[..., :2], axis=-1)
        assert value == pytest.approx(tol(d, 0.01, 0.05).mean(), abs=1e-6)
        assert info["style/xy_dist"] == pytest.approx(d.mean(), abs=1e-6)
    env.close()


def test_style_errors():
    env = gym.make(ENV_ID, reward_terms={"style": 1.0})
    with pytest.raises(ValueError, match="demo="):
        env.reset(seed=0)
    env.close()
    n = gym.make(ENV_ID).unwrapped.n_steps
    short = SimpleNamespace(fingertips=np.zeros((n - 3, 2, 5, 3), np.float32))
    env = gym.make(ENV_ID, reward_terms={"style": 1.0}, demo=short)
    with pytest.raises(ValueError, match=f"{n - 3} steps but the song has {n}"):
        env.reset(seed=0)
    env.close()
    bad = SimpleNamespace(fingertips=np.zeros((n, 10, 3), np.float32))
    env = gym.make(ENV_ID, reward_terms={"style": 1.0}, demo=bad)
    with pytest.raises(ValueError, match=r"\(T, 2, 5, 3\)"):
        env.reset(seed=0)
    env.close()
