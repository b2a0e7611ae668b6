"""Shared test helpers."""

from __future__ import annotations

import numpy as np
import pytest


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
