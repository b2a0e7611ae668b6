"""Offscreen frames: keys coloured by what the score asks, the legend and caption text."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from pianomime_env.sim.scene import SceneIndex, load_model

KEY = 39  # C4, in view of the back camera


@pytest.fixture(scope="module")
def scene():
    from pianomime_env.sim.render import SceneRenderer

    model = load_model()
    index = SceneIndex.from_model(model)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    try:
        small = SceneRenderer(model, index, 320, 240, "back")
        large = SceneRenderer(model, index, 640, 480, "back")
    except RuntimeError as exc:  # pragma: no cover - machines without offscreen GL
        pytest.skip(f"no offscreen GL: {exc}")
    yield model, data, small, large
    small.close()
    large.close()


def changed_colour(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Mean RGB (0..255) of the pixels that changed between two frames."""
    diff = np.abs(before.astype(int) - after.astype(int)).sum(axis=-1) > 30
    assert diff.sum() > 20, "nothing changed"
    return after[diff].mean(axis=0)


def test_keys_are_coloured_by_the_goal(scene):
    model, data, small, _ = scene
    rgba_before = model.geom_rgba.copy()
    up, down = np.zeros(88, bool), np.zeros(88, bool)
    down[KEY] = True
    no_goal, goal = np.zeros(88), np.zeros(88)
    goal[KEY] = 1.0
    plain = small.render(data, up, no_goal)
    r, g, b = changed_colour(plain, small.render(data, down, no_goal))  # a wrong press
    assert r > 1.5 * g and r > 1.5 * b, (r, g, b)
    r, g, b = changed_colour(plain, small.render(data, down, goal))  # a correct press
    assert g > 1.3 * r and g > 1.3 * b, (r, g, b)
    r, g, b = changed_colour(plain, small.render(data, up, goal))  # a missed key
    assert b > 1.1 * r and b > g, (r, g, b)
    # Without a goal: RoboPianist's look, pressed keys green.
    r, g, b = changed_colour(small.render(data, up), small.render(data, down))
    assert g > 1.3 * r and g > 1.3 * b, (r, g, b)
    np.testing.assert_array_equal(model.geom_rgba, rgba_before)  # the model is left as it was


def test_legend_and_caption_only_on_frames_wide_enough(scene):
    _, data, small, large = scene
    keys = np.zeros(88, bool)
    plain = large.render(data, keys)
    text = large.render(data, keys, np.zeros(88), legend=True, caption="song   1.00 s")
    changed = np.abs(plain.astype(int) - text.astype(int)).sum(axis=-1) > 30
    rows, cols = np.nonzero(changed)
    assert rows.size > 200 and cols.max() < 0.6 * 640  # text on the left, not across
    assert rows.min() < 480 // 4 and rows.max() > 3 * 480 // 4  # legend on top, caption below
    np.testing.assert_array_equal(
        small.render(data, keys), small.render(data, keys, legend=True, caption="x")
    )


def test_unknown_camera_is_named():
    from pianomime_env.sim.render import resolve_camera

    with pytest.raises(ValueError, match="unknown camera 'nope'"):
        resolve_camera(load_model(), "nope")
