"""The collection wing: expert rollouts into Minari datasets (RP1M-style), on a local process
pool or a Ray cluster. Above :mod:`pianomime_env.learning`: a checkpoint expert is played through
``load_policy`` and the datasets are written in the format the imitation learners read."""

from pianomime_env.collection.collect import CollectSettings, CollectSummary
from pianomime_env.collection.experts import make_expert

# ``collect()`` itself stays in :mod:`.collect`: a package attribute of that name would hide the module.
__all__ = ["CollectSettings", "CollectSummary", "make_expert"]
