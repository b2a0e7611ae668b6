"""Shared test helpers."""

from __future__ import annotations

import os
import sys

# Offscreen rendering picks its GL backend when mujoco is first imported: choose EGL on a headless
# machine before any test module imports it (else tests that render skip or fail by import order).
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def tiny_midi(tmp_path):
    """A 2-second MIDI file with a chord, a repeated note and the sustain pedal."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for pitch, start, end in [
        (60, 0.0, 0.5),
        (64, 0.0, 0.5),
        (67, 0.5, 1.0),
        (67, 1.0, 1.5),
        (48, 1.0, 2.0),
    ]:
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=start, end=end))
    piano.control_changes.append(pretty_midi.ControlChange(number=64, value=100, time=1.0))
    piano.control_changes.append(pretty_midi.ControlChange(number=64, value=0, time=1.8))
    pm.instruments.append(piano)
    path = tmp_path / "tiny.mid"
    pm.write(str(path))
    return path


def rollout(env, actions, seed=0):
    """Observations, rewards and infos of ``env`` under a fixed action sequence."""
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, {})]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, info))
        if term or trunc:
            break
    return out


def random_actions(env, n, seed=0):
    rng = np.random.default_rng(seed)
    space = env.action_space
    return [rng.uniform(space.low, space.high).astype(np.float32) for _ in range(n)]


@pytest.fixture
def two_track_midi(tmp_path):
    """A two-track MIDI file whose *first* track ends last: a right-hand melody (0.5-4.0 s),
    then a left-hand track that starts first (0.25 s) and whose closing chord (C3-E3-G3,
    2.5-3.0 s) ends before the melody does. Trimming in file order (RoboPianist) keeps
    [0.5 s, 3.0 s): it drops the left hand's first note and the melody's last one."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    right = pretty_midi.Instrument(program=0, name="right hand")
    for i, pitch in enumerate([72, 74, 76, 77, 79, 77, 76]):
        right.notes.append(
            pretty_midi.Note(velocity=80, pitch=pitch, start=0.5 + 0.5 * i, end=1.0 + 0.5 * i)
        )
    left = pretty_midi.Instrument(program=0, name="left hand")
    left.notes.append(pretty_midi.Note(velocity=70, pitch=41, start=0.25, end=1.0))
    for pitch in (48, 52, 55):
        left.notes.append(pretty_midi.Note(velocity=70, pitch=pitch, start=2.5, end=3.0))
    pm.instruments.extend([right, left])
    path = tmp_path / "two_tracks.mid"
    pm.write(str(path))
    return path
