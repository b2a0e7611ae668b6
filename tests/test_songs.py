"""Tests for pianomime_env.music.songs: exact agreement with RoboPianist + input validation."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pianomime_env.music import songs, sources
from pianomime_env.music.songs import (
    BUILTIN_SONGS,
    MAX_SONG_SECONDS,
    NoteTrajectory,
    Song,
    SongError,
    load_midi,
)
from pianomime_env.music.sources import load_song, register_song, registered_songs

pretty_midi = pytest.importorskip("pretty_midi")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def rp():
    """robopianist.music and midi_file (slow import, so only once)."""
    pytest.importorskip("robopianist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from robopianist import music
        from robopianist.music import midi_file
    return music, midi_file


def rp_roll(midi_file, midi, dt: float, initial_buffer_time: float = 0.0):
    """RoboPianist's `_notes`/`_sustains` as dense arrays (like `_reset_trajectory`)."""
    traj = midi_file.NoteTrajectory.from_midi(midi, dt)
    traj.add_initial_buffer_time(initial_buffer_time)
    t_len = len(traj.notes)
    keys = np.zeros((t_len, 88), np.float32)
    fing = np.full((t_len, 88), -1, np.int8)
    vel = np.zeros((t_len, 88), np.int16)
    for t, notes in enumerate(traj.notes):
        for n in notes:
            keys[t, n.key] = 1.0
            fing[t, n.key] = n.fingering
            vel[t, n.key] = n.velocity
    return keys, np.asarray(traj.sustains, np.float32), fing, vel


def assert_same_traj(ours: NoteTrajectory, ref, *, fingering_known: bool = True) -> None:
    keys, sustain, fing, vel = ref
    assert isinstance(ours, NoteTrajectory)
    assert len(ours) == keys.shape[0]
    assert ours.keys.dtype == np.float32 and ours.keys.shape == keys.shape
    assert ours.sustain.dtype == np.float32
    assert ours.fingering.dtype == np.int8 and ours.velocity.dtype == np.int16
    np.testing.assert_array_equal(ours.keys, keys)
    np.testing.assert_array_equal(ours.sustain, sustain)
    np.testing.assert_array_equal(ours.velocity, vel)
    if fingering_known:
        np.testing.assert_array_equal(ours.fingering, fing)
    else:
        # RoboPianist reports finger 0 for every note of a file without fingering; we -1.
        np.testing.assert_array_equal(ours.fingering, np.where(keys > 0, -1, fing))
        assert np.all(fing[keys > 0] == 0)


def assert_same_song(ours: Song, seq) -> None:
    """Our Song holds the same notes/pedal events (same order) as a NoteSequence."""
    np.testing.assert_array_equal(ours.pitch, [n.pitch for n in seq.notes])
    np.testing.assert_array_equal(ours.start, [n.start_time for n in seq.notes])
    np.testing.assert_array_equal(ours.end, [n.end_time for n in seq.notes])
    np.testing.assert_array_equal(ours.velocity, [n.velocity for n in seq.notes])
    ccs = [c for c in seq.control_changes if c.control_number == 64]
    np.testing.assert_array_equal(ours.sustain_time, [c.time for c in ccs])
    np.testing.assert_array_equal(ours.sustain_value, [c.control_value for c in ccs])
    assert ours.duration == pytest.approx(seq.total_time, abs=0)


def write_midi(path: Path, notes_by_track, ccs_by_track=None) -> Path:
    """notes_by_track: list of lists of (pitch, start, end, velocity)."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    ccs_by_track = ccs_by_track or [[] for _ in notes_by_track]
    for i, (notes, ccs) in enumerate(zip(notes_by_track, ccs_by_track)):
        inst = pretty_midi.Instrument(program=0, name=f"track{i}")
        for p, s, e, v in notes:
            inst.notes.append(pretty_midi.Note(velocity=v, pitch=p, start=s, end=e))
        for t, v in ccs:
            inst.control_changes.append(pretty_midi.ControlChange(64, v, t))
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


def handmade_midi(path: Path) -> Path:
    rh = [
        # leading silence, chord, repeated notes (touching), overlapping same pitch
        (72, 1.23, 1.71, 90),
        (76, 1.23, 1.71, 80),
        (79, 1.23, 1.90, 70),
        (72, 1.71, 2.20, 100),  # re-strike immediately
        (72, 2.20, 2.21, 60),  # very short, re-strike again
        (74, 2.40, 3.10, 64),
        (74, 2.90, 3.60, 30),  # overlaps the previous D5
        (108, 3.0, 3.3, 50),  # C8
        (21, 3.1, 3.2, 127),  # A0
        (77, 3.61, 4.02, 1),
    ]
    lh = [
        (48, 0.95, 2.0, 70),  # starts before the first RH note (trim quirk)
        (55, 1.0, 2.0, 70),
        (48, 2.0, 2.5, 70),
        (43, 2.5, 4.4, 70),  # ends after the last RH note
    ]
    ccs_rh = [(0.5, 127), (1.7, 0), (1.72, 100), (2.9, 63), (3.05, 64), (3.7, 0)]
    ccs_lh = [(0.2, 90), (1.23, 10), (4.0, 127)]
    return write_midi(path, [rh, lh], [ccs_rh, ccs_lh])


# ------------------------------------------------------------------- built-in songs


def test_builtin_names_match_robopianist(rp):
    music, _ = rp
    assert set(BUILTIN_SONGS) == set(music.DEBUG_MIDIS)
    assert len(BUILTIN_SONGS) == 8


@pytest.mark.parametrize("name", BUILTIN_SONGS)
def test_builtin_song_content(rp, name):
    music, _ = rp
    song = load_song(name)
    midi = music.load(name)
    assert_same_song(song, midi.seq)
    np.testing.assert_array_equal(song.fingering, [n.part for n in midi.seq.notes])
    assert song.has_fingering == midi.has_fingering()
    assert song.n_notes == midi.n_notes
    assert song.source == "builtin" and song.name == name


@pytest.mark.parametrize("name", BUILTIN_SONGS)
@pytest.mark.parametrize("stretch", [1.0, 1.5, 0.75])
@pytest.mark.parametrize("shift", [0, 3, -2])
@pytest.mark.parametrize("trim", [False, True])
@pytest.mark.parametrize("buffer", [0.0, 0.5])
def test_builtin_trajectory_matches_robopianist(rp, name, stretch, shift, trim, buffer):
    music, midi_file = rp
    midi = music.load(name, stretch=stretch, shift=shift)
    song = load_song(name, stretch=stretch, shift=shift)
    if trim:
        midi = midi.trim_silence()
        song = song.trim_silence("robopianist")
    assert_same_song(song, midi.seq)
    ours = song.to_trajectory(0.05, initial_buffer_time=buffer)
    assert_same_traj(ours, rp_roll(midi_file, midi, 0.05, buffer))
    assert ours.dt == 0.05


@pytest.mark.parametrize("name", BUILTIN_SONGS)
@pytest.mark.parametrize("dt", [0.01, 0.02, 0.033, 0.1])
def test_builtin_trajectory_other_dt(rp, name, dt):
    music, midi_file = rp
    midi = music.load(name)
    assert_same_traj(load_song(name).to_trajectory(dt, 0.25), rp_roll(midi_file, midi, dt, 0.25))


def test_trajectory_has_repeated_note_gap():
    traj = load_song("TwinkleTwinkleLittleStar").to_trajectory(0.05)
    c4 = 60 - 21
    # Two C4 notes 0-0.5 s and 0.5-1.0 s: steps 0-9 on, step 10 off (gap), 11-19 on.
    assert traj.keys[:10, c4].all() and traj.keys[10, c4] == 0 and traj.keys[11:20, c4].all()
    assert set(np.unique(traj.fingering[traj.keys > 0])) <= set(range(10))
    assert np.all(traj.fingering[traj.keys == 0] == -1)
    assert np.all(traj.velocity[traj.keys == 0] == 0)
    assert np.all(traj.velocity[traj.keys > 0] == 80)


def test_velocity_rounding_matches_robopianist():
    # robopianist: int(round(float32(v / 127) * 127)) must give back v for every velocity.
    for v in range(1, 128):
        arr = np.zeros(1, np.float32)
        arr[0] = v / 127
        assert int(round(arr[0] * 127)) == v


# ------------------------------------------------------------------------ MIDI files


@pytest.mark.parametrize("stretch", [1.0, 1.3, 0.6])
@pytest.mark.parametrize("shift", [0, 5, -4])
@pytest.mark.parametrize("trim", [False, True])
def test_midi_file_matches_robopianist(rp, tmp_path, stretch, shift, trim):
    music, midi_file = rp
    path = handmade_midi(tmp_path / "handmade.mid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # our warnings about notes leaving the keyboard
        song = load_song(path, stretch=stretch, shift=shift)
    midi = midi_file.MidiFile.from_file(path).stretch(stretch).transpose(shift)
    if trim:
        song, midi = song.trim_silence("robopianist"), midi.trim_silence()
    assert_same_song(song, midi.seq)
    assert not song.has_fingering
    for dt, buffer in [(0.05, 0.0), (0.05, 1.0), (0.02, 0.3)]:
        assert_same_traj(
            song.to_trajectory(dt, buffer),
            rp_roll(midi_file, midi, dt, buffer),
            fingering_known=False,
        )


def test_midi_fixture_sustain_is_exercised(tmp_path):
    traj = load_song(handmade_midi(tmp_path / "h.mid")).to_trajectory(0.05)
    assert 0 < traj.sustain.sum() < len(traj)
    assert traj.keys[:, 0].any() and traj.keys[:, 87].any()  # A0 and C8


@pytest.mark.parametrize("seed", range(4))
def test_random_midi_matches_robopianist(rp, tmp_path, seed):
    music, midi_file = rp
    rng = np.random.default_rng(seed)
    tracks, ccs = [], []
    for _ in range(2):
        n = 60
        start = np.round(rng.uniform(0, 12, n), 3)
        dur = rng.choice([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0], n)
        pitch = rng.integers(30, 100, n)
        vel = rng.integers(1, 128, n)
        tracks.append(
            [(int(p), float(s), float(s + d), int(v)) for p, s, d, v in zip(pitch, start, dur, vel)]
        )
        ct = np.sort(np.round(rng.uniform(0, 13, 8), 3))
        ccs.append([(float(t), int(v)) for t, v in zip(ct, rng.integers(0, 128, 8))])
    path = write_midi(tmp_path / f"random{seed}.midi", tracks, ccs)
    from note_seq import midi_io  # robopianist's from_file only accepts ".mid"

    seq_midi = midi_file.MidiFile(seq=midi_io.midi_file_to_note_sequence(str(path)))
    for stretch, shift, trim in [(1.0, 0, False), (1.0, 0, True), (1.7, 9, True), (0.8, -7, False)]:
        midi = seq_midi.stretch(stretch).transpose(shift)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            song = load_song(path, stretch=stretch, shift=shift)
        if trim:
            midi, song = midi.trim_silence(), song.trim_silence("robopianist")
        assert_same_song(song, midi.seq)
        assert_same_traj(
            song.to_trajectory(0.05, 0.1),
            rp_roll(midi_file, midi, 0.05, 0.1),
            fingering_known=False,
        )


def test_out_of_range_pitches_dropped_with_warning(rp, tmp_path):
    music, midi_file = rp
    path = write_midi(
        tmp_path / "wide.mid", [[(10, 0.0, 0.5, 80), (60, 0.5, 1.0, 80), (120, 1.0, 2.0, 80)]]
    )
    with pytest.warns(UserWarning, match=r"dropped 2 of 3 notes outside the 88 piano keys"):
        song = load_midi(path)
    assert song.pitch.tolist() == [60]
    midi = music.load(path)  # robopianist drops them silently (transpose(0))
    assert_same_song(song, midi.seq)
    assert_same_traj(song.to_trajectory(), rp_roll(midi_file, midi, 0.05), fingering_known=False)


def test_transpose_drops_and_warns():
    song = load_song("CMajorScaleOneHand")  # C6..C7 = MIDI 72..84
    with pytest.warns(UserWarning, match="drops"):
        t = song.transpose(30)  # 102..114: only pitches <= 108 stay
    assert t.pitch.max() <= 108 and 0 < t.n_notes < song.n_notes
    with pytest.raises(SongError, match="outside the piano range"):
        song.transpose(60)


def test_song_transforms_are_pure():
    song = load_song("NocturneRousseau")
    before = song.start.copy()
    song.stretch(2.0)
    song.trim_silence()
    np.testing.assert_array_equal(song.start, before)
    assert song.stretch(2.0).duration == pytest.approx(2 * song.duration)
    assert song.stretch(1.0) is song and song.transpose(0) is song
    with pytest.raises(ValueError):
        song.pitch[0] = 1  # read-only arrays


# -------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    p = tmp_path / "nope.mid"
    with pytest.raises(SongError, match=r"nope\.mid.*not found"):
        load_song(p)
    with pytest.raises(SongError, match="not found"):
        load_midi(str(p))


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mid"
    p.write_bytes(b"")
    with pytest.raises(SongError, match=r"empty\.mid.*empty"):
        load_song(p)


def test_text_file_named_mid(tmp_path):
    p = tmp_path / "notes.mid"
    p.write_text("this is not a midi file\n")
    with pytest.raises(SongError, match=r"notes\.mid.*not a Standard MIDI file"):
        load_song(str(p))


def test_truncated_midi(tmp_path):
    good = handmade_midi(tmp_path / "good.mid").read_bytes()
    p = tmp_path / "truncated.mid"
    p.write_bytes(good[:30])
    with pytest.raises(SongError, match=r"truncated\.mid.*corrupt MIDI"):
        load_song(p)


def test_midi_without_notes(tmp_path):
    p = write_midi(tmp_path / "silent.mid", [[]], [[(0.5, 127)]])
    with pytest.raises(SongError, match=r"silent\.mid.*no .*notes"):
        load_song(p)


def test_midi_only_out_of_range(tmp_path):
    p = write_midi(tmp_path / "high.mid", [[(115, 0.0, 1.0, 80)]])
    with pytest.raises(SongError, match=r"high\.mid.*outside the 88 piano keys"):
        load_song(p)


def test_song_too_long(tmp_path):
    p = write_midi(tmp_path / "long.mid", [[(60, 0.0, 1.0, 80), (62, 1300.0, 1301.0, 80)]])
    with pytest.raises(SongError, match=r"long\.mid.*MAX_SONG_SECONDS"):
        load_song(p)
    short = write_midi(tmp_path / "short.mid", [[(60, 0.0, 700.0, 80)]])
    assert load_song(short).duration == pytest.approx(700.0, abs=1e-3)
    with pytest.raises(SongError, match="MAX_SONG_SECONDS"):
        load_song(short, stretch=2.0)
    assert MAX_SONG_SECONDS == 1200.0


def test_unsupported_extension(tmp_path):
    p = tmp_path / "song.txt"
    p.write_text("x")
    with pytest.raises(SongError, match=r"song\.txt.*unsupported"):
        load_song(p)


@pytest.mark.parametrize("stretch", [0, -1.0, float("nan"), float("inf"), "2", True, None])
def test_bad_stretch(stretch):
    with pytest.raises(SongError, match="stretch"):
        load_song("CMajorScaleOneHand", stretch=stretch)


@pytest.mark.parametrize("shift", [1.5, "2", float("nan"), None, True])
def test_bad_shift(shift):
    with pytest.raises(SongError, match="shift"):
        load_song("CMajorScaleOneHand", shift=shift)


def test_integral_float_shift_ok():
    assert load_song("CMajorScaleOneHand", shift=2.0).pitch[0] == 74


@pytest.mark.parametrize("dt", [0, -0.05, float("nan"), float("inf"), "0.05", None, 1e-9])
def test_bad_dt(dt):
    with pytest.raises(SongError, match="dt"):
        load_song("CMajorScaleOneHand").to_trajectory(dt)


@pytest.mark.parametrize("buffer", [-0.1, float("nan"), "1"])
def test_bad_initial_buffer(buffer):
    with pytest.raises(SongError, match="initial_buffer_time"):
        load_song("CMajorScaleOneHand").to_trajectory(0.05, buffer)


def test_unknown_name_suggests():
    with pytest.raises(SongError) as ei:
        load_song("TwinkleTwinkleLittleStr")
    msg = str(ei.value)
    assert "Did you mean 'TwinkleTwinkleLittleStar'" in msg
    assert "NocturneRousseau" in msg  # lists available names
    with pytest.raises(SongError, match="Did you mean 'NocturneRousseau'"):
        load_song("nocturnerousseau")


def test_bad_song_fields():
    kw = dict(name="x", pitch=[60], start=[0.0], end=[1.0], velocity=[80], fingering=[0])
    Song(**kw)
    for field, value, match in [
        ("pitch", [200], "pitch"),
        ("start", [-1.0], "start"),
        ("end", [-0.5], "ends"),
        ("velocity", [0], "velocity"),
        ("fingering", [10], "fingering"),
        ("pitch", [], "entries"),
        ("pitch", [60.5], "integers"),
    ]:
        with pytest.raises(SongError, match=match):
            Song(**{**kw, field: value})
    with pytest.raises(SongError, match="no notes"):
        Song(**{**kw, "pitch": [], "start": [], "end": [], "velocity": [], "fingering": []})


# --------------------------------------------------------------------------- registry


def test_register_song_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_REGISTRY", {})
    path = handmade_midi(tmp_path / "mine.mid")
    register_song("my-song_1", path)
    assert registered_songs() == {"my-song_1": str(path)}
    a, b = load_song("my-song_1", stretch=1.5), load_song(path, stretch=1.5)
    np.testing.assert_array_equal(a.pitch, b.pitch)
    np.testing.assert_array_equal(a.to_trajectory().keys, b.to_trajectory().keys)

    s = load_song("NocturneRousseau").stretch(1.25)
    register_song("slow_nocturne", s)
    assert load_song("slow_nocturne").duration == s.duration
    register_song("alias", "slow_nocturne")
    assert load_song("alias").duration == s.duration
    assert set(registered_songs()) == {"my-song_1", "slow_nocturne", "alias"}
    with pytest.raises(SongError, match="Did you mean 'slow_nocturne'"):
        load_song("slow_nocturn")


def test_register_song_validation(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_REGISTRY", {})
    for bad in ["", "has space", "a/b", "x.mid", 3]:
        with pytest.raises(SongError, match="name"):
            register_song(bad, "CMajorScaleOneHand")
    with pytest.raises(SongError, match="built-in"):
        register_song("NocturneRousseau", "CMajorScaleOneHand")
    with pytest.raises(SongError, match="not found"):
        register_song("ghost", tmp_path / "ghost.mid")
    with pytest.raises(SongError, match="unknown song"):
        register_song("ghost", "NoSuchSong")
    assert registered_songs() == {}


# ----------------------------------------------------------------------------- import


def test_import_is_light():
    code = (
        "import sys, pianomime_env.music.songs as s; "
        "bad = [m for m in ('robopianist', 'note_seq', 'pretty_midi', 'mido', 'music21', "
        "'librosa', 'pandas') if m in sys.modules]; "
        "s.load_builtin('NocturneRousseau').to_trajectory(); "
        "bad += [m for m in ('robopianist', 'note_seq', 'pretty_midi', 'music21') "
        "if m in sys.modules]; print(bad)"
    )
    # Import the module file directly: its parent packages as empty shells (their __init__s
    # belong to other modules), then songs.py itself.
    music_dir = Path(songs.__file__).parent
    code = f"from pathlib import Path; d = Path({str(music_dir)!r}); " + code
    code = code.replace(
        "import sys, pianomime_env.music.songs as s",
        "import sys, importlib.util as u; "
        "shells = [('pianomime_env', d.parent), ('pianomime_env.music', d)]; "
        "[sys.modules.setdefault(n, u.module_from_spec(u.spec_from_file_location("
        "n, f / '__init__.py', submodule_search_locations=[str(f)]))) for n, f in shells]; "
        f"spec = u.spec_from_file_location('pianomime_env.music.songs', {str(music_dir / 'songs.py')!r}); "
        "s = u.module_from_spec(spec); sys.modules[spec.name] = s; spec.loader.exec_module(s)",
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ------------------------------------------------------------------- multi-track trimming


def test_trim_silence_keeps_every_note_of_a_two_track_file(two_track_midi):
    song = load_midi(two_track_midi)
    assert song.n_notes == 11
    trimmed = song.trim_silence()
    assert trimmed.n_notes == 11
    assert trimmed.start.min() == pytest.approx(0.0)
    assert trimmed.duration == pytest.approx(4.0 - 0.25, abs=1e-3)
    np.testing.assert_allclose(np.sort(trimmed.end - trimmed.start), np.sort(song.end - song.start))
    # The closing left-hand chord and the melody's last note are in the goal.
    traj = trimmed.to_trajectory(0.05)
    for pitch in (48, 52, 55, 76):
        assert traj.keys[:, pitch - 21].any(), pitch


def test_trim_silence_robopianist_mode_matches_robopianist_on_two_tracks(rp, two_track_midi):
    _, midi_file = rp
    ref = midi_file.MidiFile.from_file(str(two_track_midi)).trim_silence()
    ours = load_midi(two_track_midi).trim_silence("robopianist")
    assert ours.n_notes == ref.n_notes < 11  # RoboPianist's file-order cut loses notes here
    assert_same_song(ours, ref.seq)


def test_trim_silence_rejects_unknown_mode():
    with pytest.raises(SongError, match="'all_notes' or 'robopianist'"):
        load_song("CMajorScaleOneHand").trim_silence("first_track")
