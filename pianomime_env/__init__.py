"""pianomime-env: Gymnasium environments for bimanual robot piano playing.

Importing the package registers ``PianoMime-<Song>-v0`` for every built-in song,
``PianoMime-v0`` for any MIDI file and ``PianoMime-MultiSong-v0``::

    import gymnasium as gym
    import pianomime_env

    env = gym.make("PianoMime-TwinkleTwinkleRousseau-v0")
    env = gym.make("PianoMime-v0", midi="path/to/any.mid")
    pianomime_env.register_song("MyEtude", "etude.mid")  # -> "PianoMime-MyEtude-v0"

The public API is importable from here; the wings (``sim``, ``music``, ``rewards``, ``demos``,
``control``, ``envs``, ``learning``, ``collection``, ``media``, ``app``) hold the rest, each
importing only from the wings below it (docs/architecture.md).
"""

from __future__ import annotations

from pianomime_env.control import LookaheadSightReader, ResidualIK, SightReader, SightReaderConfig
from pianomime_env.demos import Demonstration, from_midi
from pianomime_env.envs import MultiSongEnv, PianoMimeEnv, env_id, make_env, register_song
from pianomime_env.envs.registration import register_all
from pianomime_env.learning import load_policy
from pianomime_env.music import (
    BUILTIN_SONGS,
    Song,
    SongError,
    evaluate,
    load_song,
    registered_songs,
    resolve_songs,
)
from pianomime_env.sim import HandIK

__version__ = "0.2.0"

register_all()

__all__ = [
    "BUILTIN_SONGS",
    "Demonstration",
    "HandIK",
    "LookaheadSightReader",
    "MultiSongEnv",
    "PianoMimeEnv",
    "ResidualIK",
    "SightReader",
    "SightReaderConfig",
    "Song",
    "SongError",
    "env_id",
    "evaluate",
    "from_midi",
    "load_policy",
    "load_song",
    "make_env",
    "register_song",
    "registered_songs",
    "resolve_songs",
    "__version__",
]
