"""pianomime_env.learning.generalist: features, normalization, the temporal U-Net, imitation data from a
collected dataset (layout check, residual labels by exact replay)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from pianomime_env.learning.generalist import Normalizer, build_actor, features  # noqa: E402
from pianomime_env.learning.policies import PolicyError  # noqa: E402

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
    from pianomime_env.learning.goal_encoder import GoalAutoencoder

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
    from pianomime_env.collection.collect import collect
    from pianomime_env.learning.generalist import load_imitation_data

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


def test_two_level_labels_are_next_fingertips_and_executed_actions(tmp_path, monkeypatch):
    """Level 1's targets are the next step's observed fingertips (+ the label's sustain), level
    2's labels the executed (noisy) actions, and those actions really produce those
    fingertips (replayed from the episode's seed and options)."""
    pytest.importorskip("minari")
    from pianomime_env.collection.collect import collect
    from pianomime_env.learning.datasets import episode_metadata, load_dataset
    from pianomime_env.learning.generalist import (
        dataset_env,
        load_imitation_data,
        low_level_features,
        two_level_arrays,
    )

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    collect("test/two-v0", ["CMajorScaleOneHand"], episodes=1, noise=0.1, workers=1)
    data = load_imitation_data("test/two-v0", two_level=True)
    ds = load_dataset("test/two-v0")
    ep, meta = next(iter(ds.iterate_episodes())), episode_metadata(ds)[0]
    n = len(ep.actions)
    assert len(ep.observations["fingertips"]) == n + 1  # Minari: T+1 observations
    tips, executed = data.next_fingertips[0], data.executed[0]
    np.testing.assert_array_equal(tips, ep.observations["fingertips"][1 : n + 1])
    np.testing.assert_array_equal(
        data.observations[0]["fingertips"], ep.observations["fingertips"][:n]
    )
    env = dataset_env(ds, "CMajorScaleOneHand")
    raw = np.asarray(ep.actions, np.float64)
    absolute = env.action_from_normalized(raw) if env.normalized_actions else raw
    np.testing.assert_allclose(
        executed, np.clip(env.action_to_normalized(absolute), -1, 1), atol=1e-6
    )
    # The executed labels carry the action noise; the expert labels do not.
    assert 0.02 < np.abs(executed - data.actions[0]).mean() < 0.2
    # Hindsight: replaying the executed actions reaches exactly the next fingertips.
    obs, _ = env.reset(seed=int(meta["seed"]), options=dict(meta.get("options") or {}))
    for t in range(20):
        obs, *_ = env.step(env.to_env_action(env.action_from_normalized(executed[t])))
        np.testing.assert_allclose(obs["fingertips"], tips[t], atol=1e-5)
    env.close()

    targets, low_x, low_y, keys = two_level_arrays(data)
    assert keys == ["hand_joints", "fingertips"]  # no goal, no piano_state
    assert targets.shape == (n, 31) and low_y.shape == (n, 44) and low_x.shape == (n, 52 + 30 + 30)
    np.testing.assert_array_equal(targets[:, :30], tips)
    np.testing.assert_array_equal(targets[:, 30], data.actions[0][:, -1])  # sustain: the label's
    np.testing.assert_array_equal(low_y, executed[:, :-1])
    offset = low_x[:, -30:]
    np.testing.assert_allclose(offset, tips - data.observations[0]["fingertips"], atol=1e-7)
    assert 1e-4 < np.abs(offset).max() < 0.2  # metres per 50 ms step
    one = low_level_features({k: v[3] for k, v in data.observations[0].items()}, keys, tips[3])
    np.testing.assert_allclose(one, low_x[3], atol=1e-7)
    with pytest.raises(PolicyError, match="targets"):
        low_level_features(data.observations[0], keys, tips[:, :29])
    with pytest.raises(ValueError, match="two_level"):
        two_level_arrays(load_imitation_data("test/two-v0"))
    with pytest.raises(ValueError, match="residual"):
        load_imitation_data("test/two-v0", wrapper={"residual": True}, two_level=True)


def test_episode_subset_is_bounded_nested_and_fixed():
    from pianomime_env.learning.generalist import episode_subset

    lengths = [400, 400, 120, 400, 37, 400, 250, 400]
    sizes = [400, 800, 1500, 10_000]
    subsets = [episode_subset(lengths, n) for n in sizes]
    for n, sub in zip(sizes, subsets):
        assert sum(lengths[i] for i in sub) <= n and sub == sorted(sub)
    assert subsets[-1] == list(range(len(lengths)))  # a budget above the total keeps all
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) <= set(large)
    assert episode_subset(lengths, 800) == subsets[1]  # the same subset every time
    assert episode_subset(lengths, 36) == []
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        episode_subset(lengths, 0)


def test_imitation_data_subset_reads_only_the_picked_episodes(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    from pianomime_env.collection.collect import collect
    from pianomime_env.learning.datasets import episode_metadata
    from pianomime_env.learning.generalist import episode_subset, load_imitation_data

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    # 151 steps in 60-step segments: 60 / 60 / 31 steps, two episodes each.
    collect("test/sub-v0", ["CMajorScaleOneHand"], episodes=2, segment_steps=60, workers=1)
    meta = episode_metadata("test/sub-v0")
    lengths = [int(m["total_steps"]) for m in meta]
    assert sorted(lengths) == [31, 31, 60, 60, 60, 60]
    full = load_imitation_data("test/sub-v0")
    sub = load_imitation_data("test/sub-v0", max_steps=130)
    picked = episode_subset(lengths, 130)
    assert sub.steps == sum(lengths[i] for i in picked) <= 130 and len(sub.actions) == len(picked)
    for j, i in enumerate(picked):  # the picked episodes' own data, in dataset order
        np.testing.assert_array_equal(sub.actions[j], full.actions[i])
        np.testing.assert_array_equal(sub.observations[j]["goal"], full.observations[i]["goal"])
    with pytest.raises(ValueError, match=r"shorter than its shortest episode \(31 steps\)"):
        load_imitation_data("test/sub-v0", max_steps=30)
