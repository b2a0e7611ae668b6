"""Synthesis of piano rolls with FluidSynth and robopianist's soundfont."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pianomime_env.media import audio

DT = 0.05


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def window(samples: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return samples[int(t0 * audio.SAMPLE_RATE) : int(t1 * audio.SAMPLE_RATE)]


def test_soundfont_is_robopianists_and_robopianist_is_not_imported():
    code = (
        "import sys; from pianomime_env.media import audio; p = audio.find_soundfont(); "
        "assert 'robopianist' not in sys.modules, 'robopianist was imported'; print(p)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip()
    assert path.endswith(".sf2") and "robopianist" in path and "soundfonts" in path


def test_soundfont_override_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("PIANOMIME_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(audio.AudioUnavailableError, match="PIANOMIME_SOUNDFONT"):
        audio.find_soundfont()


def test_sound_where_keys_are_down_silence_where_none():
    keys = np.zeros((60, 88), bool)
    keys[5:15, 39] = True  # C4 for 0.25 .. 0.75 s
    keys[5:15, 43] = True  # E4
    samples = audio.synthesize(keys, DT)
    assert samples.dtype == np.float32 and samples.shape == (round(60 * DT * audio.SAMPLE_RATE),)
    assert np.abs(samples).max() == pytest.approx(0.9, abs=1e-3)  # normalized
    assert rms(window(samples, 0.0, 0.25)) < 1e-3  # before the press
    assert rms(window(samples, 0.3, 0.7)) > 0.05  # while the keys are down
    assert rms(window(samples, 1.8, 3.0)) < 1e-3  # > 1 s after the release (note-off)
    silent = audio.synthesize(np.zeros((20, 88), bool), DT)
    assert np.abs(silent).max() < 1e-3 and silent.shape == (round(20 * DT * audio.SAMPLE_RATE),)


def test_sustain_pedal_holds_released_notes():
    keys = np.zeros((60, 88), bool)
    keys[2:6, 39] = True  # pressed 0.1 .. 0.3 s
    pedal = np.zeros(60, bool)
    pedal[2:40] = True  # held until 2.0 s
    dry = audio.synthesize(keys, DT, normalize=False)
    held = audio.synthesize(keys, DT, sustain=pedal, normalize=False)
    # 0.8 .. 1.6 s: long after the release, still under the pedal.
    assert rms(window(held, 0.8, 1.6)) > 20 * rms(window(dry, 0.8, 1.6))
    assert rms(window(held, 0.8, 1.6)) > 1e-3
    # The pedal's release ends the note as well.
    assert rms(window(held, 2.8, 3.0)) < 1e-3


def test_repeated_note_is_struck_twice():
    once = np.zeros((30, 88), bool)
    once[2:20, 39] = True
    twice = once.copy()
    twice[11, 39] = False  # released for one step, pressed again at 0.6 s
    a = audio.synthesize(once, DT, normalize=False)
    b = audio.synthesize(twice, DT, normalize=False)
    assert rms(window(b, 0.62, 0.8)) > 1.5 * rms(window(a, 0.62, 0.8))  # a fresh attack


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\(T, 88\)"):
        audio.synthesize(np.zeros((5, 80)), DT)
    with pytest.raises(ValueError, match="sustain"):
        audio.synthesize(np.zeros((5, 88)), DT, sustain=np.zeros(4))
    with pytest.raises(ValueError, match="control_timestep"):
        audio.synthesize(np.zeros((5, 88)), 0.0)


def test_wav_round_trip(tmp_path):
    keys = np.zeros((20, 88), bool)
    keys[2:8, 50] = True
    path = audio.write_performance_audio(tmp_path / "a.wav", keys, DT)
    samples, rate = audio.read_wav(path)
    assert rate == audio.SAMPLE_RATE and samples.shape == (round(20 * DT * rate),)
    assert np.abs(samples).max() > 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary left


def test_missing_fluidsynth_library_gives_a_clear_message():
    # The shared library is "not on the system": pyfluidsynth's lookup finds nothing.
    code = (
        "import ctypes.util; ctypes.util.find_library = lambda name: None\n"
        "from pianomime_env.media import audio\n"
        "try:\n"
        "    audio.synthesize(__import__('numpy').zeros((4, 88)), 0.05)\n"
        "except audio.AudioUnavailableError as exc:\n"
        "    print('ERR', exc)\n"
        "print('available', audio.audio_available())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ERR" in proc.stdout and "libfluidsynth3" in proc.stdout
    assert "available False" in proc.stdout


def test_missing_pyfluidsynth_names_the_extra():
    code = (
        "import sys; sys.modules['fluidsynth'] = None\n"
        "from pianomime_env.media import audio\n"
        "try:\n"
        "    audio.check_audio()\n"
        "except audio.AudioUnavailableError as exc:\n"
        "    print('ERR', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install -e ".[audio]"' in proc.stdout
