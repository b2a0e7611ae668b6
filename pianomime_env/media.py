"""Things to look at: performance videos and piano-roll plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Writes (H, W, 3) uint8 frames as an H.264 MP4 (imageio + its bundled ffmpeg).

    The file appears only once complete (written to a temporary name, then renamed).
    """
    import imageio.v2 as imageio

    path = Path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=8, quality=7) as w:
        for frame in frames:
            w.append_data(np.asarray(frame, dtype=np.uint8))
    os.replace(tmp, path)
    return path
