"""pianomime-env: Gymnasium environments for bimanual robot piano playing.

Importing the package registers ``PianoMime-<Song>-v0`` for every built-in song and
``PianoMime-v0`` for any MIDI file::

    import gymnasium as gym
    import pianomime_env

    env = gym.make("PianoMime-TwinkleTwinkleRousseau-v0")
    env = gym.make("PianoMime-v0", midi="path/to/any.mid")
    pianomime_env.register_song("MyEtude", "etude.mid")  # -> "PianoMime-MyEtude-v0"
"""

from __future__ import annotations

import os

import gymnasium as gym

from pianomime_env import songs as _songs
from pianomime_env.songs import BUILTIN_SONGS, Song, SongError, load_song

__version__ = "0.1.0"

_ENTRY_POINT = "pianomime_env.env:PianoMimeEnv"


def env_id(song_name: str) -> str:
    """The Gymnasium id of a song: ``PianoMime-<song_name>-v0``."""
    return f"PianoMime-{song_name}-v0"


def _register_id(name: str) -> None:
    gym.register(id=env_id(name), entry_point=_ENTRY_POINT, kwargs={"song": name})


def register_song(name: str, source: str | os.PathLike | Song) -> str:
    """Registers a song (MIDI path, ``Song`` or corpus path) as ``PianoMime-<name>-v0``.

    Returns the new env id. Raises ``SongError`` if the source cannot be loaded.
    """
    _songs.register_song(name, source)
    _register_id(name)
    return env_id(name)


def make_env(song: str | os.PathLike | Song, **kwargs):
    """``PianoMimeEnv(song, **kwargs)`` without going through ``gym.make`` (no wrappers)."""
    from pianomime_env.env import PianoMimeEnv

    return PianoMimeEnv(song, **kwargs)


for _name in BUILTIN_SONGS:
    _register_id(_name)
gym.register(id="PianoMime-v0", entry_point=_ENTRY_POINT)

__all__ = [
    "BUILTIN_SONGS",
    "Song",
    "SongError",
    "env_id",
    "load_song",
    "make_env",
    "register_song",
    "__version__",
]
