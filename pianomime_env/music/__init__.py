"""The music wing: songs and goal trajectories, music21's corpus, the musical metrics, and the
one resolver of song specs (name, path, ``music21:``, env id, corpus query) into songs."""

from pianomime_env.music.metrics import evaluate
from pianomime_env.music.songs import BUILTIN_SONGS, NoteTrajectory, Song, SongError, load_midi
from pianomime_env.music.sources import (
    load_song,
    register_song,
    registered_songs,
    resolve_songs,
    song_label,
)

__all__ = [
    "BUILTIN_SONGS",
    "NoteTrajectory",
    "Song",
    "SongError",
    "evaluate",
    "load_midi",
    "load_song",
    "register_song",
    "registered_songs",
    "resolve_songs",
    "song_label",
]
