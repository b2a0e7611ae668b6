"""The MediaPipe hand-landmarker model bundle, built offline from the ``mediapipe==0.10.21`` wheel.

Current MediaPipe releases (the Tasks API) ship no models: ``HandLandmarker`` needs a
``hand_landmarker.task`` file that is normally downloaded from Google's storage. The same weights
are inside the ``mediapipe==0.10.21`` wheel on PyPI (the last release bundling the legacy
``solutions.hands`` models). :func:`build_hand_model` downloads that wheel with pip (``pip download
--no-deps``: it is never installed, only unzipped), takes ``palm_detection_full.tflite`` and
``hand_landmark_full.tflite`` and writes them into an uncompressed zip as ``hand_detector.tflite``
and ``hand_landmarks_detector.tflite``, the layout of Google's ``.task`` bundle. The members are
padded to 4-byte alignment so MediaPipe can map them without a copy.

The default location is ``$PIANOMIME_CACHE_DIR/hand_landmarker.task`` or
``~/.cache/pianomime_env/hand_landmarker.task``; ``pianomime demo build-hand-model`` builds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = [
    "HandModelError",
    "MEDIAPIPE_WHEEL_VERSION",
    "WHEEL_MEMBERS",
    "build_hand_model",
    "default_hand_model_path",
    "download_wheel",
    "ensure_hand_model",
    "missing_model_message",
]

MEDIAPIPE_WHEEL_VERSION = "0.10.21"
# Bundle member name -> path inside the mediapipe 0.10.21 wheel.
WHEEL_MEMBERS = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
_ALIGN = 4
# Any one wheel of 0.10.21 holds the same .tflite files; name one explicitly so the download
# works whatever the running interpreter's version (0.10.21 has no wheels for Python >= 3.13).
_WHEEL_PLATFORM_ARGS = (
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
)


class HandModelError(RuntimeError):
    """The hand-landmarker model is missing or could not be built."""


def default_hand_model_path() -> Path:
    """``$PIANOMIME_CACHE_DIR/hand_landmarker.task``, else ``~/.cache/pianomime_env/...``."""
    from pianomime_env.sim.scene import cache_dir

    return cache_dir() / "hand_landmarker.task"


def missing_model_message(path: Path) -> str:
    """The error text shown when the model file is missing."""
    return (
        f"MediaPipe hand-landmarker model not found at {path}. Build it offline (downloads the "
        f"mediapipe=={MEDIAPIPE_WHEEL_VERSION} wheel from PyPI with pip, ~36 MB, and repacks its "
        "hand models) with:\n    pianomime demo build-hand-model\n"
        "or in Python: pianomime_env.demos.hand_model.build_hand_model(path). "
        "Alternatively pass hand_model= a hand_landmarker.task file you already have."
    )


def download_wheel(dest_dir: Path) -> Path:
    """Downloads the ``mediapipe==0.10.21`` wheel (no dependencies, not installed) into a folder."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        *_WHEEL_PLATFORM_ARGS,
        "--dest",
        str(dest_dir),
        f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HandModelError(f"could not run pip to download the mediapipe wheel: {exc}") from exc
    wheels = sorted(dest_dir.glob(f"mediapipe-{MEDIAPIPE_WHEEL_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise HandModelError(
            f"downloading mediapipe=={MEDIAPIPE_WHEEL_VERSION} failed (command: {' '.join(cmd)}):\n"
            f"{(proc.stderr or proc.stdout)[-2000:]}\n"
            "Without network access, download the wheel elsewhere and pass it as wheel=."
        )
    return wheels[0]


def _write_aligned_store_zip(dest: Path, members: dict[str, bytes]) -> None:
    """Writes an uncompressed zip whose member data start at multiples of 4 bytes."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                # Local header = 30 bytes + name + extra; pad the extra field so data is aligned.
                offset = zf.fp.tell() + 30 + len(name.encode())
                pad = (-offset) % _ALIGN
                if pad:
                    # An extra-field record needs a 4-byte header; use an unregistered id.
                    pad += _ALIGN if pad < 4 else 0
                    info.extra = b"\xfe\xca" + (pad - 4).to_bytes(2, "little") + b"\0" * (pad - 4)
                zf.writestr(info, data)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_hand_model(path: Path) -> None:
    """Raises :class:`HandModelError` unless ``path`` is a well-formed, aligned, stored bundle."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            names = set(zf.namelist())
            missing = set(WHEEL_MEMBERS) - names
            if missing:
                raise HandModelError(f"{path}: bundle lacks member(s) {sorted(missing)}")
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise HandModelError(f"{path}: member {info.filename} is compressed")
                raw.seek(info.header_offset + 26)
                n, m = (int.from_bytes(raw.read(2), "little") for _ in range(2))
                if (info.header_offset + 30 + n + m) % _ALIGN:
                    raise HandModelError(f"{path}: member {info.filename} is not 4-byte aligned")
    except (OSError, zipfile.BadZipFile) as exc:
        raise HandModelError(f"{path}: not a readable model bundle ({exc})") from exc


def build_hand_model(dest: Path | str, wheel: Path | str | None = None) -> Path:
    """Builds the ``hand_landmarker.task`` bundle at ``dest`` and returns ``dest``.

    Args:
        dest: output file (its folder is created).
        wheel: a ``mediapipe-0.10.21-*.whl`` already on disk; if None it is downloaded from PyPI
            with pip into a temporary folder (removed afterwards).

    Raises:
        HandModelError: the wheel cannot be downloaded or lacks the hand models.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pianomime-mediapipe-") as tmp:
        whl = Path(wheel) if wheel is not None else download_wheel(Path(tmp))
        try:
            with zipfile.ZipFile(whl) as zf:
                members = {}
                for out_name, src in WHEEL_MEMBERS.items():
                    try:
                        members[out_name] = zf.read(src)
                    except KeyError:
                        raise HandModelError(
                            f"{whl}: wheel has no {src} (is it mediapipe=={MEDIAPIPE_WHEEL_VERSION}?)"
                        ) from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise HandModelError(f"{whl}: not a readable wheel ({exc})") from exc
    _write_aligned_store_zip(dest, members)
    check_hand_model(dest)
    return dest


def ensure_hand_model(path: Path | str | None = None) -> Path:
    """Returns an existing model path (``path`` or the default); raises a how-to error if absent."""
    p = Path(path).expanduser() if path is not None else default_hand_model_path()
    if not p.is_file():
        raise HandModelError(missing_model_message(p))
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m pianomime_env.demos.hand_model [DEST]``: builds the bundle (default path)."""
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else default_hand_model_path()
    print(build_hand_model(dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
