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


def roll_pixel(layout, image, t_step, key, dt=0.05):
    """RGB (0..1) of the piano-roll cell (step, key), from the layout's axes geometry."""
    height, width = image.shape[:2]
    left, bottom, w, h = layout["axes"]
    (x0, x1), (y0, y1) = layout["xlim"], layout["ylim"]
    fx = left + w * ((t_step + 0.5) * dt - x0) / (x1 - x0)
    fy = bottom + h * (key - y0) / (y1 - y0)
    return image[int(round((1 - fy) * height)), int(round(fx * width)), :3]


def test_plot_piano_roll_colours_each_kind_of_press(tmp_path):
    import imageio.v2 as imageio

    goal = np.zeros((40, 88))
    goal[5:15, 39] = 1  # C4: pressed one step late -> step 5 missed, 6..14 correct
    played = np.zeros((40, 88))
    played[6:15, 39] = 1
    played[20:22, 50] = 1  # B4: a wrong press at steps 20, 21
    path = media.plot_piano_roll(tmp_path / "roll.png", goal, played, title="known presses")
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = imageio.imread(path)[..., :3] / 255.0
    layout = media.piano_roll_layout(goal, played)
    assert image.shape[:2] == (
        round(layout["figsize"][1] * layout["dpi"]),
        round(layout["figsize"][0] * layout["dpi"]),
    )
    expected = {
        (21, 50): media.WRONG_COLOR,
        (20, 50): media.WRONG_COLOR,
        (10, 39): media.CORRECT_COLOR,
        (5, 39): media.MISSED_COLOR,
        (30, 39): (1.0, 1.0, 1.0),  # nothing: a white key's row stays white
        (30, 40): media.BLACK_KEY_ROW_COLOR,  # C#4's row is shaded
        (21, 49): media.BLACK_KEY_ROW_COLOR,  # A#4, next to the wrong press
    }
    for (step, key), colour in expected.items():
        np.testing.assert_allclose(
            roll_pixel(layout, image, step, key), colour, atol=2 / 255, err_msg=f"{step, key}"
        )
    # The legend (right of the plot area) shows the three colours.
    legend = image[:, int(round((layout["axes"][0] + layout["axes"][2]) * image.shape[1])) + 5 :]
    for colour in (media.CORRECT_COLOR, media.MISSED_COLOR, media.WRONG_COLOR):
        assert (np.abs(legend - colour).max(axis=-1) < 2 / 255).sum() > 50, colour
    with pytest.raises(ValueError, match=r"\(T, 88\)"):
        media.plot_piano_roll(tmp_path / "bad.png", goal, played[:, :80])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roll.png"]


def test_piano_roll_image_matches_the_png(tmp_path):
    import imageio.v2 as imageio

    goal = np.zeros((30, 88))
    goal[3:9, 60] = 1
    played = goal.copy()
    image = media.piano_roll_image(goal, played, metrics={"f1": 1.0, "note_f1": 1.0})
    png = imageio.imread(media.plot_piano_roll(tmp_path / "r.png", goal, played))[..., :3]
    assert image.dtype == np.uint8 and image.shape == png.shape
    assert np.mean(np.abs(image.astype(int) - png.astype(int))) < 1.0


def test_key_names():
    assert [media.key_name(k) for k in (0, 3, 39, 40, 87)] == ["A0", "C1", "C4", "C#4", "C8"]


def test_video_with_audio_streams_last_the_same(tmp_path):
    fps, n = 20, 30
    frames = [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(n)]
    rate = 44100
    t = np.arange(int(n / fps * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * (t < 0.5)).astype(np.float32)
    path = media.write_video(tmp_path / "v.mp4", frames, fps, audio=tone, sample_rate=rate)
    info = media.probe_media(path)
    assert info["video"]["frames"] == n and info["audio"] is not None
    assert abs(info["video"]["duration"] - n / fps) < 1 / fps
    assert abs(info["audio"]["duration"] - n / fps) < 1 / fps
    decoded, decoded_rate = media.read_audio(path)
    assert decoded_rate == rate
    loud = decoded[int(0.1 * rate) : int(0.4 * rate)]
    quiet = decoded[int(0.8 * rate) : int(1.4 * rate)]
    assert np.sqrt(np.mean(loud**2)) > 0.2 and np.abs(quiet).max() < 0.01
    # In sync: the tone's end lands where it was written (AAC's priming is compensated).
    end = np.flatnonzero(np.abs(decoded) > 0.05)[-1] / rate
    assert abs(end - 0.5) < 0.01, end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # no temporaries


def test_video_rejects_audio_of_another_length(tmp_path):
    frames = [np.zeros((48, 64, 3), np.uint8)] * 20  # 1.0 s at 20 fps
    with pytest.raises(ValueError, match="within one frame"):
        media.write_video(tmp_path / "v.mp4", frames, 20, audio=np.zeros(44100 * 2))
    assert not list(tmp_path.iterdir())


def test_video_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with media.VideoWriter(tmp_path / "v.mp4", fps=20) as video:
            video.append(np.zeros((48, 64, 3), np.uint8))
            raise RuntimeError("boom")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        media.VideoWriter(tmp_path / "v.mp4", fps=20).append(np.zeros((48, 64)))


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
