"""Offline MediaPipe hand-model bundle and a real HandLandmarker run on a drawn hand."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pianomime_env.demos.hand_model import (
    HandModelError,
    build_hand_model,
    check_hand_model,
    default_hand_model_path,
    ensure_hand_model,
)

_CACHE = Path(os.environ.get("PIANOMIME_TEST_CACHE", "/tmp/pianomime-test-cache"))


@pytest.fixture(scope="session")
def hand_model() -> Path:
    path = _CACHE / "hand_landmarker.task"
    if not path.is_file():
        try:
            build_hand_model(path)
        except HandModelError as exc:
            pytest.skip(f"cannot build the hand model here: {exc}")
    return path


def test_default_path_honours_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PIANOMIME_CACHE_DIR", str(tmp_path))
    assert default_hand_model_path() == tmp_path / "hand_landmarker.task"
    with pytest.raises(HandModelError, match="build-hand-model"):
        ensure_hand_model()


def test_bundle_layout(hand_model):
    check_hand_model(hand_model)
    with zipfile.ZipFile(hand_model) as zf:
        names = zf.namelist()
        assert sorted(names) == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def _drawn_hand() -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    img = np.full((480, 640, 3), 255, np.uint8)
    skin, s = (140, 180, 225), 0.6
    cx, cy = 320, int(480 * 0.62)

    def p(dx, dy):
        return (int(cx + dx * s), int(cy + dy * s))

    fingers = [((-70, 10), (-150, -60)), ((-45, -70), (-60, -210)), ((-12, -80), (-10, -235))]
    fingers += [((20, -78), (35, -220)), ((50, -65), (80, -175))]
    cv2.rectangle(img, p(-55, 60), p(55, 400), skin, -1)
    cv2.ellipse(img, p(0, 0), (int(75 * s), int(90 * s)), 0, 0, 360, skin, -1)
    for a, b in fingers:
        cv2.line(img, p(*a), p(*b), skin, int(34 * s), cv2.LINE_AA)
        cv2.circle(img, p(*b), int(17 * s), skin, -1, cv2.LINE_AA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_mediapipe_detects_drawn_hand_and_not_blank(hand_model):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.HandLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(hand_model)),
        running_mode=vision.RunningMode.IMAGE,
        num_hands=2,
        min_hand_detection_confidence=0.3,
    )
    with vision.HandLandmarker.create_from_options(opts) as lm:
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=_drawn_hand()))
        assert len(res.hand_landmarks) == 1
        assert len(res.hand_landmarks[0]) == 21
        blank = np.full((480, 640, 3), 255, np.uint8)
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=blank))
        assert len(res.hand_landmarks) == 0
