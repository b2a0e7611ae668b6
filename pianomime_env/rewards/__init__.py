"""The reward wing: RoboPianist's terms (:mod:`.terms`) and the fingering terms (:mod:`.fingering`:
RP1M's OT fingering, human fingering, PianoMime's style; imported on first use, as
``REWARD_TERMS`` names them lazily). Terms read a step context, never the
env's internals; ``rewards.tolerance`` is the one shaping helper they share."""

from pianomime_env.rewards.terms import (
    DEFAULT_REWARD_TERMS,
    ENERGY_PENALTY_COEF,
    GAUSSIAN_SCALE_SQ,
    KEY_CLOSE_ENOUGH_TO_PRESSED,
    REWARD_TERMS,
    Energy,
    EpisodeContext,
    ForearmCollision,
    KeyPress,
    RewardTerm,
    StepContext,
    Sustain,
    build_terms,
    register_reward_term,
    reward_term_factory,
    tolerance,
)

__all__ = [
    "DEFAULT_REWARD_TERMS",
    "ENERGY_PENALTY_COEF",
    "GAUSSIAN_SCALE_SQ",
    "KEY_CLOSE_ENOUGH_TO_PRESSED",
    "REWARD_TERMS",
    "Energy",
    "EpisodeContext",
    "ForearmCollision",
    "KeyPress",
    "RewardTerm",
    "StepContext",
    "Sustain",
    "build_terms",
    "register_reward_term",
    "reward_term_factory",
    "tolerance",
]
