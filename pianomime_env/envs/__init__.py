"""The env wing: the single-song env (:mod:`.piano`, whose class docstring is the spec), the
multi-song env, and the Gymnasium ids (:mod:`.registration`)."""

from pianomime_env.envs.multisong import MultiSongEnv
from pianomime_env.envs.piano import PianoMimeEnv
from pianomime_env.envs.registration import env_id, make_env, register_song

__all__ = ["MultiSongEnv", "PianoMimeEnv", "env_id", "make_env", "register_song"]
