"""pianomime_env.learning.policies: checkpoint format, load_policy on plain and residual checkpoints."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from pianomime_env.envs.piano import PianoMimeEnv  # noqa: E402
from pianomime_env.learning import policies  # noqa: E402
from pianomime_env.learning.policies import (  # noqa: E402
    PolicyError,
    RunningMeanStd,
    build_mlp,
    load_policy,
    observation_layout,
    save_checkpoint,
    wrap_env,
)

SONG = "CMajorScaleOneHand"


def make_checkpoint(path, env_kwargs, wrapper, *, seed=0, out_scale=1.0, squash="clip"):
    """A checkpoint with random weights for the env built from ``env_kwargs``/``wrapper``."""
    env = wrap_env(PianoMimeEnv(SONG, **env_kwargs), wrapper)
    layout = observation_layout(env.observation_space)
    obs_dim = int(sum(np.prod(s) for _, s in layout))
    act_dim = int(np.prod(env.action_space.shape))
    torch.manual_seed(seed)
    out_dim = act_dim if squash == "clip" else 2 * act_dim
    net = build_mlp(obs_dim, [32], out_dim, "tanh")
    with torch.no_grad():
        net[-1].weight.mul_(out_scale)
    rms = RunningMeanStd(obs_dim)
    rng = np.random.default_rng(seed)
    rms.update(rng.normal(size=(16, obs_dim)))
    ckpt = {
        "algorithm": "ppo",
        "actor": {
            "state_dict": net.state_dict(),
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "hidden": [32],
            "activation": "tanh",
            "layer_norm": False,
            "out_dim": out_dim,
            "squash": squash,
        },
        "obs_norm": rms.state_dict(),
        "env": {"id": f"PianoMime-{SONG}-v0", "kwargs": env_kwargs},
        "observation_layout": layout,
        "wrapper": wrapper,
        "global_step": 0,
    }
    save_checkpoint(path, ckpt)
    return env


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd(4)
    for b in batches:
        rms.update(b)
    every = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, every.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, every.var(0), rtol=1e-3)
    back = RunningMeanStd.from_state_dict(rms.state_dict())
    np.testing.assert_array_equal(back.normalize(every), rms.normalize(every))


def test_plain_policy_same_action_in_either_action_mode(tmp_path):
    path = tmp_path / "model.pt"
    make_checkpoint(path, {"trim_silence": True, "normalized_actions": True}, {"residual": False})
    norm = PianoMimeEnv(SONG, trim_silence=True, normalized_actions=True)
    absolute = PianoMimeEnv(SONG, trim_silence=True)
    p_norm, p_abs = load_policy(path, norm), load_policy(path, absolute)
    obs, _ = norm.reset(seed=0)
    a_norm = p_norm(obs)
    assert a_norm.shape == (45,) and np.abs(a_norm).max() <= 1.0
    np.testing.assert_allclose(p_abs(obs), absolute.action_from_normalized(a_norm), atol=1e-6)
    # The run directory works as the path too.
    np.testing.assert_array_equal(load_policy(tmp_path, norm)(obs), a_norm)


@pytest.mark.parametrize("finger_scale", [None, 0.15])
def test_residual_policy_on_plain_env_plays_as_through_the_wrapper(tmp_path, finger_scale):
    """load_policy drives ResidualIK's nominal itself on the caller's plain env: the episode must
    be the one the training wrapper (ResidualIK + FlattenObservation) produces, also with a
    separate finger residual bound (which the checkpoint's wrapper config carries)."""
    wrapper = {
        "residual": True,
        "residual_scale": 0.05,
        "sustain": "score",
        "n_demo_frames": 4,
        "nominal": "sight-reader",
    }
    if finger_scale is not None:
        wrapper["finger_residual_scale"] = finger_scale
    path = tmp_path / "model.pt"
    make_checkpoint(path, {"trim_silence": True}, wrapper, out_scale=30.0)
    # Through the wrapper, as in training (network output -> ResidualIK.step).
    train_env = gym.wrappers.FlattenObservation(
        wrap_env(PianoMimeEnv(SONG, trim_silence=True), wrapper)
    )
    plain = PianoMimeEnv(SONG, trim_silence=True)
    policy = load_policy(path, plain)
    obs, _ = train_env.reset(seed=0)
    residuals = []
    while True:
        r = policy.network_action(obs)
        residuals.append(r)
        obs, _, terminated, truncated, info = train_env.step(r.astype(np.float32))
        if terminated or truncated:
            wrapped_metrics = info["metrics"]
            break
    assert np.abs(np.array(residuals)).max() > 0.5  # the residual really acts
    # On the plain env, as `pianomime play` does.
    obs, _ = plain.reset(seed=0)
    policy.reset()
    while True:
        obs, _, terminated, truncated, info = plain.step(policy(obs))
        if terminated or truncated:
            break
    assert info["metrics"] == wrapped_metrics


def test_rejects_other_observation_layout(tmp_path):
    path = tmp_path / "model.pt"
    make_checkpoint(path, {"trim_silence": True, "normalized_actions": True}, {"residual": False})
    with pytest.raises(
        PolicyError, match=r"'goal': checkpoint shape \(11, 89\), env shape \(6, 89\)"
    ):
        load_policy(path, PianoMimeEnv(SONG, n_steps_lookahead=5))
    with pytest.raises(PolicyError, match="hand_velocities") as err:
        load_policy(path, PianoMimeEnv(SONG, joint_velocities=True))
    assert "not in the checkpoint" in str(err.value)
    with pytest.raises(PolicyError, match="action size: checkpoint 45, env 39"):
        load_policy(path, PianoMimeEnv(SONG, reduced_action_space=True))
    with pytest.raises(PolicyError, match="control_timestep"):
        load_policy(path, PianoMimeEnv(SONG, control_timestep=0.1))
    # gym.make'd env: its spec's kwargs are compared too.
    with pytest.raises(PolicyError, match="n_steps_lookahead: checkpoint 10, env 3"):
        ckpt = policies.load_checkpoint(path)
        ckpt["env"]["kwargs"]["n_steps_lookahead"] = 10
        policies.save_checkpoint(path, ckpt)
        load_policy(path, gym.make(f"PianoMime-{SONG}-v0", n_steps_lookahead=3))


def test_rejects_files_that_are_not_checkpoints(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(PolicyError, match="not a pianomime policy checkpoint") as err:
        load_policy(bad, PianoMimeEnv(SONG))
    assert "weights_only" not in str(err.value)  # no advice to unpickle an unknown file
    torch.save({"weights": 1}, bad)
    with pytest.raises(PolicyError, match="not a pianomime policy checkpoint"):
        load_policy(bad, PianoMimeEnv(SONG))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_policy(tmp_path / "missing.pt", PianoMimeEnv(SONG))
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "x.pt", {"algorithm": "ppo"})
    assert not (tmp_path / "x.pt").exists()


def test_without_torch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match=r'pip install -e "\.\[train\]"'):
        policies.require_torch()
