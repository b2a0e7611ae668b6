"""The Gymnasium ids: ``PianoMime-<Song>-v0`` for every built-in (and registered) song,
``PianoMime-v0`` for any MIDI file (``midi=``) and ``PianoMime-MultiSong-v0``. Each has a
``vector_entry_point`` (:mod:`pianomime_env.envs.vector`): ``gym.make_vec(id, num_envs=N)``
steps N envs in one process, their physics on threads.

:func:`register_all` runs when :mod:`pianomime_env` is imported.
"""

from __future__ import annotations

import os

import gymnasium as gym

from pianomime_env.music import sources
from pianomime_env.music.songs import BUILTIN_SONGS, Song

__all__ = [
    "ENTRY_POINT",
    "MULTISONG_ENTRY_POINT",
    "MULTISONG_VECTOR_ENTRY_POINT",
    "VECTOR_ENTRY_POINT",
    "env_id",
    "make_env",
    "register_all",
    "register_song",
]

#: The single-song env class, as Gymnasium (and Minari's env specs) name it.
ENTRY_POINT = "pianomime_env.envs.piano:PianoMimeEnv"
#: The multi-song env class.
MULTISONG_ENTRY_POINT = "pianomime_env.envs.multisong:MultiSongEnv"
#: The native vector env of every single-song id (``gym.make_vec(id, num_envs=N)``).
VECTOR_ENTRY_POINT = "pianomime_env.envs.vector:PianoMimeVectorEnv"
#: The native vector env of ``PianoMime-MultiSong-v0``.
MULTISONG_VECTOR_ENTRY_POINT = "pianomime_env.envs.vector:MultiSongVectorEnv"


def env_id(song_name: str) -> str:
    """The Gymnasium id of a song: ``PianoMime-<song_name>-v0``."""
    return f"PianoMime-{song_name}-v0"


def _register_id(name: str) -> None:
    gym.register(
        id=env_id(name),
        entry_point=ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs={"song": name},
    )


def register_song(name: str, source: str | os.PathLike | Song) -> str:
    """Registers a song (MIDI path, ``Song`` or corpus path) as ``PianoMime-<name>-v0``.

    Returns the new env id. Raises ``SongError`` if the source cannot be loaded.
    """
    sources.register_song(name, source)
    _register_id(name)
    return env_id(name)


def make_env(song: str | os.PathLike | Song, **kwargs):
    """``PianoMimeEnv(song, **kwargs)`` without going through ``gym.make`` (no wrappers)."""
    from pianomime_env.envs.piano import PianoMimeEnv

    return PianoMimeEnv(song, **kwargs)


def register_all() -> None:
    """Registers the ids of the built-in songs, ``PianoMime-v0`` and ``PianoMime-MultiSong-v0``
    (idempotent)."""
    for name in BUILTIN_SONGS:
        _register_id(name)
    gym.register(id="PianoMime-v0", entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT)
    if "PianoMime-MultiSong-v0" not in gym.registry:
        gym.register(
            id="PianoMime-MultiSong-v0",
            entry_point=MULTISONG_ENTRY_POINT,
            vector_entry_point=MULTISONG_VECTOR_ENTRY_POINT,
        )
