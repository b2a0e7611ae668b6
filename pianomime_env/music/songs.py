"""Songs and goal trajectories.

A :class:`Song` is an immutable list of piano notes (MIDI pitch, onset/offset in seconds,
velocity, optional fingering) plus the sustain-pedal (MIDI control change 64) events. A
:class:`NoteTrajectory` is the per-control-step goal derived from a song: which of the 88
keys should be down at every step, whether the sustain pedal should be down, and which
finger should press each key.

The conversion reproduces RoboPianist 1.0.10 bit for bit (``robopianist.music.load``,
``MidiFile.stretch/transpose/trim_silence``, ``NoteTrajectory.from_midi`` and
``add_initial_buffer_time``), including its quirks:

* a note that is re-struck right after the same key was held is preceded by one step
  where that key is *not* a goal (so that a repeated note needs a release);
* ``trim_silence(mode="robopianist")`` cuts from the onset of the *first note in file
  order* to the offset of the *last note in file order* (this is what
  ``note_seq.extract_subsequence`` is called with), keeping the pedal state in force at the
  cut. The default mode, ``"all_notes"``, cuts at the earliest onset and the latest offset of
  the whole song instead, so no note of a multi-track file is ever lost;
* the song length is the latest note offset (``note_seq.transpose_note_sequence``, which
  ``robopianist.music.load`` always applies, recomputes it that way).

Deliberate differences from RoboPianist, all on inputs where RoboPianist crashes or
does something unusable:

* notes outside the 88 piano keys (A0..C8, MIDI 21..108) are dropped with a
  :func:`warnings.warn` saying how many; if nothing is left a :class:`SongError` is
  raised (RoboPianist drops them silently in ``load`` and raises in ``PianoNote``);
* percussion (drum-channel) notes are dropped with a warning;
* a MIDI file carries no fingering, so its notes get fingering ``-1`` (RoboPianist
  reports finger ``0``, i.e. the right thumb, for every such note);
* every bad input raises :class:`SongError` (a :class:`ValueError`) naming the file or
  field, what was expected and what was found.

This module imports only numpy and the standard library; MIDI files are parsed lazily
with ``pretty_midi`` (the parser that ``note_seq.midi_io`` uses). Corpus songs
(``"music21:<path>"``) come from :mod:`pianomime_env.music.corpus`; :mod:`pianomime_env.music.sources`
turns any song spec (name, path, ``music21:``, env id, corpus query) into songs.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import numpy as np

__all__ = [
    "BUILTIN_SONGS",
    "MUSIC21_PREFIX",
    "MAX_SONG_SECONDS",
    "MAX_TRAJECTORY_STEPS",
    "MIN_PIANO_PITCH",
    "MAX_PIANO_PITCH",
    "NUM_KEYS",
    "SUSTAIN_CC",
    "NoteTrajectory",
    "Song",
    "SongError",
    "MIDI_SUFFIXES",
    "SONG_NAME_RE",
    "check_shift",
    "check_song_length",
    "check_stretch",
    "load_builtin",
    "load_song_json",
    "load_midi",
    "song_from_midi_bytes",
]

MIN_PIANO_PITCH = 21  # A0
MAX_PIANO_PITCH = 108  # C8
NUM_KEYS = MAX_PIANO_PITCH - MIN_PIANO_PITCH + 1  # 88
SUSTAIN_CC = 64
_MAX_VELOCITY = 127

#: Longest song accepted by :func:`load_song` / :func:`load_midi` (after stretching) and
#: by :meth:`Song.to_trajectory` (including the initial buffer), in seconds (20 minutes).
MAX_SONG_SECONDS: float = 1200.0
#: Upper bound on the number of control steps of a trajectory (guards against tiny ``dt``).
MAX_TRAJECTORY_STEPS: int = 2_000_000

#: Songs shipped with the package (RoboPianist's debug songs, exported to JSON by
#: ``scripts/export_builtin_songs.py``).
BUILTIN_SONGS: tuple[str, ...] = (
    "TwinkleTwinkleLittleStar",
    "CMajorScaleOneHand",
    "CMajorScaleTwoHands",
    "DMajorScaleOneHand",
    "DMajorScaleTwoHands",
    "CMajorChordProgressionTwoHands",
    "TwinkleTwinkleRousseau",
    "NocturneRousseau",
)

MUSIC21_PREFIX = "music21:"
MIDI_SUFFIXES = (".mid", ".midi")
SONG_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")

PathLike = Union[str, "os.PathLike[str]"]


class SongError(ValueError):
    """A song could not be loaded or transformed (bad file, name, or parameter)."""


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _as_array(value: Any, dtype: Any, what: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise SongError(f"{where}: {what} is not array-like ({e})") from None
    if arr.ndim != 1:
        raise SongError(f"{where}: {what} must be 1-D, got shape {arr.shape}")
    if arr.size and np.issubdtype(np.dtype(dtype), np.integer):
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise SongError(f"{where}: {what} must be integers, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise SongError(f"{where}: {what} must be integers")
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise SongError(f"{where}: {what} out of range for {np.dtype(dtype).name}")
    elif arr.size and not np.issubdtype(arr.dtype, np.number):
        raise SongError(f"{where}: {what} must be numbers, got dtype {arr.dtype}")
    return arr.astype(dtype)


@dataclass(frozen=True, eq=False)
class NoteTrajectory:
    """Per-control-step goal for a song (same content as RoboPianist's trajectory).

    Attributes:
        dt: control time step in seconds.
        keys: ``(T, 88)`` float32 in {0, 1}; ``keys[t, k] == 1`` iff key ``k`` (0 = A0)
            is a goal at step ``t``. Equal to RoboPianist's ``_notes`` (including the one
            step gap before a re-struck key).
        sustain: ``(T,)`` float32 in {0, 1}; equal to RoboPianist's ``_sustains``.
        fingering: ``(T, 88)`` int8; finger for each goal key (0-4 right thumb..little,
            5-9 left thumb..little), ``-1`` where the key is not a goal or the finger is
            unknown.
        velocity: ``(T, 88)`` int16 MIDI velocity of each goal key, 0 elsewhere.
    """

    dt: float
    keys: np.ndarray
    sustain: np.ndarray
    fingering: np.ndarray
    velocity: np.ndarray

    def __len__(self) -> int:
        return int(self.keys.shape[0])


@dataclass(frozen=True, eq=False)
class Song:
    """An immutable piano piece.

    Notes are kept in *file order* (the order of RoboPianist's ``NoteSequence``), which
    matters for :meth:`trim_silence` and for which of two overlapping same-key notes wins.

    Attributes:
        name: short name (built-in name, file stem, or corpus path).
        pitch: ``(N,)`` int16 MIDI pitch, all within 21..108 (A0..C8).
        start, end: ``(N,)`` float64 onset / offset in seconds (``0 <= start <= end``).
        velocity: ``(N,)`` int16 MIDI velocity in 1..127.
        fingering: ``(N,)`` int8, -1 unknown, 0-4 right thumb..little, 5-9 left.
        sustain_time: ``(M,)`` float64 times of the sustain (CC64) events, file order.
        sustain_value: ``(M,)`` int16 CC64 values 0..127 (>= 64 means pedal down).
        source: ``"builtin"``, a file path, ``"music21:<corpus path>"`` or ``"memory"``.
        sustain_instrument: ``(M,)`` int16 index of the MIDI track (pretty_midi
            instrument) each pedal event came from; only used by :meth:`trim_silence`,
            which keeps the last pedal state of every track. Defaults to zeros.
        title: optional human readable title.
    """

    name: str
    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    fingering: np.ndarray
    sustain_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sustain_value: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    source: str = "memory"
    sustain_instrument: np.ndarray | None = None
    title: str = ""

    def __post_init__(self) -> None:
        where = f"song {self.name!r} ({self.source})"
        pitch = _as_array(self.pitch, np.int16, "pitch", where)
        start = _as_array(self.start, np.float64, "start", where)
        end = _as_array(self.end, np.float64, "end", where)
        velocity = _as_array(self.velocity, np.int16, "velocity", where)
        fingering = _as_array(self.fingering, np.int8, "fingering", where)
        n = pitch.shape[0]
        for what, arr in (("start", start), ("end", end), ("velocity", velocity)):
            if arr.shape[0] != n:
                raise SongError(f"{where}: {what} has {arr.shape[0]} entries, pitch has {n}")
        if fingering.shape[0] != n:
            raise SongError(f"{where}: fingering has {fingering.shape[0]} entries, pitch has {n}")
        if n == 0:
            raise SongError(f"{where}: the song has no notes")
        if pitch.min() < MIN_PIANO_PITCH or pitch.max() > MAX_PIANO_PITCH:
            bad = pitch[(pitch < MIN_PIANO_PITCH) | (pitch > MAX_PIANO_PITCH)]
            raise SongError(
                f"{where}: pitch must be within the 88 piano keys "
                f"[{MIN_PIANO_PITCH}, {MAX_PIANO_PITCH}], got {sorted(set(bad.tolist()))[:10]}"
            )
        if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
            raise SongError(f"{where}: note times must be finite")
        if start.min() < 0:
            raise SongError(f"{where}: note start times must be >= 0, got {start.min()}")
        if np.any(end < start):
            i = int(np.flatnonzero(end < start)[0])
            raise SongError(f"{where}: note {i} ends ({end[i]}) before it starts ({start[i]})")
        if velocity.min() < 1 or velocity.max() > _MAX_VELOCITY:
            raise SongError(
                f"{where}: velocity must be in [1, 127], got [{velocity.min()}, {velocity.max()}]"
            )
        if fingering.min() < -1 or fingering.max() > 9:
            raise SongError(
                f"{where}: fingering must be -1 (unknown) or 0..9, "
                f"got [{fingering.min()}, {fingering.max()}]"
            )
        st = _as_array(self.sustain_time, np.float64, "sustain_time", where)
        sv = _as_array(self.sustain_value, np.int16, "sustain_value", where)
        si = (
            np.zeros(st.shape[0], np.int16)
            if self.sustain_instrument is None
            else _as_array(self.sustain_instrument, np.int16, "sustain_instrument", where)
        )
        if sv.shape[0] != st.shape[0] or si.shape[0] != st.shape[0]:
            raise SongError(
                f"{where}: sustain_time/sustain_value/sustain_instrument lengths differ "
                f"({st.shape[0]}, {sv.shape[0]}, {si.shape[0]})"
            )
        if st.size:
            if not np.all(np.isfinite(st)) or st.min() < 0:
                raise SongError(f"{where}: sustain times must be finite and >= 0")
            if sv.min() < 0 or sv.max() > 127:
                raise SongError(
                    f"{where}: sustain values must be in [0, 127], got [{sv.min()}, {sv.max()}]"
                )
        for attr, arr in (
            ("pitch", pitch),
            ("start", start),
            ("end", end),
            ("velocity", velocity),
            ("fingering", fingering),
            ("sustain_time", st),
            ("sustain_value", sv),
            ("sustain_instrument", si),
        ):
            object.__setattr__(self, attr, _ro(arr))

    # ------------------------------------------------------------------ accessors

    @property
    def duration(self) -> float:
        """Length in seconds: the latest note offset (RoboPianist's ``total_time``)."""
        return float(self.end.max())

    @property
    def n_notes(self) -> int:
        return int(self.pitch.shape[0])

    @property
    def has_fingering(self) -> bool:
        """True if at least one note has a known finger."""
        return bool(np.any(self.fingering >= 0))

    def __repr__(self) -> str:
        return (
            f"Song(name={self.name!r}, n_notes={self.n_notes}, duration={self.duration:.3f}s, "
            f"has_fingering={self.has_fingering}, source={self.source!r})"
        )

    def _replace(self, **changes: Any) -> Song:
        kw = dict(
            name=self.name,
            pitch=self.pitch,
            start=self.start,
            end=self.end,
            velocity=self.velocity,
            fingering=self.fingering,
            sustain_time=self.sustain_time,
            sustain_value=self.sustain_value,
            source=self.source,
            sustain_instrument=self.sustain_instrument,
            title=self.title,
        )
        kw.update(changes)
        return Song(**kw)

    # ---------------------------------------------------------------- transforms

    def stretch(self, factor: float) -> Song:
        """Scale all times by ``factor`` (> 1 slower), like ``MidiFile.stretch``."""
        factor = check_stretch(factor, self.source)
        if factor == 1.0:
            return self
        return self._replace(
            start=self.start * factor,
            end=self.end * factor,
            sustain_time=self.sustain_time * factor,
        )

    def transpose(self, semitones: int) -> Song:
        """Shift pitches by ``semitones``, like ``MidiFile.transpose``.

        Notes that leave the 88 keys are dropped (with a warning); raises
        :class:`SongError` if no note is left.
        """
        semitones = check_shift(semitones, self.source)
        if semitones == 0:
            return self
        new_pitch = self.pitch.astype(np.int32) + semitones
        keep = (new_pitch >= MIN_PIANO_PITCH) & (new_pitch <= MAX_PIANO_PITCH)
        if not keep.any():
            raise SongError(
                f"{self.source}: transposing {self.name!r} by {semitones} semitones moves "
                f"all {self.n_notes} notes outside the piano range A0..C8"
            )
        if not keep.all():
            warnings.warn(
                f"{self.source}: transposing {self.name!r} by {semitones} semitones drops "
                f"{int((~keep).sum())} of {self.n_notes} notes outside the piano range A0..C8",
                stacklevel=2,
            )
        return self._replace(
            pitch=new_pitch[keep],
            start=self.start[keep],
            end=self.end[keep],
            velocity=self.velocity[keep],
            fingering=self.fingering[keep],
        )

    def trim_silence(self, mode: str = "all_notes") -> Song:
        """Remove leading and trailing silence.

        Keeps the notes whose onset lies in ``[s, e)``, clips their offsets at ``e`` and shifts
        everything by ``-s``; the pedal state in force at ``s`` (per track) is re-inserted at
        time 0.

        Args:
            mode: ``"all_notes"`` (default): ``s`` is the earliest onset and ``e`` the latest
                offset of the whole song, so every note is kept, whatever the track order of
                the file. ``"robopianist"``: RoboPianist's ``MidiFile.trim_silence`` exactly:
                ``s`` / ``e`` are the onset of the first and the offset of the last note *in
                file order* (note_seq's quirk). On a multi-track file whose first track ends
                last this drops the other tracks' closing notes; use it only for parity with
                RoboPianist.
        """
        if mode == "all_notes":
            s, e = float(self.start.min()), float(self.end.max())
        elif mode == "robopianist":
            s, e = float(self.start[0]), float(self.end[-1])
        else:
            raise SongError(
                f"{self.source}: trim_silence mode must be 'all_notes' or 'robopianist', "
                f"got {mode!r}"
            )
        if s > e or s >= self.duration:
            raise SongError(
                f"{self.source}: cannot trim silence of {self.name!r} (mode {mode!r}): the "
                f"cut would start at {s} s, after it ends at {e} s"
            )
        order = np.argsort(self.start, kind="stable")
        st = self.start[order]
        keep = order[(st >= s) & (st < e)]
        if keep.size == 0:
            raise SongError(f"{self.source}: trimming silence of {self.name!r} leaves no notes")
        new_start = self.start[keep] - s
        new_end = np.minimum(self.end[keep], e) - s

        # Pedal events: port of note_seq.sequences_lib._extract_subsequences.
        times = self.sustain_time
        sorder = np.argsort(times, kind="stable")
        previous: dict[int, tuple[float, int, int]] = {}
        out: list[tuple[float, int, int]] = []
        idx = -1
        split = (s, e)
        for j in sorder:
            t = float(times[j])
            ev = (t, int(self.sustain_value[j]), int(self.sustain_instrument[j]))
            if t <= s:
                previous[ev[2]] = ev
                continue
            while idx < 1 and t > split[idx + 1]:
                idx += 1
                if idx == 1:
                    break
                out.extend((0.0, p[1], p[2]) for p in previous.values())
            if idx == 1:
                break
            if t < e:
                out.append((t - s, ev[1], ev[2]))
            previous[ev[2]] = ev
        while idx < 0:
            idx += 1
            out.extend((0.0, p[1], p[2]) for p in previous.values())

        return self._replace(
            pitch=self.pitch[keep],
            start=new_start,
            end=new_end,
            velocity=self.velocity[keep],
            fingering=self.fingering[keep],
            sustain_time=np.array([o[0] for o in out], np.float64),
            sustain_value=np.array([o[1] for o in out], np.int16),
            sustain_instrument=np.array([o[2] for o in out], np.int16),
        )

    # ---------------------------------------------------------------- trajectory

    def to_trajectory(self, dt: float = 0.05, initial_buffer_time: float = 0.0) -> NoteTrajectory:
        """Discretize into a goal trajectory with control step ``dt`` seconds.

        Equal to RoboPianist's ``NoteTrajectory.from_midi(midi, dt)
        .add_initial_buffer_time(initial_buffer_time)``.
        """
        dt = _check_positive_float(dt, "dt", self.source)
        ibt = _check_nonneg_float(initial_buffer_time, "initial_buffer_time", self.source)
        if self.duration + ibt > MAX_SONG_SECONDS:
            raise SongError(
                f"{self.source}: song {self.name!r} lasts {self.duration + ibt:.1f} s "
                f"(with initial buffer), more than MAX_SONG_SECONDS={MAX_SONG_SECONDS:g}"
            )
        fps = 1.0 / dt
        n_frames = int(self.duration * fps + 1)
        n_buffer = int(round(ibt / dt))
        if n_frames + n_buffer > MAX_TRAJECTORY_STEPS:
            raise SongError(
                f"{self.source}: dt={dt} gives {n_frames + n_buffer} control steps, more than "
                f"MAX_TRAJECTORY_STEPS={MAX_TRAJECTORY_STEPS}"
            )

        # Port of robopianist.music.piano_roll.sequence_to_pianoroll (onset_window=0).
        vel = np.zeros((n_frames, NUM_KEYS), np.int16)
        onset = np.zeros((n_frames, NUM_KEYS), bool)
        fing = np.full((n_frames, NUM_KEYS), -1, np.int8)
        order = np.argsort(self.start, kind="stable")
        start_f = np.floor(self.start * fps).astype(np.int64)
        end_f = np.maximum(start_f + 1, np.ceil(self.end * fps).astype(np.int64))
        col = self.pitch.astype(np.int64) - MIN_PIANO_PITCH
        for i in order.tolist():
            sf, ef, k = int(start_f[i]), int(end_f[i]), int(col[i])
            onset[sf, k] = True
            vel[sf:ef, k] = self.velocity[i]
            fing[sf:ef, k] = self.fingering[i]
        active = vel != 0
        goal = active.copy()
        # A key held at t-1 and re-struck at t is not a goal at t.
        goal[1:] &= ~(active[:-1] & onset[1:])

        cc = np.zeros(n_frames, np.int16)
        if self.sustain_time.size:
            frames = np.floor(self.sustain_time * fps).astype(np.int64)
            for f, v in zip(frames.tolist(), self.sustain_value.tolist()):
                if f < n_frames:
                    cc[f] = v + 1
        # Carry the pedal state forward (value >= 64 down, < 64 up; 0 before any event).
        sustain = np.zeros(n_frames, np.float32)
        events = np.flatnonzero(cc)
        for a, b in zip(events.tolist(), events[1:].tolist() + [n_frames]):
            sustain[a:b] = 1.0 if cc[a] >= SUSTAIN_CC + 1 else 0.0

        keys = goal.astype(np.float32)
        fingering = np.where(goal, fing, np.int8(-1)).astype(np.int8)
        velocity = np.where(goal, vel, np.int16(0)).astype(np.int16)
        if n_buffer:
            keys = np.concatenate([np.zeros((n_buffer, NUM_KEYS), np.float32), keys])
            sustain = np.concatenate([np.zeros(n_buffer, np.float32), sustain])
            fingering = np.concatenate([np.full((n_buffer, NUM_KEYS), -1, np.int8), fingering])
            velocity = np.concatenate([np.zeros((n_buffer, NUM_KEYS), np.int16), velocity])
        return NoteTrajectory(
            dt=dt, keys=keys, sustain=sustain, fingering=fingering, velocity=velocity
        )


# -------------------------------------------------------------------- validation


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def check_stretch(factor: Any, where: str) -> float:
    if not _is_real(factor) or not math.isfinite(float(factor)) or float(factor) <= 0:
        raise SongError(f"{where}: stretch must be a finite number > 0, got {factor!r}")
    return float(factor)


def check_shift(shift: Any, where: str) -> int:
    if not _is_real(shift) or not math.isfinite(float(shift)) or float(shift) != int(shift):
        raise SongError(f"{where}: shift must be an integer number of semitones, got {shift!r}")
    return int(shift)


def _check_positive_float(x: Any, what: str, where: str) -> float:
    if not _is_real(x) or not math.isfinite(float(x)) or float(x) <= 0:
        raise SongError(f"{where}: {what} must be a finite number > 0, got {x!r}")
    return float(x)


def _check_nonneg_float(x: Any, what: str, where: str) -> float:
    if not _is_real(x) or not math.isfinite(float(x)) or float(x) < 0:
        raise SongError(f"{where}: {what} must be a finite number >= 0, got {x!r}")
    return float(x)


def check_song_length(song: Song, where: str) -> Song:
    """Returns ``song``; raises :class:`SongError` (naming ``where``) if it lasts longer than
    :data:`MAX_SONG_SECONDS`."""
    if song.duration > MAX_SONG_SECONDS:
        raise SongError(
            f"{where}: song {song.name!r} lasts {song.duration:.1f} s, more than "
            f"MAX_SONG_SECONDS={MAX_SONG_SECONDS:g} ({MAX_SONG_SECONDS / 60:g} min)"
        )
    return song


def _drop_out_of_range(
    pitch: np.ndarray, arrays: list[np.ndarray], where: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    keep = (pitch >= MIN_PIANO_PITCH) & (pitch <= MAX_PIANO_PITCH)
    if not keep.any():
        raise SongError(
            f"{where}: all {pitch.size} notes are outside the 88 piano keys "
            f"A0..C8 (MIDI {MIN_PIANO_PITCH}..{MAX_PIANO_PITCH})"
        )
    if not keep.all():
        warnings.warn(
            f"{where}: dropped {int((~keep).sum())} of {pitch.size} notes outside the 88 "
            f"piano keys A0..C8 (MIDI {MIN_PIANO_PITCH}..{MAX_PIANO_PITCH})",
            stacklevel=3,
        )
    return pitch[keep], [a[keep] for a in arrays]


# ------------------------------------------------------------------------ MIDI


def _song_from_pretty_midi(pm: Any, name: str, source: str, where: str) -> Song:
    """Convert a ``pretty_midi.PrettyMIDI`` exactly like ``note_seq.midi_io``."""
    pitch, start, end, vel = [], [], [], []
    st, sv, si = [], [], []
    n_drum = 0
    for num, inst in enumerate(pm.instruments):
        for note in inst.notes:
            if inst.is_drum:
                n_drum += 1
                continue
            pitch.append(note.pitch)
            start.append(note.start)
            end.append(note.end)
            vel.append(note.velocity)
        for cc in inst.control_changes:
            if cc.number == SUSTAIN_CC:
                st.append(cc.time)
                sv.append(cc.value)
                si.append(num)
    if n_drum:
        warnings.warn(f"{where}: dropped {n_drum} percussion (drum channel) notes", stacklevel=3)
    if not pitch:
        raise SongError(f"{where}: the MIDI file contains no (non-percussion) notes")
    p = np.asarray(pitch, np.int64)
    p, (s, e, v) = _drop_out_of_range(
        p, [np.asarray(start, np.float64), np.asarray(end, np.float64), np.asarray(vel)], where
    )
    if np.any(v < 1):  # pretty_midi treats velocity-0 note-ons as note-offs; be safe.
        keep = v >= 1
        p, s, e, v = p[keep], s[keep], e[keep], v[keep]
    return Song(
        name=name,
        pitch=p,
        start=s,
        end=e,
        velocity=v,
        fingering=np.full(p.shape[0], -1, np.int8),
        sustain_time=np.asarray(st, np.float64),
        sustain_value=np.asarray(sv, np.int16),
        sustain_instrument=np.asarray(si, np.int16),
        source=source,
        title=name,
    )


def load_midi(path: PathLike) -> Song:
    """Load a Standard MIDI file (``.mid`` / ``.midi``) as a :class:`Song`.

    Parsing follows ``note_seq.midi_io.midi_file_to_note_sequence`` (pretty_midi): notes
    of all tracks in track order, sustain = control change 64 of all tracks. Notes outside
    the 88 piano keys and drum-channel notes are dropped with a warning; fingering is
    unknown (-1).

    Raises:
        SongError: missing / empty / unreadable / non-MIDI file, no notes, no notes on
            the piano range, or longer than :data:`MAX_SONG_SECONDS`.
    """
    p = Path(os.fspath(path))
    where = str(p)
    if not p.exists():
        raise SongError(f"{where}: MIDI file not found")
    if not p.is_file():
        raise SongError(f"{where}: not a file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SongError(f"{where}: cannot read MIDI file ({e})") from None
    return check_song_length(song_from_midi_bytes(data, p.stem, where, where), where)


def song_from_midi_bytes(data: bytes, name: str, source: str, where: str) -> Song:
    """Parses a Standard MIDI file's bytes into a :class:`Song` named ``name`` (``source`` is
    recorded on it; ``where`` names the input in error messages). Raises :class:`SongError`."""
    if len(data) == 0:
        raise SongError(f"{where}: the MIDI file is empty (0 bytes)")
    if not (data[:4] == b"MThd" or data[:4] == b"RIFF"):
        raise SongError(
            f"{where}: not a Standard MIDI file (expected the 'MThd' header, got {data[:4]!r})"
        )
    import pretty_midi  # lazy: ~0.2 s

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about type-0 files etc.
            import io

            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as e:
        raise SongError(f"{where}: corrupt MIDI file ({type(e).__name__}: {e})") from None
    return _song_from_pretty_midi(pm, name, source, where)


# ------------------------------------------------------------------------ JSON


def _song_from_json(obj: Any, name: str, source: str, where: str) -> Song:
    try:
        notes = obj["notes"]
        sustain = obj.get("sustain", {"time": [], "value": [], "instrument": []})
        return Song(
            name=name,
            pitch=notes["pitch"],
            start=notes["start"],
            end=notes["end"],
            velocity=notes["velocity"],
            fingering=notes["fingering"],
            sustain_time=np.asarray(sustain["time"], np.float64),
            sustain_value=np.asarray(sustain["value"], np.int16),
            sustain_instrument=sustain.get("instrument") or None,
            source=source,
            title=str(obj.get("title", name)),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise SongError(f"{where}: malformed song JSON (missing or bad field {e})") from None


def load_builtin(name: str) -> Song:
    text = resources.files("pianomime_env").joinpath("data", "songs", f"{name}.json").read_text()
    return _song_from_json(json.loads(text), name, "builtin", f"built-in song {name!r}")


def load_song_json(p: Path) -> Song:
    where = str(p)
    try:
        text = p.read_text()
    except OSError as e:
        raise SongError(f"{where}: cannot read ({e})") from None
    if not text.strip():
        raise SongError(f"{where}: the song file is empty")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise SongError(f"{where}: not valid JSON ({e})") from None
    return _song_from_json(obj, p.stem, where, where)
