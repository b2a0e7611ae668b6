"""Play a song with the zero-training sight-reader and print the musical metrics.

.venv/bin/python demos/04_sight_reader.py [SONG]   # a built-in name or a MIDI path
"""

import sys

from pianomime_env import PianoMimeEnv, SightReader

env = PianoMimeEnv(sys.argv[1] if len(sys.argv) > 1 else "CMajorScaleOneHand", trim_silence=True)
obs, _ = env.reset(seed=0)
reader = SightReader(env)  # plans fingering + fingertip trajectories from the score
reader.reset()
terminated = False
while not terminated:
    obs, reward, terminated, truncated, info = env.step(reader(obs))
m = info["metrics"]
print(f"{env.song.name}: F1 {m['f1']:.3f}, note-onset F1 {m['note_f1']:.3f}")
