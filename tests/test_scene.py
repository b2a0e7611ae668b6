"""The compiled scene: cache, index arrays, parameter options."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from pianomime_env.sim import scene


def test_index_arrays_match_the_model():
    model = scene.load_model()
    idx = scene.SceneIndex.from_model(model)
    assert model.nu == 44 and model.nq == 140
    assert idx.key_qpos.shape == (88,) and idx.fingertip_sites.shape == (2, 5)
    # Keys are ordered A0..C8; black keys (shorter levers) rotate further: atan(8/90) vs atan(10/150).
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in idx.key_geoms]
    assert names[0] == "piano/white_key_geom_0" and names[87] == "piano/white_key_geom_87"
    black = [1, 4, 6, 9, 11]  # A#0, C#1, D#1, F#1, G#1
    assert all(names[b].startswith("piano/black") for b in black)
    np.testing.assert_allclose(idx.key_range_max[black], np.arctan(0.008 / 0.09), rtol=1e-5)
    np.testing.assert_allclose(idx.key_range_max[0], np.arctan(0.01 / 0.15), rtol=1e-5)
    assert idx.hand_joint_names[0][-2:] == ("forearm_tx", "forearm_ty")
    assert idx.hand_joint_names[1][0] == "lh_WRJ2"
    assert idx.forearm_geoms.shape[0] == 2 and idx.forearm_geoms.shape[1] >= 1


def test_reduced_model_is_a_separate_build():
    model = scene.load_model(reduced_action_space=True)
    idx = scene.SceneIndex.from_model(model)
    assert model.nu == 38 and idx.hand_qpos.shape == (2, 23)
    assert "rh_THJ5" not in idx.hand_joint_names[0]


def test_configure_model():
    model = scene.load_model()
    idx = scene.SceneIndex.from_model(model)
    scene.configure_model(
        model, idx, physics_timestep=0.002, gravity_compensation=True, disable_hand_collisions=True
    )
    assert model.opt.timestep == 0.002
    np.testing.assert_allclose(model.geom_solref[idx.key_geoms, 0], 0.004)
    assert model.body_gravcomp.sum() > 50
    hand_geoms = np.isin(model.geom_bodyid, np.unique(model.geom_bodyid[idx.forearm_geoms.ravel()]))
    assert (model.geom_conaffinity[hand_geoms] == 0).all()


def test_cache_is_reused_and_rebuilt_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOMIME_CACHE_DIR", str(tmp_path))
    model = scene.load_model()
    files = list(tmp_path.glob("scene-*.mjb"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    mtime = files[0].stat().st_mtime_ns
    again = scene.load_model()
    assert files[0].stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert again.nq == model.nq


def test_unwritable_cache_dir_falls_back_to_temp(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    monkeypatch.setenv("PIANOMIME_CACHE_DIR", str(blocker / "cache"))
    model = scene.load_model()
    assert model.nu == 44
    assert blocker.read_text().startswith("a file")


def test_build_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOMIME_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(scene.sys, "executable", "/bin/false")  # the build subprocess fails
    with pytest.raises(RuntimeError, match="Building the piano scene"):
        scene.load_model()


def test_key_rest_geometry():
    model = scene.load_model()
    rest = scene.key_rest_geometry(model, scene.SceneIndex.from_model(model))
    # 36 black keys, in the 2-3 pattern; their tops stand 12.5 mm above the white keys'.
    assert rest.is_black.sum() == 36 and not rest.is_black[0] and rest.is_black[1]
    np.testing.assert_allclose(
        rest.top[rest.is_black] - rest.top[~rest.is_black].max(), 0.0125, atol=1e-6
    )
    # Keys run along +y from A0 to C8.
    assert (np.diff(rest.center[:, 1]) > 0).all()


def test_cache_key_follows_installed_versions(monkeypatch):
    """A changed dependency (as installed, read at run time) selects a new cache file."""
    from importlib import metadata

    opts = dict(reduced_action_space=False, primitive_fingertip_collisions=False)
    key = scene.cache_key(**opts)
    assert key["versions"]["robopianist"] == metadata.version("robopianist")
    assert key["versions"]["mujoco"] == metadata.version("mujoco")
    assert key["versions"]["pianomime-env"] == metadata.version("pianomime-env")
    before = scene.model_filename(**opts)
    assert scene.model_filename(**opts) == before  # stable
    real = metadata.version
    for dist in ("robopianist", "mujoco", "dm_control", "pianomime-env"):
        monkeypatch.setattr(
            metadata, "version", lambda d, dist=dist: "0.0.0-other" if d == dist else real(d)
        )
        assert scene.model_filename(**opts) != before, dist
    monkeypatch.setattr(metadata, "version", real)
    assert (
        scene.model_filename(reduced_action_space=True, primitive_fingertip_collisions=False)
        != before
    )
    assert (
        scene.model_filename(reduced_action_space=False, primitive_fingertip_collisions=True)
        != before
    )
