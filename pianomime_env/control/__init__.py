"""The control wing: players built on the env's public API only — the zero-training
sight-reader, its simulated look-ahead, and the ``ResidualIK`` action wrapper (nominal + a
small learned residual)."""

from pianomime_env.control.lookahead import LookaheadSightReader
from pianomime_env.control.residual import ResidualIK
from pianomime_env.control.sightreader import SightReader, SightReaderConfig

__all__ = ["LookaheadSightReader", "ResidualIK", "SightReader", "SightReaderConfig"]
