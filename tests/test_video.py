"""Video -> demonstration stages on synthetic landmark streams (no mediapipe needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from pianomime_env.demos.format import Demonstration  # noqa: E402
from pianomime_env.demos.hand_model import HandModelError  # noqa: E402
from pianomime_env.demos.keyboard import calibrate_from_corners, keyboard_layout  # noqa: E402
from pianomime_env.demos.video import (  # noqa: E402
    LandmarkStream,
    assign_fingering,
    fill_gaps,
    from_video,
    landmarks_to_demonstration,
)
from pianomime_env.music.sources import load_song  # noqa: E402

DT = 0.05
# A synthetic camera: plane (x, y) -> pixels by a known homography (a mild perspective).
PLANE_TO_IMG = np.array([[-300.0, 20.0, 400.0], [10.0, 1000.0, 650.0], [0.4, 0.05, 1.0]])


def _to_img(xy):
    h = np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1) @ PLANE_TO_IMG.T
    return h[..., :2] / h[..., 2:]


def _calibration():
    lay = keyboard_layout()
    (xb, xf), (y0, y1) = lay.white_x, lay.y_range
    corners = _to_img(np.array([[xb, y0], [xb, y1], [xf, y1], [xf, y0]]))
    return calibrate_from_corners(corners)


def _synthetic(song, offset_steps, seed=0, noise_px=1.0, drop=0.1):
    """Fingertips moving onto the song's keys: right hand plays keys >= 39, left the rest, with
    the finger chosen by rank among the keys pressed at once."""
    lay = keyboard_layout()
    keys = np.asarray(song.to_trajectory(DT).keys) > 0
    t_song = len(keys)
    n = t_song + offset_steps + 20
    press = lay.key_press_points()[:, :2]
    rng = np.random.default_rng(seed)
    # Rest pose: fingers spread over two octaves per hand, 3 cm towards the player from the keys.
    tips = np.zeros((n, 2, 5, 2))
    truth = np.full((t_song, 88), -1)
    for h, centre in ((0, 0.12), (1, -0.12)):
        tips[:, h, :, 1] = centre + np.arange(5)[None] * 0.03 * (1 if h == 0 else -1)
        tips[:, h, :, 0] = 0.06
    for t in range(t_song):
        for h, mask in ((0, np.arange(88) >= 39), (1, np.arange(88) < 39)):
            ks = np.flatnonzero(keys[t] & mask)
            ks = ks if h == 0 else ks[::-1]
            for f, k in enumerate(ks[:5]):
                tips[t + offset_steps, h, f] = press[k]
                truth[t, k] = 5 * h + f
    wrists = tips.mean(axis=2) + np.array([0.1, 0.0])
    pts = np.concatenate([wrists[:, :, None], tips], axis=2)
    img = _to_img(pts) + rng.normal(0, noise_px, pts.shape)
    dropped = rng.random((n, 2)) < drop
    img[dropped] = np.nan
    img[30:45, 1] = np.nan  # one long gap on the left hand
    return LandmarkStream(np.arange(n) * DT, img, (800, 600)), keys, truth, tips


@pytest.mark.parametrize("offset_steps", [0, 17, 40])
def test_synthetic_stream_recovers_offset_fingering_positions(offset_steps):
    song = load_song("CMajorScaleTwoHands")
    stream, keys, truth, tips = _synthetic(song, offset_steps)
    demo, info = landmarks_to_demonstration(stream, _calibration(), keys, control_timestep=DT)
    assert isinstance(demo, Demonstration)
    assert demo.n_steps == len(keys)
    assert abs(info.offset_s - offset_steps * DT) <= DT + 1e-6  # within one control step
    pressed = truth >= 0
    agree = (demo.fingering[pressed] == truth[pressed]).mean()
    assert agree > 0.9, agree
    assert ((demo.fingering >= 0) == pressed).all()
    # Fingers on pressed keys sit exactly on the key; the rest track the landmarks (~mm).
    lay = keyboard_layout()
    tt, kk = np.nonzero(pressed)
    f = demo.fingering[tt, kk].astype(int)
    on = demo.fingertips[tt, f // 5, f % 5]
    np.testing.assert_allclose(on, lay.key_press_points()[kk], atol=1e-6)
    free = np.ones(demo.fingertips.shape[:3], bool)
    free[tt, f // 5, f % 5] = False
    err = np.linalg.norm(
        demo.fingertips[..., :2] - tips[offset_steps : offset_steps + len(keys)], axis=-1
    )
    assert np.median(err[free]) < 0.005
    assert np.all(demo.fingertips[..., 2][free] > lay.white_top_z)
    assert info.held_fraction[1] > 0  # the long gap is flagged


def test_fill_gaps_interpolates_short_and_holds_long():
    x = np.arange(12, dtype=float)[:, None]
    x[2] = np.nan
    x[5:10] = np.nan
    out, interp, held = fill_gaps(x, max_gap=2)
    assert out[2, 0] == pytest.approx(2.0)
    assert interp[2] and not held[2]
    assert (out[5:10, 0] == 4.0).all() and held[5:10].all()


def test_assign_fingering_one_to_one_and_fallback():
    lay = keyboard_layout()
    press = lay.key_press_points()[:, :2]
    tips = np.full((1, 10, 2), 5.0)
    tips[0, 1] = press[40]  # right index on key 40
    tips[0, 2] = press[40] + [0, 0.004]  # right middle very close as well
    keys = np.zeros((1, 88), bool)
    keys[0, [40, 41]] = True
    fing, fb = assign_fingering(tips, keys, lay)
    assert fing[0, 40] == 1 and fing[0, 41] == 2 and fb == 0
    # 11 simultaneous keys: one must fall back to the nearest finger.
    keys = np.zeros((1, 88), bool)
    keys[0, 30:41] = True
    fing, fb = assign_fingering(np.repeat(press[30:40][None], 1, 0), keys, lay)
    assert fb == 1 and (fing[0, 30:41] >= 0).all()


def test_from_video_missing_model_says_how_to_build(tmp_path):
    with pytest.raises(HandModelError, match="pianomime demo build-hand-model"):
        from_video(tmp_path / "v.mp4", "CMajorScaleOneHand", hand_model=tmp_path / "none.task")
