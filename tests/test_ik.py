"""IK: reaches forward-kinematics targets of random in-range configurations within 1 mm."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env.sim import scene
from pianomime_env.sim.ik import HandIK


@pytest.fixture(scope="module")
def model_index():
    m = scene.load_model()
    return m, scene.SceneIndex.from_model(m)


def test_reaches_fk_targets(model_index):
    m, index = model_index
    ik = HandIK(m, index, posture_weight=0.0, forearm_posture_weight=0.0, damping=1e-5)
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(10):
        span = ik.upper - ik.lower
        q = np.clip(ik.posture + rng.uniform(-0.3, 0.3, span.shape) * span, ik.lower, ik.upper)
        targets, _ = ik.forward(q)
        sol = ik.solve(targets, iterations=40)
        assert np.all(sol >= ik.lower - 1e-12) and np.all(sol <= ik.upper + 1e-12)
        reached, _ = ik.forward(sol)
        errors.append(np.abs(reached - targets).max())
    assert max(errors) < 1e-3, errors


def test_ctrl_map_couples_tendons(model_index):
    m, index = model_index
    ik = HandIK(m, index)
    q = ik.posture.copy()
    ctrl = ik.to_ctrl(q)
    names = list(index.hand_joint_names[0])
    u = [i for i in range(m.nu) if m.actuator(i).name.endswith("rh_A_FFJ0")][0]
    expect = q[0, names.index("rh_FFJ1")] + q[0, names.index("rh_FFJ2")]
    assert ctrl[u] == pytest.approx(expect)
    r = m.actuator_ctrlrange
    assert np.all(ctrl >= r[:, 0]) and np.all(ctrl <= r[:, 1])


def test_contact_points_reach_fk_targets_and_lie_below_sites(model_index):
    m, index = model_index
    ik = HandIK(
        m, index, posture_weight=0.0, forearm_posture_weight=0.0, damping=1e-5, points="contact"
    )
    site_ik = HandIK(m, index)
    contact, _ = ik.forward(ik.posture)
    sites, _ = site_ik.forward(ik.posture)
    # The collision geometry's lowest point is below every fingertip site (thumb most).
    drop = sites[..., 2] - contact[..., 2]
    assert np.all(drop > 0.004) and np.all(drop[:, 0] > drop[:, 1:].max(axis=1)), drop
    rng = np.random.default_rng(2)
    span = ik.upper - ik.lower
    q = np.clip(ik.posture + rng.uniform(-0.2, 0.2, span.shape) * span, ik.lower, ik.upper)
    targets, _ = ik.forward(q)
    reached, _ = ik.forward(ik.solve(targets, iterations=40))
    assert np.abs(reached - targets).max() < 1e-3
    with pytest.raises(ValueError, match="points"):
        HandIK(m, index, points="tip")
