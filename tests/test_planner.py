"""Score planner on the built-in songs."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env.demos import from_midi
from pianomime_env.demos.coverage import plan_coverage
from pianomime_env.demos.planner import MAX_HOVER_SPEED, MAX_JUMP_SPEED, key_geometry
from pianomime_env.music.songs import BUILTIN_SONGS
from pianomime_env.music.sources import load_song
from pianomime_env.sim import scene


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
    # v4 lets hovering fingers follow a hand jump (MAX_JUMP_SPEED); v3 kept MAX_HOVER_SPEED.
    assert step.max() <= MAX_JUMP_SPEED + 1e-5
    old = from_midi(name, planner="v3")
    assert np.linalg.norm(np.diff(old.fingertips, axis=0), axis=-1).max() <= MAX_HOVER_SPEED + 1e-5
    assert old.source == "score:planner-v3"
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
    assert demo.source == "score:planner-v4"


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


def test_plan_coverage_hand_built():
    """Coverage counts goal key-steps with a finger; the misses are split by where they lie."""
    keys = np.zeros((8, 88))
    keys[1:7, 10] = 1  # a note of 6 steps: fingered 2..4 -> 1 before, 2 after release
    keys[2:4, 20] = 1  # a note never fingered
    keys[0:4, 30] = 1  # fingered 0 and 3: a gap of 2
    fing = np.full((8, 88), -1, np.int8)
    fing[2:5, 10] = 3
    fing[[0, 3], 30] = 7
    fing[7, 40] = 1  # a fingered step that is not a goal step
    c = plan_coverage(fing, keys)
    assert (c.goal, c.covered) == (12, 5)
    assert (c.before_finger, c.after_release, c.gap, c.never, c.extra) == (1, 2, 2, 2, 1)
    assert c.fraction == pytest.approx(5 / 12)
    assert c.f1_ceiling == pytest.approx(2 * (5 / 12) / (1 + 5 / 12))
    traj = load_song("CMajorScaleOneHand").to_trajectory(0.05)
    demo = from_midi(traj)
    assert (
        plan_coverage(demo, traj.keys).fraction == plan_coverage(demo.fingering, traj.keys).fraction
    )


def test_v4_keeps_a_held_note_held_across_a_hand_move():
    """C4 held by the thumb while the line climbs to C5 with the little finger: the hand
    moves (3.5 cm) while C4 is down. v4 keeps C4's finger on it to its end; v3 let it go
    when the hand started moving."""
    from pianomime_env.music.songs import Song

    song = Song(
        "held",
        pitch=[60, 62, 64, 65, 67, 72],
        start=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
        end=[3.0, 1.0, 1.5, 2.0, 2.5, 3.0],
        velocity=[80] * 6,
        fingering=[0, 1, 2, 3, 4, 4],
    )
    traj = song.to_trajectory(0.05)
    k = 60 - 21
    goal = traj.keys[:, k] > 0.5
    v4 = from_midi(traj, follow_score_fingers=True)
    v3 = from_midi(traj, follow_score_fingers=True, planner="v3")
    # The hand does move while C4 is held (its wrist target shifts by > 3 cm) ...
    held_steps = np.flatnonzero(goal)
    assert np.ptp(v4.wrists[held_steps, 0, 1]) > 0.03
    # ... and only v4 keeps the thumb on C4, at its press point, for every goal step.
    assert np.all(v4.fingering[goal, k] == 0)
    assert (v3.fingering[goal, k] >= 0).sum() < goal.sum()
    press = v4.fingertips[held_steps, 0, 0]
    np.testing.assert_allclose(press, np.broadcast_to(press[0], press.shape), atol=1e-6)
    # G4, under the little finger that must leave for C5, is the only note cut (4 steps, at
    # the move's start); v3 also cut C4 (14 steps).
    c4, c3 = plan_coverage(v4, traj.keys), plan_coverage(v3, traj.keys)
    assert c4.after_release == 4 and c3.after_release > c4.after_release


def test_unknown_planner_version():
    with pytest.raises(ValueError, match="planner"):
        from_midi("CMajorScaleOneHand", planner="v9")
