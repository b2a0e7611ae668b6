"""The native vector env (``pianomime_env.envs.vector``): every env of it equals a single env
stepped alone, in both of Gymnasium's autoreset modes, with and without fast physics and the
residual wrapper; plus the checks Gymnasium applies to vector envs.

The reference is Gymnasium's own ``SyncVectorEnv`` over ``gym.make`` envs (N single envs stepped
one after the other, Gymnasium's definition of the autoreset, ``final_obs`` and ``info``
masks), and, in ``test_each_env_equals_a_single_env_stepped_alone``, single envs stepped by hand.
Every comparison is exact (``np.array_equal``), not approximate.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import pianomime_env  # noqa: F401  (the ids)
from pianomime_env.control.residual import ResidualIK
from pianomime_env.demos import from_midi
from pianomime_env.envs.making import make_vector_env
from pianomime_env.envs.vector import MultiSongVectorEnv, PianoMimeVectorEnv

N = 3
MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
CHORDS = "PianoMime-CMajorChordProgressionTwoHands-v0"  # 81 steps trimmed


def _songs(midi) -> dict[str, tuple[str, dict[str, Any]]]:
    """Three short songs, each with settings that exercise another path of the env."""
    return {
        # 40 steps, sustain pedal; wrong presses end episodes at different steps per env.
        "tiny": ("PianoMime-v0", {"midi": str(midi), "wrong_press_termination": True}),
        # 81 steps, RoboPianist's truncation, hands shifted by the reset seed.
        "chords": (
            CHORDS,
            {"trim_silence": True, "song_end": "truncate", "randomize_hand_positions": True},
        ),
        # 76 steps, normalized and reduced actions, wrong-press termination, flat observations
        # with joint velocities, other reward weights and order.
        "scale": (
            "PianoMime-CMajorScaleOneHand-v0",
            {
                "trim_silence": True,
                "stretch": 0.5,
                "normalized_actions": True,
                "reduced_action_space": True,
                "wrong_press_termination": True,
                "flatten": True,
                "joint_velocities": True,
                "reward_terms": {"energy": 0.5, "key_press": 2.0, "forearm_collision": 1.0},
            },
        ),
    }


def _actions(env, steps: int, residual: bool = False, seed: int = 0) -> np.ndarray:
    """(steps, N, A) float32 actions: env 0 random over the whole range (ends early when
    wrong presses terminate), env 1 near rest (plays to the song's end), env 2 rest then
    random."""
    rng = np.random.default_rng(seed)
    if residual:
        a = rng.uniform(-0.5, 0.5, (steps, N, env.single_action_space.shape[0]))
        return a.astype(np.float32)
    u = env.unwrapped.scenes[0]
    low, high = u.action_low, u.action_high
    frac = rng.uniform(0.0, 1.0, (steps, N, low.size))
    rest = np.clip(0.0, low, high)
    absolute = low + frac * (high - low)
    absolute[:, 1] = rest + 0.02 * (absolute[:, 1] - rest)
    absolute[: steps // 3, 2] = rest
    return np.stack([[u.to_env_action(a) for a in row] for row in absolute])


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Exact equality of (nested dicts / object arrays of) arrays and scalars."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {a.keys()} != {b.keys()}"
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b)), f"{where}: {a} != {b}"
        assert np.asarray(a).dtype == np.asarray(b).dtype, f"{where}: dtypes differ"


def _single_fn(env_id: str, kwargs: dict[str, Any], residual: bool):
    def make() -> gym.Env:
        env = gym.make(env_id, **kwargs)
        if residual:
            u = env.unwrapped
            demo = from_midi(u.trajectory, control_timestep=u.control_timestep, env=u)
            env = ResidualIK(env, demo)
        return env

    return make


def _compare_with_sync(env_id, kwargs, mode, *, residual=False, extra_steps=8, seed=3):
    native = gym.make_vec(
        env_id,
        num_envs=N,
        vectorization_mode="vector_entry_point",
        autoreset_mode=mode,
        residual=residual,
        **kwargs,
    )
    sync = gym.vector.SyncVectorEnv([_single_fn(env_id, kwargs, residual)] * N, autoreset_mode=mode)
    try:
        assert isinstance(native.unwrapped, PianoMimeVectorEnv)
        assert native.observation_space == sync.observation_space
        assert native.action_space == sync.action_space
        assert native.single_observation_space == sync.single_observation_space
        assert native.single_action_space == sync.single_action_space
        assert native.metadata["autoreset_mode"] == mode
        steps = native.unwrapped.scenes[0].n_steps + extra_steps  # crosses the song's end
        actions = _actions(native, steps, residual)
        _assert_same(native.reset(seed=seed), sync.reset(seed=seed), "reset")
        ends = np.zeros(N, int)
        for t, a in enumerate(actions):
            out_n, out_s = native.step(a), sync.step(a)
            for name, x, y in zip(
                ("obs", "reward", "terminated", "truncated", "info"), out_n, out_s
            ):
                _assert_same(x, y, f"step {t} {name}")
            ends += out_n[2] | out_n[3]
            assert native.observation_space.contains(out_n[0])
        # Every env ended at least once (an autoreset happened), and not all at the same steps.
        assert (ends >= 1).all(), ends
        return ends
    finally:
        native.close()
        sync.close()


# -- equivalence ---------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [False, True], ids=["physics", "fast_physics"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_equals_sync_vector_env_tiny(tiny_midi, mode, fast):
    env_id, kwargs = _songs(tiny_midi)["tiny"]
    ends = _compare_with_sync(env_id, {**kwargs, "fast_physics": fast}, mode)
    assert len(set(ends.tolist())) > 1  # envs ended at different steps


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True], ids=["physics", "fast_physics"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("song", ["chords", "scale"])
def test_equals_sync_vector_env(tiny_midi, song, mode, fast):
    env_id, kwargs = _songs(tiny_midi)[song]
    _compare_with_sync(env_id, {**kwargs, "fast_physics": fast}, mode)


class _WristsLevel:
    """A user's reward term (with ``info``), stepped by each env's own ``finish_step``."""

    name = "wrists_level"

    def __call__(self, ctx) -> float:
        return -abs(float(ctx.hand_joints[0, 0]))

    def info(self, ctx) -> dict[str, float]:
        return {"wrist": float(ctx.hand_joints[0, 0])}


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_custom_reward_terms_equal_sync_vector_env(tiny_midi, mode):
    env_id, kwargs = _songs(tiny_midi)["tiny"]
    # A custom reward term goes through each env's own finish_step like the default ones.
    custom = {**kwargs, "reward_terms": {"key_press": 1.0, "wrists": (_WristsLevel(), 0.1)}}
    _compare_with_sync(env_id, custom, mode)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_residual_equals_residual_ik_tiny(tiny_midi, mode):
    env_id, kwargs = _songs(tiny_midi)["tiny"]
    _compare_with_sync(env_id, {**kwargs, "wrong_press_termination": False}, mode, residual=True)


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True], ids=["physics", "fast_physics"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_residual_equals_residual_ik_chords(tiny_midi, mode, fast):
    env_id, kwargs = _songs(tiny_midi)["chords"]
    _compare_with_sync(env_id, {**kwargs, "fast_physics": fast}, mode, residual=True)


def test_each_env_equals_a_single_env_stepped_alone(tiny_midi):
    """Per env: observations, rewards, flags, infos and episode metrics of the vector env
    (next-step autoreset) equal a single env stepped by itself with seed s + i."""
    env_id, kwargs = _songs(tiny_midi)["tiny"]
    kwargs = {**kwargs, "randomize_hand_positions": True}
    native = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(N)]
    actions = _actions(native, native.unwrapped.scenes[0].n_steps + 5)
    obs, _ = native.reset(seed=11)
    expected = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    for i in range(N):
        _assert_same({k: v[i] for k, v in obs.items()}, expected[i], f"reset env {i}")
    done = np.zeros(N, bool)
    metrics_seen = 0
    for t, a in enumerate(actions):
        obs, rew, term, trunc, infos = native.step(a)
        for i, env in enumerate(singles):
            if done[i]:  # next-step autoreset: the action is ignored, the env is reset
                (o, info), r, te, tr = env.reset(), 0.0, False, False
            else:
                o, r, te, tr, info = env.step(a[i])
            where = f"step {t} env {i}"
            _assert_same({k: v[i] for k, v in obs.items()}, o, where)
            assert rew[i] == r and term[i] == te and trunc[i] == tr, where
            for key, value in info.items():
                assert infos[f"_{key}"][i], f"{where}: mask of {key}"
                if isinstance(value, dict):
                    _assert_same(
                        {k: v[i] for k, v in infos[key].items() if k[0] != "_"}, value, where
                    )
                    metrics_seen += 1
                else:
                    _assert_same(infos[key][i], value, f"{where} {key}")
            done[i] = te or tr
    assert metrics_seen >= N
    native.close()


def test_make_vector_env_native_equals_sync_residual_flattened(tiny_midi):
    """The training helper: native and sync give the same flattened transitions (same-step
    autoreset, ``final_obs`` flattened too) under the baselines' residual wrapper config."""
    wrapper = {
        "residual": True,
        "residual_scale": 0.02,
        "finger_residual_scale": 0.01,
        "sustain": "policy",
        "n_demo_frames": 3,
        "nominal": "sight-reader",
    }
    kwargs = {"midi": str(tiny_midi)}
    envs = {
        v: make_vector_env("PianoMime-v0", N, vectorization=v, wrapper=wrapper, **kwargs)
        for v in ("native", "sync")
    }
    try:
        native, sync = envs["native"], envs["sync"]
        assert isinstance(native.unwrapped, PianoMimeVectorEnv)
        assert native.observation_space == sync.observation_space
        assert native.action_space == sync.action_space
        assert native.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert len(native.observation_space.shape) == 2
        _assert_same(native.reset(seed=0), sync.reset(seed=0), "reset")
        rng = np.random.default_rng(1)
        finals = 0
        for t in range(45):
            a = rng.uniform(-1, 1, native.action_space.shape).astype(np.float32)
            out_n, out_s = native.step(a), sync.step(a)
            for x, y in zip(out_n, out_s):
                _assert_same(x, y, f"step {t}")
            finals += int("final_obs" in out_n[4])
        assert finals >= 1
    finally:
        for env in envs.values():
            env.close()


def test_multisong_vector_env(tiny_midi, two_track_midi):
    kwargs = {"songs": [str(tiny_midi), str(two_track_midi)], "segment_steps": 15}
    native = gym.make_vec(
        "PianoMime-MultiSong-v0", num_envs=N, vectorization_mode="vector_entry_point", **kwargs
    )
    sync = gym.make_vec("PianoMime-MultiSong-v0", num_envs=N, vectorization_mode="sync", **kwargs)
    try:
        assert isinstance(native.unwrapped, MultiSongVectorEnv)
        assert native.observation_space == sync.observation_space
        _assert_same(native.reset(seed=2), sync.reset(seed=2), "reset")
        rng = np.random.default_rng(0)
        space = native.single_action_space
        for t in range(35):
            a = rng.uniform(space.low, space.high, (N, space.shape[0])).astype(np.float32)
            for x, y in zip(native.step(a), sync.step(a)):
                _assert_same(x, y, f"step {t}")
    finally:
        native.close()
        sync.close()


# -- Gymnasium's vector env checks ---------------------------------------------------------


def test_every_id_has_the_native_vector_env(tiny_midi):
    from pianomime_env.envs.registration import register_song

    ids = [
        (CHORDS, {}),
        ("PianoMime-v0", {"midi": str(tiny_midi)}),
        (register_song("VectorTestTiny", str(tiny_midi)), {}),
    ]
    for env_id, kwargs in ids:
        assert gym.spec(env_id).vector_entry_point is not None
        env = gym.make_vec(env_id, num_envs=2, **kwargs)  # the default mode picks it
        assert isinstance(env, PianoMimeVectorEnv), env_id
        assert env.num_envs == 2 and env.num_threads >= 1
        env.close()
    assert gym.spec("PianoMime-MultiSong-v0").vector_entry_point is not None


def test_spaces_seeding_and_close(tiny_midi):
    kwargs = {"midi": str(tiny_midi), "randomize_hand_positions": True}

    def make(num_threads=None):
        return gym.make_vec(
            "PianoMime-v0",
            num_envs=N,
            vectorization_mode="vector_entry_point",
            num_threads=num_threads,
            **kwargs,
        )

    a, b = make(), make(num_threads=1)
    sync = gym.make_vec("PianoMime-v0", num_envs=N, vectorization_mode="sync", **kwargs)
    assert a.observation_space == sync.observation_space
    assert a.action_space == sync.action_space
    assert a.num_threads >= 1 and b.num_threads == 1
    obs_a, info_a = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert info_a == {}
    assert a.observation_space.contains(obs_a)
    _assert_same(obs_a, obs_b, "same seed, other thread count")
    assert a.unwrapped.np_random_seed == (7, 8, 9)  # env i gets seed + i
    # Different seeds shift the hands differently (randomize_hand_positions).
    assert not np.array_equal(obs_a["fingertips"][0], obs_a["fingertips"][1])
    again, _ = a.reset(seed=7)
    _assert_same(obs_a, again, "reset(seed) twice")
    a.action_space.seed(0)
    for _ in range(5):
        act = a.action_space.sample()
        assert a.action_space.contains(act)
        out_a, out_b = a.step(act), b.step(act)
        assert a.observation_space.contains(out_a[0])
        for x, y in zip(out_a, out_b):
            _assert_same(x, y, "threads")
        assert out_a[1].dtype == np.float64 and out_a[2].dtype == np.bool_
        assert out_a[2].shape == out_a[3].shape == (N,)
    # Observations are fresh arrays: a later step does not change an earlier one.
    kept = a.step(act)[0]
    snapshot = {k: v.copy() for k, v in kept.items()}
    a.step(act)
    _assert_same(kept, snapshot, "returned arrays are not reused")
    # A partial reset (Gymnasium's reset_mask).
    mask = np.array([False, True, False])
    obs, _ = a.reset(seed=[None, 8, None], options={"reset_mask": mask})
    _assert_same(obs["fingertips"][1], obs_a["fingertips"][1], "masked reset")
    with pytest.raises(ValueError):
        a.step(np.zeros((N + 1, a.single_action_space.shape[0]), np.float32))
    bad = np.zeros(a.action_space.shape, np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        a.step(bad)
    for env in (a, b, sync):
        env.close()
        env.close()  # twice is fine
    assert a.closed


def test_render(tiny_midi):
    env = gym.make_vec(
        "PianoMime-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        midi=str(tiny_midi),
        render_mode="rgb_array",
        width=64,
        height=48,
    )
    env.reset(seed=0)
    try:
        frames = env.render()
    except Exception as exc:  # no GL on this machine
        env.close()
        pytest.skip(f"offscreen rendering unavailable: {exc}")
    assert len(frames) == 2 and all(f.shape == (48, 64, 3) for f in frames)
    env.close()
    env.close()


def test_bad_arguments(tiny_midi):
    with pytest.raises(ValueError, match="num_threads"):
        PianoMimeVectorEnv(2, num_threads=0, midi=str(tiny_midi))
    with pytest.raises(ValueError, match="DISABLED"):
        PianoMimeVectorEnv(2, autoreset_mode=AutoresetMode.DISABLED, midi=str(tiny_midi))
    with pytest.raises(ValueError, match="vectorization"):
        make_vector_env("PianoMime-v0", 2, vectorization="ray", midi=str(tiny_midi))
