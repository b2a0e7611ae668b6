"""The learning wing: what the single-file baselines share that is not their algorithm — the
checkpoint format and :func:`load_policy`, networks and normalization, the Minari dataset format
and imitation data, the goal encoder, run directories. torch is imported lazily."""

from pianomime_env.learning.policies import (
    PolicyError,
    load_checkpoint,
    load_policy,
    save_checkpoint,
)

__all__ = ["PolicyError", "load_checkpoint", "load_policy", "save_checkpoint"]
