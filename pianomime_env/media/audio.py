"""Sound of a performance: piano rolls synthesized with FluidSynth and RoboPianist's soundfont.

A piano roll here is what the env records: one row per control step, 88 key columns (True =
key down) and, optionally, the sustain pedal per step. :func:`synthesize` turns it into a mono
waveform at :data:`SAMPLE_RATE`: a note starts where its key goes down (note-on) and ends where
it comes up (note-off; the sustain pedal, sent as MIDI CC 64, holds released notes as a piano's
damper pedal does). Row ``i`` covers ``[i, i + 1) * control_timestep`` seconds, so the waveform
lasts exactly ``len(keys) * control_timestep`` — the same span as a video with one frame per row.

Needs the ``audio`` extra (``pip install -e ".[audio]"``: pyfluidsynth) and the FluidSynth
library (Debian/Ubuntu: ``apt-get install libfluidsynth3``). The soundfont is the one the
``robopianist`` package ships (found on disk; robopianist is not imported), or the ``.sf2``
file named by ``$PIANOMIME_SOUNDFONT``.
"""

from __future__ import annotations

import importlib.util
import os
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 44100
"""Samples per second of synthesized audio (RoboPianist's rate)."""
LOWEST_MIDI_PITCH = 21
"""MIDI pitch of key 0 (A0); key ``k`` is pitch ``21 + k``."""
VELOCITY = 80
"""MIDI velocity of every synthesized note (the env records no key velocity)."""
_SUSTAIN_CC = 64
_PROGRAM = 0  # General MIDI acoustic grand piano


class AudioUnavailableError(ImportError):
    """Audio synthesis cannot run here; the message says what to install."""


def find_soundfont() -> Path:
    """The ``.sf2`` soundfont to play with.

    ``$PIANOMIME_SOUNDFONT`` if set, else the robopianist package's ``soundfonts/`` folder
    (``SalamanderGrandPiano.sf2`` if someone installed it there, else ``TimGM6mb.sf2``), located
    with ``importlib.util.find_spec`` without importing robopianist.

    Raises:
        AudioUnavailableError: no soundfont file found.
    """
    env_path = os.environ.get("PIANOMIME_SOUNDFONT")
    if env_path:
        path = Path(env_path)
        if not path.is_file():
            raise AudioUnavailableError(f"$PIANOMIME_SOUNDFONT={env_path!r} is not a file")
        return path
    spec = importlib.util.find_spec("robopianist")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "soundfonts"
        for name in ("SalamanderGrandPiano.sf2", "TimGM6mb.sf2"):
            if (folder / name).is_file():
                return folder / name
    raise AudioUnavailableError(
        "no soundfont found: the robopianist package's soundfonts/TimGM6mb.sf2 is missing "
        f"(looked in {[str(Path(p) / 'soundfonts') for p in locations] or 'no robopianist install'}); "
        "reinstall robopianist or set $PIANOMIME_SOUNDFONT to a .sf2 file"
    )


def load_fluidsynth():
    """The ``fluidsynth`` module (pyfluidsynth), with a clear error if it cannot load.

    Raises:
        AudioUnavailableError: pyfluidsynth is not installed (the ``audio`` extra), or the
            FluidSynth shared library is missing (Debian/Ubuntu package ``libfluidsynth3``).
    """
    try:
        import fluidsynth
    except ModuleNotFoundError as exc:
        raise AudioUnavailableError(
            f'audio needs pyfluidsynth: pip install -e ".[audio]" (import failed: {exc})'
        ) from exc
    except (ImportError, OSError) as exc:
        # pyfluidsynth raises ImportError("Couldn't find the FluidSynth library.") when the
        # shared library libfluidsynth is not on the system.
        raise AudioUnavailableError(
            "audio needs the FluidSynth library, which was not found: on Debian/Ubuntu "
            f"`apt-get install libfluidsynth3` (macOS: `brew install fluid-synth`); ({exc})"
        ) from exc
    if not hasattr(fluidsynth, "Synth"):
        raise AudioUnavailableError(
            f"the module 'fluidsynth' at {getattr(fluidsynth, '__file__', '?')} is not "
            'pyfluidsynth (no Synth class): pip uninstall fluidsynth; pip install -e ".[audio]"'
        )
    return fluidsynth


def check_audio() -> None:
    """Raises :class:`AudioUnavailableError` (saying what to install) unless audio can run."""
    load_fluidsynth()
    find_soundfont()


def audio_available() -> bool:
    """Whether :func:`synthesize` can run here."""
    try:
        check_audio()
    except AudioUnavailableError:
        return False
    return True


def synthesize(
    keys: np.ndarray,
    control_timestep: float,
    *,
    sustain: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    soundfont: str | os.PathLike | None = None,
    velocity: int = VELOCITY,
    gain: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """Synthesizes a piano roll into a mono waveform.

    Args:
        keys: (T, 88) key states per control step (nonzero / True = down).
        control_timestep: seconds per row (> 0).
        sustain: optional (T,) sustain pedal per row (nonzero / True = down).
        sample_rate: samples per second.
        soundfont: a ``.sf2`` file; default :func:`find_soundfont`.
        velocity: MIDI velocity of the notes (1..127).
        gain: FluidSynth's master gain.
        normalize: scale the waveform so that its peak is 0.9 (when anything sounds at all);
            otherwise only peaks above 0.99 are scaled down.

    Returns:
        (N,) float32 samples in [-1, 1], N = round(T * control_timestep * sample_rate). Rows
        with no key down and no note still ringing are silent (FluidSynth's dither only, below
        1e-4 of full scale before normalization).

    Raises:
        ValueError: bad shapes or values. AudioUnavailableError: see :func:`load_fluidsynth`.
    """
    keys = np.asarray(keys)
    if keys.ndim != 2 or keys.shape[1] != 88:
        raise ValueError(f"keys must have shape (T, 88), got {keys.shape}")
    keys = keys.astype(bool)
    n_rows = keys.shape[0]
    if sustain is None:
        pedal = np.zeros(n_rows, bool)
    else:
        pedal = np.asarray(sustain).reshape(-1).astype(bool)
        if pedal.shape[0] != n_rows:
            raise ValueError(
                f"sustain must have shape ({n_rows},) like keys' rows, got {pedal.shape}"
            )
    if not control_timestep > 0:
        raise ValueError(f"control_timestep must be > 0 seconds, got {control_timestep}")
    if not 1 <= int(velocity) <= 127:
        raise ValueError(f"velocity must be in 1..127, got {velocity}")
    fluidsynth = load_fluidsynth()
    sf_path = Path(soundfont) if soundfont is not None else find_soundfont()
    if not sf_path.is_file():
        raise FileNotFoundError(f"soundfont {sf_path} does not exist")

    bounds = np.round(np.arange(n_rows + 1) * control_timestep * sample_rate).astype(np.int64)
    out = np.zeros(int(bounds[-1]), np.float32)
    if n_rows == 0:
        return out
    synth = fluidsynth.Synth(gain=float(gain), samplerate=float(sample_rate))
    try:
        # Dry sound: no reverb or chorus tail, so a silent roll renders exact silence.
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        sfid = synth.sfload(str(sf_path))
        if sfid < 0:
            raise ValueError(f"FluidSynth could not load the soundfont {sf_path}")
        synth.program_select(0, sfid, 0, _PROGRAM)
        previous_keys = np.zeros(88, bool)
        previous_pedal = False
        scale = 1.0 / 32768.0
        for i in range(n_rows):
            row, down = keys[i], bool(pedal[i])
            # Pedal first on a press (catches the row's notes), last on a release.
            if down and not previous_pedal:
                synth.cc(0, _SUSTAIN_CC, 127)
            for k in np.flatnonzero(previous_keys & ~row):
                synth.noteoff(0, LOWEST_MIDI_PITCH + int(k))
            for k in np.flatnonzero(row & ~previous_keys):
                synth.noteon(0, LOWEST_MIDI_PITCH + int(k), int(velocity))
            if previous_pedal and not down:
                synth.cc(0, _SUSTAIN_CC, 0)
            previous_keys, previous_pedal = row, down
            n = int(bounds[i + 1] - bounds[i])
            if n:
                stereo = np.asarray(synth.get_samples(n), dtype=np.float32).reshape(n, 2)
                out[bounds[i] : bounds[i + 1]] = stereo.mean(axis=1) * scale
    finally:
        synth.delete()
    peak = float(np.abs(out).max())
    if normalize and keys.any() and peak > 0:
        out *= 0.9 / peak
    elif peak > 0.99:
        out *= 0.99 / peak
    return out


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Writes (N,) float samples in [-1, 1] as a 16-bit mono WAV file (complete or absent)."""
    path = Path(path)
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads a 16-bit PCM WAV file: ((N,) float32 mono samples in [-1, 1], sample rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    samples = pcm.reshape(-1, channels).mean(axis=1) / 32768.0
    return samples.astype(np.float32), rate


def write_performance_audio(
    path: str | os.PathLike,
    keys: np.ndarray,
    control_timestep: float,
    *,
    sustain: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """:func:`synthesize` a piano roll and write it as a WAV file; returns the path."""
    samples = synthesize(keys, control_timestep, sustain=sustain, sample_rate=sample_rate)
    return write_wav(path, samples, sample_rate)
