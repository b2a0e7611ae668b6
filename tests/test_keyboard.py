"""Automatic keyboard homography on images rendered from the simulated piano."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("cv2")
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

from pianomime_env.demos.keyboard import (  # noqa: E402
    calibrate_from_corners,
    detect_keyboard,
    keyboard_layout,
    project_points,
)
from pianomime_env.sim.scene import SceneIndex, load_model  # noqa: E402

W, H = 640, 480


def _render(camera: str, hands: bool):
    from pianomime_env.sim.render import SceneRenderer, resolve_camera

    model = load_model()
    index = SceneIndex.from_model(model)
    if not hands:
        for name in ("rh_shadow_hand/", "lh_shadow_hand/"):
            b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
            model.body_pos[b, 2] += 3.0
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    try:
        r = SceneRenderer(model, index, W, H, camera)
    except RuntimeError as exc:
        pytest.skip(f"no offscreen GL: {exc}")
    img = r.render(data, np.zeros(88, bool))
    r.close()
    return img, model, data, resolve_camera(model, camera)


@pytest.mark.parametrize(
    "camera,hands,max_mm", [("topdown", False, 5), ("topdown", True, 5), ("back", True, 6)]
)
def test_auto_homography_error_on_black_key_tops(camera, hands, max_mm):
    img, model, data, cid = _render(camera, hands)
    cal = detect_keyboard(img)
    lay = keyboard_layout()
    pts = lay.key_top_points()
    uv = project_points(model, data, cid, W, H, pts)
    vis = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & lay.is_black
    err = np.linalg.norm(cal.image_to_plane(uv[vis]) - pts[vis, :2], axis=1) * 1000
    assert len(cal.black_keys) >= 15
    assert err.max() < max_mm, err.max()


def test_manual_corners_exact():
    lay = keyboard_layout()
    (xb, xf), (y0, y1) = lay.white_x, lay.y_range
    corners = np.array([[100, 50], [540, 60], [560, 200], [80, 190]], float)
    cal = calibrate_from_corners(corners)
    np.testing.assert_allclose(
        cal.image_to_plane(corners), [[xb, y0], [xb, y1], [xf, y1], [xf, y0]], atol=1e-6
    )


@pytest.mark.parametrize("camera", ["topdown", "back"])
def test_project_points_agree_with_mujocos_renderer(camera):
    """The pinhole projection against MuJoCo's own renderer: the pixel centroid of a black key's
    top (never occluded, unlike white keys behind the black ones) in a segmentation image is
    where project_points puts the top's centre."""
    model = load_model()
    index = SceneIndex.from_model(model)
    for name in ("rh_shadow_hand/", "lh_shadow_hand/"):  # hands out of the way
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        model.body_pos[b, 2] += 3.0
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    from pianomime_env.sim.render import resolve_camera

    cid = resolve_camera(model, camera)
    try:
        renderer = mujoco.Renderer(model, H, W)
    except Exception as exc:  # no offscreen GL on this machine
        pytest.skip(f"no offscreen GL: {exc}")
    renderer.enable_segmentation_rendering()
    renderer.update_scene(data, camera=cid)
    seg = renderer.render()
    renderer.close()
    is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
    checked = 0
    for key in np.flatnonzero(keyboard_layout().is_black):
        g = index.key_geoms[key]
        vs, us = np.nonzero(is_geom & (seg[..., 0] == g))
        if us.size < 30 or us.min() == 0 or us.max() == W - 1 or vs.min() == 0 or vs.max() == H - 1:
            continue  # too small, or cut by the frame
        top = data.geom_xpos[g] + data.geom_xmat[g].reshape(3, 3) @ [0, 0, model.geom_size[g, 2]]
        u, v = project_points(model, data, cid, W, H, top[None])[0]
        # The centroid of the visible top face (pixel centres at +0.5).
        assert abs(u - (us.mean() + 0.5)) < 3.0 and abs(v - (vs.mean() + 0.5)) < 3.0, (key, u, v)
        checked += 1
    assert checked >= 10
