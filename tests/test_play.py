"""`play`: metrics, piano roll, a video with the sound of what was played, the score's sound."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from pianomime_env import media
from pianomime_env.app.play import play
from pianomime_env.media import audio

FPS = 20.0


def test_play_writes_a_video_you_can_hear(tmp_path, tiny_midi):
    tmp_path = tmp_path / "out"
    notes = []
    result = play(tiny_midi, tmp_path, width=128, height=96, log=notes.append)
    assert notes == []  # nothing to warn about; the files are listed by the caller (the CLI)
    assert result["media_notes"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "performance.mp4",
        "pianoroll.png",
        "target.wav",
    ]
    duration = (result["steps"] + 1) / FPS  # the reset frame + one per step
    info = media.probe_media(result["video_path"])
    assert info["video"]["frames"] == result["steps"] + 1
    assert (info["video"]["width"], info["video"]["height"]) == (128, 96)
    assert abs(info["video"]["duration"] - duration) < 1 / FPS
    assert abs(info["audio"]["duration"] - duration) < 1 / FPS
    samples, rate = media.read_audio(result["video_path"])
    assert np.abs(samples).max() > 0.3  # the sight-reader plays this song: there is sound
    target, target_rate = audio.read_wav(result["target_audio_path"])
    assert target_rate == audio.SAMPLE_RATE
    assert abs(len(target) / target_rate - duration) < 1 / FPS
    assert np.abs(target[: int(0.04 * rate)]).max() < 0.003  # the silent reset row
    assert np.abs(target).max() > 0.5
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"] == result["metrics"] and saved["video_path"] == result["video_path"]


def test_play_without_video_writes_both_sounds(tmp_path, tiny_midi):
    result = play(tiny_midi, tmp_path, policy="idle", video=False, log=lambda m: None)
    assert "video_path" not in result
    played, _ = audio.read_wav(result["performance_audio_path"])
    assert np.abs(played).max() < 0.003  # idle hands press nothing
    target, _ = audio.read_wav(result["target_audio_path"])
    assert np.abs(target).max() > 0.5 and len(target) == len(played)


def _run_play_with(prelude: str, song, out, env=None) -> subprocess.CompletedProcess:
    code = (
        prelude
        + "\nfrom pianomime_env.app import cli\n"
        + f"cli.main(['play', {str(song)!r}, '--out', {str(out)!r}, '--policy', 'idle',"
        + " '--width', '64', '--height', '48'])\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_play_without_the_media_extras_still_scores(tmp_path, tiny_midi):
    # No imageio / imageio-ffmpeg / pyfluidsynth / PyAV importable.
    prelude = "import sys\nfor m in ('imageio', 'imageio_ffmpeg', 'fluidsynth', 'av'):\n    sys.modules[m] = None"
    tmp_path = tmp_path / "out"
    proc = _run_play_with(prelude, tiny_midi, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note-onset F1 0.000" in proc.stdout
    assert "no video:" in proc.stderr and "no sound:" in proc.stderr
    assert proc.stderr.count('pip install -e ".[audio]"') == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "pianoroll.png"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["media_notes"]) == 2 and saved["metrics"]["note_f1"] == 0.0


def test_play_without_the_fluidsynth_library_writes_a_silent_video(tmp_path, tiny_midi):
    prelude = "import ctypes.util\nctypes.util.find_library = lambda name: None"
    tmp_path = tmp_path / "out"
    proc = _run_play_with(prelude, tiny_midi, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no sound:" in proc.stderr and "apt-get install libfluidsynth3" in proc.stderr
    assert "Traceback" not in proc.stderr
    info = media.probe_media(tmp_path / "performance.mp4")
    assert info["video"] is not None and info["audio"] is None
    assert not (tmp_path / "target.wav").exists()


def test_play_without_offscreen_gl_writes_sound_and_says_why(tmp_path, tiny_midi):
    # GLFW needs a display: on a headless machine no GL context comes up.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = "glfw"
    tmp_path = tmp_path / "out"
    proc = _run_play_with("", tiny_midi, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no video: offscreen rendering could not start" in proc.stderr
    assert "MUJOCO_GL=egl" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "performance.wav",
        "pianoroll.png",
        "target.wav",
    ]
