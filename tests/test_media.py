"""Videos and plots."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pianomime_env import media


def test_write_video_round_trip(tmp_path):
    import imageio.v2 as imageio

    frames = [np.full((48, 64, 3), i * 20, np.uint8) for i in range(6)]
    path = media.write_video(tmp_path / "v.mp4", frames, fps=20)
    read = [f for f in imageio.get_reader(path)]
    assert len(read) == 6 and read[0].shape == (48, 64, 3)
    assert abs(int(read[5].mean()) - 100) < 5
    assert not list(tmp_path.glob(".*tmp*"))


def test_write_video_without_frames_fails_cleanly(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        media.write_video(tmp_path / "v.mp4", [], fps=20)
    assert not list(tmp_path.iterdir())


def test_plot_piano_roll(tmp_path):
    goal = np.zeros((40, 88))
    goal[5:15, 39] = 1
    played = np.zeros((40, 88))
    played[6:15, 39] = 1
    played[20:22, 50] = 1
    path = media.plot_piano_roll(tmp_path / "roll.png", goal, played)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"\(T, 88\)"):
        media.plot_piano_roll(tmp_path / "bad.png", goal, played[:, :80])


def test_plot_demonstration(tmp_path):
    t = 30
    fingering = np.full((t, 88), -1, np.int8)
    fingering[3:10, 40] = 2
    demo = SimpleNamespace(
        fingertips=np.random.default_rng(0).normal(size=(t, 2, 5, 3)).astype(np.float32),
        fingering=fingering,
        control_timestep=0.05,
        song_name="test",
        source="synthetic",
    )
    path = media.plot_demonstration(
        tmp_path / "demo.png", demo, key_positions=np.linspace(-0.6, 0.6, 88)
    )
    assert path.stat().st_size > 10_000
