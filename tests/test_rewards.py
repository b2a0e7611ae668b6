"""Reward terms against hand-computed values, and the term plumbing."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from pianomime_env import rewards
from pianomime_env.envs.piano import PianoMimeEnv


def gaussian_tol(distance_outside: float, margin: float) -> float:
    """dm_control's gaussian tolerance: exp(-0.5 (x·s)^2), s = sqrt(-2 ln 0.1), x = d / margin."""
    scale = math.sqrt(-2 * math.log(0.1))
    return math.exp(-0.5 * (distance_outside / margin * scale) ** 2)


def make_ctx(env: PianoMimeEnv, **overrides) -> rewards.StepContext:
    fields = dict(
        t=0,
        goal_keys=np.zeros(88, np.float32),
        goal_sustain=0.0,
        fingering=np.full(88, -1, np.int8),
        key_state=np.zeros(88),
        key_activation=np.zeros(88, bool),
        sustain_state=0.0,
        sustain_activation=False,
        hand_joints=np.zeros((2, 26)),
        fingertips=np.zeros((2, 5, 3)),
        actuator_force=np.zeros(44),
        actuator_velocity=np.zeros(44),
        data=env.data,
        episode=env.episode_context,
    )
    fields.update(overrides)
    return rewards.StepContext(**fields)


@pytest.fixture(scope="module")
def env():
    env = PianoMimeEnv("CMajorScaleOneHand")
    env.reset(seed=0)
    return env


def test_key_press_hand_computed(env):
    term = rewards.KeyPress()
    goal = np.zeros(88, np.float32)
    goal[[40, 44]] = 1
    state = np.zeros(88)
    state[40] = 1.0  # fully down
    state[44] = 0.5  # half way: error 0.5, 0.45 outside the bound
    expected = 0.5 * (1.0 + gaussian_tol(0.45, 0.5)) / 2 + 0.5
    assert term(make_ctx(env, goal_keys=goal, key_state=state)) == pytest.approx(expected)
    # A wrong key down loses the second half.
    active = np.zeros(88, bool)
    active[10] = True
    assert term(make_ctx(env, goal_keys=goal, key_state=state, key_activation=active)) == (
        pytest.approx(expected - 0.5)
    )
    # Nothing due and nothing pressed: only the second half.
    assert term(make_ctx(env)) == 0.5


def test_sustain_hand_computed(env):
    term = rewards.Sustain()
    assert term(make_ctx(env, goal_sustain=1.0, sustain_activation=True)) == 1.0
    assert term(make_ctx(env, goal_sustain=0.0, sustain_activation=False)) == 1.0
    assert term(make_ctx(env, goal_sustain=1.0, sustain_activation=False)) == pytest.approx(
        gaussian_tol(0.95, 0.5)
    )


def test_energy_hand_computed(env):
    force = np.zeros(44)
    vel = np.zeros(44)
    force[[0, 5]] = [2.0, -3.0]
    vel[[0, 5]] = [-0.5, 0.25]
    ctx = make_ctx(env, actuator_force=force, actuator_velocity=vel)
    assert rewards.Energy()(ctx) == pytest.approx(-5e-3 * (2 * 0.5 + 3 * 0.25))
    assert rewards.Energy(coef=1.0)(ctx) == pytest.approx(-(1.0 + 0.75))


def test_forearm_collision_from_real_contacts(env):
    term = rewards.ForearmCollision()
    env.reset(seed=0)
    term.reset(env.episode_context)
    assert term(make_ctx(env)) == 0.5
    # Slide both forearms to the middle of the keyboard: they overlap.
    names = env.joint_names
    env.data.qpos[env.index.hand_qpos[0][names[0].index("forearm_tx")]] = -0.15
    env.data.qpos[env.index.hand_qpos[1][names[1].index("forearm_tx")]] = 0.15
    mujoco.mj_forward(env.model, env.data)
    assert term(make_ctx(env)) == 0.0


def test_weighted_sum_and_info_and_custom_term():
    class Constant:
        name = "constant"
        resets = 0

        def reset(self, episode):
            Constant.resets += 1

        def __call__(self, ctx):
            return 2.0

    env = PianoMimeEnv(
        "CMajorScaleOneHand",
        reward_terms={
            "key_press": 0.5,
            "energy": 2.0,
            "mine": (Constant(), 0.25),
            "raw": Constant(),
        },
    )
    env.reset(seed=0)
    assert Constant.resets == 2
    _, reward, _, _, info = env.step(env.action_space.sample())
    expected = 0.5 * info["reward/key_press"] + 2.0 * info["reward/energy"] + 0.25 * 2 + 2
    assert reward == pytest.approx(expected)
    assert info["reward/mine"] == 2.0 and info["reward/raw"] == 2.0
    assert "reward/sustain" not in info


def test_build_terms_errors():
    with pytest.raises(TypeError, match="mapping"):
        rewards.build_terms(["key_press"])
    with pytest.raises(ValueError, match="expected \\(term, weight\\)"):
        rewards.build_terms({"x": (1, 2, 3)})
    with pytest.raises(TypeError, match="callable"):
        rewards.build_terms({"x": "not callable"})
    with pytest.raises(ValueError, match="unknown reward term 'nope'"):
        rewards.build_terms({"nope": 1.0})


def test_tolerance_equals_dm_control():
    from dm_control.utils.rewards import tolerance as dm_tolerance

    x = np.random.default_rng(0).uniform(-2, 2, size=500)
    for bounds, margin in [((0, 0.05), 0.5), ((0, 0.01), 0.1), ((-0.3, 0.2), 1.0), ((0, 0), 0.05)]:
        np.testing.assert_allclose(
            rewards.tolerance(x, bounds, margin),
            dm_tolerance(x, bounds=bounds, margin=margin, sigmoid="gaussian"),
            rtol=1e-12,
            atol=1e-15,
        )
    assert rewards.tolerance(0.02, (0, 0.05), 0.5) == 1.0


def test_rewards_does_not_import_fingering():
    """The import graph is one-way: fingering imports rewards, never the reverse (the fingering
    terms are named lazily in REWARD_TERMS and imported on first use)."""
    import subprocess
    import sys

    code = (
        "import sys, pianomime_env.rewards as r; assert 'pianomime_env.rewards.fingering' not in "
        "sys.modules; r.reward_term_factory('style'); assert 'pianomime_env.rewards.fingering' in "
        "sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
