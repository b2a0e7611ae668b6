"""The simulation wing: the compiled MuJoCo scene (key and finger geometry), offscreen frames
and the hands' inverse kinematics. Knows nothing of songs, rewards or the env."""

from pianomime_env.sim.ik import PIANO_POSTURE, HandIK
from pianomime_env.sim.render import SceneRenderer
from pianomime_env.sim.scene import SceneIndex, load_model

__all__ = ["PIANO_POSTURE", "HandIK", "SceneIndex", "SceneRenderer", "load_model"]
