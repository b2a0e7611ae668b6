"""Score planner on the built-in songs."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env import scene
from pianomime_env.demos import from_midi
from pianomime_env.demos.planner import MAX_HOVER_SPEED, key_geometry
from pianomime_env.songs import BUILTIN_SONGS, load_song


@pytest.fixture(scope="module")
def geo():
    m = scene.load_model()
    return key_geometry(m, scene.SceneIndex.from_model(m))


def test_key_geometry(geo):
    assert geo.is_black.sum() == 36
    assert np.all(np.diff(geo.center[:, 1]) > 0)  # keys ordered along +y
    # White press points lie in front of every black key.
    black_front = (geo.center[:, 0] + geo.half_size[:, 0])[geo.is_black].max()
    assert np.all(geo.press_point[~geo.is_black, 0] > black_front)


@pytest.mark.parametrize("name", BUILTIN_SONGS)
def test_planner_builtin(name, geo):
    traj = load_song(name).to_trajectory(0.05)
    demo = from_midi(name)
    assert demo.n_steps == len(traj)
    goal = traj.keys > 0.5
    # Every goal note has a finger at its onset (a held note may be released early when its hand
    # must move on), and only goal steps are fingered.
    onset = goal & ~np.vstack([np.zeros((1, goal.shape[1]), bool), goal[:-1]])
    assert np.all(demo.fingering[onset] >= 0)
    assert np.all(demo.fingering[~goal] == -1)
    assert (demo.fingering[goal] >= 0).mean() > 0.7
    # One finger presses at most one key at a time.
    for t in range(demo.n_steps):
        f = demo.fingering[t][demo.fingering[t] >= 0]
        assert len(f) == len(set(f.tolist()))
    assert np.isfinite(demo.fingertips).all() and np.isfinite(demo.wrists).all()
    step = np.linalg.norm(np.diff(demo.fingertips, axis=0), axis=-1)
    assert step.max() <= MAX_HOVER_SPEED + 1e-5
    # Feasible spans (of the planner's own fingering; annotated human fingerings may stretch
    # further): keys one hand strikes together fit under a spread hand (0.2 m).
    own = from_midi(name, use_score_fingering=False)
    assert np.all(own.fingering[onset] >= 0)
    # Chords wider than both hands' free fingers fall back to an unconstrained finger: allowed
    # on at most 1% of the sounding steps (NocturneRousseau has a few).
    too_wide = 0
    sounding = np.flatnonzero(goal.any(axis=1))
    for t in sounding:
        for hand in (0, 1):
            row = own.fingering[t]
            onset = goal[t] & ~(goal[t - 1] if t else np.zeros(88, bool))
            keys = np.flatnonzero((row // 5 == hand) & (row >= 0) & onset)
            if keys.size:
                span = np.ptp(geo.center[keys, 1])
                too_wide += span > 0.2  # chords struck together
    assert too_wide <= 0.01 * len(sounding), (name, too_wide)
    assert demo.source == "score:planner-v3"


def test_planner_holds_finger_on_held_key():
    demo = from_midi("CMajorChordProgressionTwoHands")
    traj = load_song("CMajorChordProgressionTwoHands").to_trajectory(0.05)
    goal = traj.keys > 0.5
    # A held key keeps its finger until the key is released (possibly early, for a hand move).
    held = goal[1:] & goal[:-1] & (demo.fingering[1:] >= 0)
    assert np.all(demo.fingering[1:][held] == demo.fingering[:-1][held])


def test_planner_and_video_share_press_points(geo):
    """One key geometry: a demo planned from the score and one extracted from a video put a
    finger pressing key k at the same point (the scene's press point for that finger)."""
    from pianomime_env.demos.keyboard import KeyboardCalibration, keyboard_layout
    from pianomime_env.demos.video import LandmarkStream, landmarks_to_demonstration

    lay = keyboard_layout()
    np.testing.assert_array_equal(lay.finger_press_points, geo.finger_press_points)
    rest = scene.key_rest_geometry(
        scene.load_model(), scene.SceneIndex.from_model(scene.load_model())
    )
    np.testing.assert_array_equal(scene.key_press_points(rest), geo.finger_press_points)
    name = "CMajorChordProgressionTwoHands"
    traj = load_song(name).to_trajectory(0.05)
    planned = from_midi(name)
    # The planned fingertips, seen by a camera whose homography is the identity (pixels = m).
    wrists = planned.wrists[:, :, None, :2]
    pts = np.concatenate([wrists, planned.fingertips[..., :2]], axis=2).astype(np.float64)
    stream = LandmarkStream(times=np.arange(len(pts)) * 0.05, points=pts)
    cal = KeyboardCalibration(np.eye(3), lay.white_top_z, "corners", np.zeros(0, int))
    video, _ = landmarks_to_demonstration(
        stream, cal, traj.keys, offset_s=0.0, smooth_window=1, layout=lay
    )
    both = (planned.fingering >= 0) & (planned.fingering == video.fingering)
    assert both.sum() > 0.5 * (planned.fingering >= 0).sum()
    tt, kk = np.nonzero(both)
    f = planned.fingering[tt, kk].astype(int)
    held = (
        np.linalg.norm(
            planned.fingertips[tt, f // 5, f % 5] - geo.finger_press_points[f % 5, kk], axis=-1
        )
        < 1e-6
    )  # planned finger exactly on the key (not still rate-limited toward it)
    assert held.mean() > 0.8
    np.testing.assert_allclose(
        video.fingertips[tt, f // 5, f % 5][held],
        planned.fingertips[tt, f // 5, f % 5][held],
        atol=1e-6,
    )


def test_planner_follows_score_thumbs_on_white_keys(geo):
    """With follow_score_fingers, notes the score gives the thumb on a white key get the thumb."""
    for name in ("TwinkleTwinkleRousseau", "NocturneRousseau"):
        traj = load_song(name).to_trajectory(0.05)
        demo = from_midi(name, follow_score_fingers=True)
        goal = traj.keys > 0.5
        onset = goal & ~np.vstack([np.zeros((1, 88), bool), goal[:-1]])
        tt, kk = np.nonzero(onset)
        score = np.asarray(traj.fingering)[tt, kk]
        thumb_white = (score >= 0) & (score % 5 == 0) & ~geo.is_black[kk]
        assert thumb_white.sum() >= 5, name
        planned = demo.fingering[tt, kk][thumb_white]
        assert np.mean(planned == score[thumb_white]) >= 0.8, name  # measured 0.88-1.0
    # Without the score's fingers the planner still uses thumbs, mostly on white keys (black
    # ones only where a chord leaves no other finger free: 33 of 100 key-steps, measured).
    own = from_midi("NocturneRousseau", use_score_fingering=False)
    tt, kk = np.nonzero(own.fingering >= 0)
    thumb = own.fingering[tt, kk] % 5 == 0
    on_black = geo.is_black[kk[thumb]]
    assert (~on_black).sum() > max(1.5 * on_black.sum(), 10)
