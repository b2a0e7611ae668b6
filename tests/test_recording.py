"""RecordPerformance: evaluation videos with sound; piano rolls in TensorBoard."""

from __future__ import annotations

import numpy as np
import pytest

from pianomime_env import media
from pianomime_env.control.sightreader import SightReader
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.media.recording import RecordPerformance, log_piano_roll


def run_episode(env, policy, seed=0):
    obs, _ = env.reset(seed=seed)
    policy.reset()
    while True:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return info


@pytest.fixture
def recorded(tmp_path, tiny_midi):
    """Two episodes of the tiny MIDI song played by the sight-reader; only the second recorded."""
    base = PianoMimeEnv(str(tiny_midi))
    env = RecordPerformance(
        base, tmp_path / "videos", episode_trigger=lambda i: i == 1, width=128, height=96
    )
    reader = SightReader(base)
    first = run_episode(env, reader, seed=0)
    second = run_episode(env, reader, seed=1)
    played = base.played_keys  # the recorded episode's rows, before the next reset clears them
    env.close()
    return env, first, second, played


def test_records_only_the_chosen_episode_with_sound_in_sync(recorded, tmp_path):
    env, first, second, played = recorded
    assert "recording" not in first
    assert [r["episode"] for r in env.recordings] == [1]
    record = second["recording"]
    assert record == env.recordings[0] and record["steps"] == len(played)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [
        "episode-1-pianoroll.png",
        "episode-1.mp4",
    ]
    fps = 20.0
    duration = (len(played) + 1) / fps  # the reset frame + one per step
    info = media.probe_media(record["video"])
    assert info["video"]["frames"] == len(played) + 1
    assert abs(info["video"]["duration"] - duration) < 1 / fps
    assert info["audio"] is not None and abs(info["audio"]["duration"] - duration) < 1 / fps
    assert record["metrics"]["f1"] == second["metrics"]["f1"]
    assert played.any(), "the sight-reader pressed no key: nothing to hear"


def test_audio_sounds_where_keys_were_pressed(recorded):
    env, _, _, played = recorded
    samples, rate = media.read_audio(env.recordings[0]["video"])
    frame = rate // 20
    rows = np.concatenate([np.zeros((1, 88), bool), played])  # aligned with the frames
    loudness = np.array(
        [np.sqrt(np.mean(samples[i * frame : (i + 1) * frame] ** 2)) for i in range(len(rows))]
    )
    pressed = rows.any(axis=1)
    # Frames where a key has been down for two frames (past the attack), and frames with no
    # key down in the second before (past the release tail; this song's pedal is up by then
    # or the rows are before the first press).
    held = np.flatnonzero(pressed & np.roll(pressed, 1))
    quiet = [i for i in range(len(rows)) if not rows[max(0, i - 20) : i + 1].any()]
    assert held.size and quiet, (held, quiet)
    assert loudness[held].min() > 0.01, loudness[held]
    assert loudness[quiet].max() < 0.003, loudness[quiet]


def test_idle_hands_record_silence(tmp_path, tiny_midi):
    base = PianoMimeEnv(str(tiny_midi))
    env = RecordPerformance(base, tmp_path, episode_trigger=lambda i: True, width=64, height=48)
    idle = np.clip(np.zeros(base.action_space.shape), base.action_low, base.action_high)
    env.reset(seed=0)
    for _ in range(10):  # stopped early; the next reset finishes the recording
        env.step(idle)
    env.reset(seed=0)
    env.close()
    (record,) = [r for r in env.recordings if r["episode"] == 0]
    assert record["steps"] == 10
    samples, _ = media.read_audio(record["video"])
    assert np.abs(samples).max() < 0.003


def test_piano_roll_goes_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="the train extra (tensorboard) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    goal = np.zeros((40, 88))
    goal[5:15, 39] = 1
    played = goal.copy()
    played[20:22, 50] = 1
    image = log_piano_roll(tmp_path / "tb", "eval/pianoroll", goal, played, step=7)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    (logged,) = events.Images("eval/pianoroll")
    assert logged.step == 7
    assert (logged.width, logged.height) == (image.shape[1], image.shape[0])


def test_wrapper_logs_to_tensorboard(tmp_path, tiny_midi):
    pytest.importorskip("tensorboard", reason="the train extra (tensorboard) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = PianoMimeEnv(str(tiny_midi))
    env = RecordPerformance(
        base,
        tmp_path / "videos",
        episode_trigger=lambda i: True,
        video=False,
        summary_writer=tmp_path / "tb",
    )
    run_episode(env, SightReader(base))
    env.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("eval/pianoroll")] == [base.n_steps]
    (f1,) = events.Scalars("eval/f1")
    assert f1.value == pytest.approx(env.recordings[0]["metrics"]["f1"])
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["episode-0-pianoroll.png"]


def test_needs_a_pianomime_env():
    import gymnasium as gym

    with pytest.raises(TypeError, match="PianoMimeEnv"):
        RecordPerformance(gym.make("CartPole-v1"), "unused")
