"""pianomime_env.generalist: features, normalization, the temporal U-Net, imitation data from a
collected dataset (layout check, residual labels by exact replay)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from pianomime_env.generalist import Normalizer, build_actor, features  # noqa: E402
from pianomime_env.policies import PolicyError  # noqa: E402

LAYOUT = [["goal", [11, 89]], ["piano_state", [88]], ["sustain_state", [1]]]


def test_normalizers_round_trip_and_constant_dims():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 5, (100, 4)).astype(np.float32)
    x[:, 2] = 7.0  # a constant dimension
    for kind in ("minmax", "zscore"):
        n = Normalizer.fit(x, kind)
        z = n.normalize(x)
        np.testing.assert_allclose(n.unnormalize(z), x, rtol=1e-5, atol=1e-5)
        assert np.all(z[:, 2] == 0.0)
        again = Normalizer.from_state(n.state())
        np.testing.assert_array_equal(again.normalize(x), z)
    z = Normalizer.fit(x, "minmax").normalize(x)
    assert z[:, [0, 1, 3]].min() == pytest.approx(-1) and z[:, [0, 1, 3]].max() == pytest.approx(1)
    with pytest.raises(ValueError, match="kind"):
        Normalizer.fit(x, "robust")


def test_features_raw_and_encoded():
    from pianomime_env.goal_encoder import GoalAutoencoder

    obs = {"goal": np.zeros((11, 89)), "piano_state": np.ones(88), "sustain_state": np.ones(1)}
    f = features(obs, LAYOUT)
    assert f.shape == (11 * 89 + 89,) and f[-89:].sum() == 89
    batch = {k: np.stack([v, v, v]) for k, v in obs.items()}
    assert features(batch, LAYOUT).shape == (3, 11 * 89 + 89)
    enc = features(batch, LAYOUT, GoalAutoencoder(16, 32))
    assert enc.shape == (3, 11 * 17 + 89)
    with pytest.raises(PolicyError, match="piano_state"):
        features({**obs, "piano_state": np.ones(87)}, LAYOUT)


def test_temporal_unet_shapes():
    import torch

    cfg = {"act_dim": 5, "cond_in": 12, "down_dims": [8, 16, 32], "kernel_size": 3}
    cfg |= {"n_groups": 4, "step_embed": 8, "obs_embed": 16}
    net = build_actor("unet", cfg)
    x = torch.randn(3, 16, 5)
    out = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 12))
    assert out.shape == (3, 16, 5)
    assert net(x, 7, torch.randn(3, 12)).shape == (3, 16, 5)  # one timestep for the batch
    with pytest.raises(PolicyError, match="actor kind"):
        build_actor("transformer", cfg)


def test_imitation_data_layout_check_and_residual_replay(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    from pianomime_env.collect import collect
    from pianomime_env.generalist import load_imitation_data

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    collect("test/one-v0", ["CMajorScaleOneHand"], episodes=1, noise=0.1, workers=1)
    plain = load_imitation_data("test/one-v0")
    assert plain.songs == ["CMajorScaleOneHand"] and plain.steps == 151
    assert plain.actions[0].shape == (151, 45) and np.abs(plain.actions[0]).max() <= 1.0
    assert [k for k, _ in plain.layout][0] == "goal"
    with pytest.raises(ValueError, match=r"observation 'goal' is float32\(11, 89\)"):
        load_imitation_data("test/one-v0", env_kwargs={"n_steps_lookahead": 5})
    wrapper = {"residual": True, "residual_scale": 0.02, "sustain": "score", "n_demo_frames": 4}
    res = load_imitation_data("test/one-v0", wrapper=wrapper | {"nominal": "sight-reader"})
    obs = res.observations[0]
    assert obs["nominal_action"].shape == (151, 45) and obs["demo_fingertips"].shape == (151, 4, 30)
    # The expert was the sight-reader, i.e. the nominal itself: replaying the noisy episode
    # reproduces its states exactly, so every residual label is zero.
    assert res.actions[0].shape == (151, 44) and np.abs(res.actions[0]).max() < 1e-4
    np.testing.assert_allclose(obs["hand_joints"], plain.observations[0]["hand_joints"])
