"""The media wing: what people watch and hear — videos with sound (:mod:`.video`), piano rolls
(:mod:`.plots`), FluidSynth audio (:mod:`.audio`) and the recording wrapper (:mod:`.recording`).
The video and plot functions are importable from here."""

from pianomime_env.media.plots import (
    BLACK_KEY_ROW_COLOR,
    CORRECT_COLOR,
    MISSED_COLOR,
    WRONG_COLOR,
    key_name,
    piano_roll_image,
    piano_roll_layout,
    plot_demonstration,
    plot_piano_roll,
)
from pianomime_env.media.video import (
    MediaUnavailableError,
    VideoWriter,
    check_video,
    ffmpeg_exe,
    probe_media,
    read_audio,
    write_video,
)

__all__ = [
    "BLACK_KEY_ROW_COLOR",
    "CORRECT_COLOR",
    "MISSED_COLOR",
    "WRONG_COLOR",
    "MediaUnavailableError",
    "VideoWriter",
    "check_video",
    "ffmpeg_exe",
    "key_name",
    "piano_roll_image",
    "piano_roll_layout",
    "plot_demonstration",
    "plot_piano_roll",
    "probe_media",
    "read_audio",
    "write_video",
]
