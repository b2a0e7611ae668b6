"""PianoMime's goal autoencoder: the SDF target by hand, shapes, training, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env.learning.goal_encoder import (
    N_KEYS,
    encode_goal,
    key_positions,
    key_sdf,
    random_key_sets,
)

C4 = 60 - 21  # key index of middle C


def test_key_positions_follow_the_keyboard():
    pos = key_positions()
    assert pos.shape == (N_KEYS,)
    # A0 = 0, A#0 halfway to B0 = 1, C1 = 2; C4 is white key 23, C#4 halfway to D4; C8 last.
    assert pos[:4].tolist() == [0.0, 0.5, 1.0, 2.0]
    assert (pos[C4], pos[C4 + 1], pos[C4 + 2]) == (23.0, 23.5, 24.0)
    assert pos[-1] == 51.0 and np.all(np.diff(pos) > 0)


def test_sdf_of_middle_c_by_hand():
    keys = np.zeros(N_KEYS)
    keys[C4] = 1.0
    sdf = key_sdf(keys, max_distance=8.0) * 8.0
    # B3 is one white key below, C#4 half a key above, D4 one above, E4 two, C5 seven (an
    # octave = 7 white keys); C4 itself is pressed: minus the distance to the nearest key that is
    # not pressed (C#4, 0.5). Beyond 8 white keys the distance is clipped.
    expected = {C4 - 1: 1.0, C4: -0.5, C4 + 1: 0.5, C4 + 2: 1.0, C4 + 4: 2.0, C4 + 12: 7.0}
    for k, v in expected.items():
        assert sdf[k] == pytest.approx(v), k
    assert sdf[0] == 8.0 and sdf[-1] == 8.0
    # A two-key chord C4 + E4: D4 lies between them, one white key from either.
    keys[C4 + 4] = 1.0
    sdf2 = key_sdf(keys, max_distance=8.0) * 8.0
    assert sdf2[C4 + 2] == pytest.approx(1.0) and sdf2[C4 + 3] == pytest.approx(0.5)
    assert sdf2[C4 + 4] == pytest.approx(-0.5)


def test_sdf_edge_cases_and_batches():
    assert np.all(key_sdf(np.zeros(N_KEYS)) == 1.0)  # nothing pressed: everything far
    assert np.all(key_sdf(np.ones(N_KEYS)) == -1.0)
    batch = random_key_sets(64, np.random.default_rng(0))
    sdf = key_sdf(batch)
    assert sdf.shape == (64, N_KEYS) and sdf.dtype == np.float32
    # Brute force over all key pairs agrees.
    pos = key_positions()
    d = np.abs(pos[:, None] - pos[None])
    pressed = batch > 0.5
    to_p = np.where(pressed[:, None, :], d, np.inf).min(-1)
    to_f = np.where(~pressed[:, None, :], d, np.inf).min(-1)
    ref = np.where(pressed, -np.minimum(to_f, 8.0), np.minimum(to_p, 8.0)) / 8.0
    np.testing.assert_allclose(sdf, ref)
    assert np.all((sdf < 0) == pressed)
    with pytest.raises(ValueError, match="88 entries"):
        key_sdf(np.zeros(89))


def test_autoencoder_learns_the_sdf_and_round_trips(tmp_path):
    pytest.importorskip("torch")
    import torch

    from pianomime_env.learning.goal_encoder import (
        GoalAutoencoder,
        load_goal_autoencoder,
        save_goal_autoencoder,
        train_goal_autoencoder,
    )

    torch.manual_seed(0)
    untrained = GoalAutoencoder(16, 64)
    test = random_key_sets(512, np.random.default_rng(5))
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(
            untrained(torch.as_tensor(test)), torch.as_tensor(key_sdf(test))
        ).item()
    goals = random_key_sets(256, np.random.default_rng(1))
    model, info = train_goal_autoencoder(goals, hidden=64, steps=150, batch_size=64, lr=3e-3)
    assert info["heldout_mse"] < 0.5 * before
    goal = np.zeros((11, 89), np.float32)
    goal[0, C4] = goal[3, 88] = 1.0
    z = encode_goal(model, goal)
    assert z.shape == (11, 17) and np.all(np.abs(z[:, :16]) <= 1.0) and z[3, 16] == 1.0
    path = save_goal_autoencoder(model, tmp_path / "enc.pt", **info)
    again = load_goal_autoencoder(path)
    np.testing.assert_allclose(encode_goal(again, goal), z, atol=1e-6)
    with pytest.raises(ValueError, match="89 entries"):
        encode_goal(model, np.zeros((11, 88)))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="bad.pt|pickle|load"):
        load_goal_autoencoder(tmp_path / "bad.pt")
