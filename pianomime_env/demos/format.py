"""On-disk format of a demonstration: fingertip, wrist and fingering trajectories for a song.

A :class:`Demonstration` is what a style reward, a residual policy or the sight-reader tracks: per
control step, where each fingertip and wrist should be (metres, world frame: the same frame as the
env's ``fingertips`` observation) and which finger presses which key. Files are ``.npz`` archives
written atomically; :meth:`Demonstration.load` validates everything and raises
:class:`DemonstrationError` naming the file, the field and what was expected.

Layout (T = number of control steps):

| field | shape | dtype | content |
|---|---|---|---|
| ``fingertips`` | (T, 2, 5, 3) | float32 | hand (right, left) x finger (thumb..little) x xyz, m |
| ``wrists`` | (T, 2, 3) | float32 | wrist position per hand, m |
| ``fingering`` | (T, 88) | int8 | finger 0-9 pressing key k at step t (0-4 right, 5-9 left); -1 |
| ``control_timestep`` | () | float64 | seconds per step |
| ``song_name``, ``source`` | () | str | provenance, e.g. ``"score:planner-v1"`` |
| ``version`` | () | int64 | :data:`FORMAT_VERSION` |
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "DemonstrationError", "Demonstration"]

FORMAT_VERSION = 1
_FIELDS = (
    "fingertips",
    "wrists",
    "fingering",
    "control_timestep",
    "song_name",
    "source",
    "version",
)


class DemonstrationError(ValueError):
    """A demonstration is malformed or does not fit the song/env it is used with."""


def _check_fit(
    where: str,
    n_steps: int,
    dt: float,
    expected_steps: int | None,
    control_timestep: float | None,
) -> None:
    """Raises if a demonstration of ``n_steps`` at ``dt`` does not fit the song/env."""
    if expected_steps is not None and n_steps != int(expected_steps):
        raise DemonstrationError(
            f"{where}: demonstration has {n_steps} steps, expected {int(expected_steps)} "
            "(the song's length in control steps)"
        )
    if control_timestep is not None and abs(dt - float(control_timestep)) > 1e-9:
        raise DemonstrationError(
            f"{where}: field 'control_timestep' is {dt}, expected {float(control_timestep)} "
            "(the env's control timestep)"
        )


def _check_arrays(
    where: str,
    fingertips: Any,
    wrists: Any,
    fingering: Any,
    control_timestep: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Validates and converts the array fields; returns (fingertips, wrists, fingering, dt)."""
    out = []
    for name, value, tail in (
        ("fingertips", fingertips, (2, 5, 3)),
        ("wrists", wrists, (2, 3)),
    ):
        arr = np.asarray(value)
        if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail:
            raise DemonstrationError(
                f"{where}: field {name!r} must have shape (T, {', '.join(map(str, tail))}), "
                f"got {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise DemonstrationError(
                f"{where}: field {name!r} must be a float array, got dtype {arr.dtype}"
            )
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise DemonstrationError(
                f"{where}: field {name!r} contains NaN or inf (first at index {bad})"
            )
        out.append(arr.astype(np.float32))
    tips, wr = out
    fing = np.asarray(fingering)
    if fing.ndim != 2 or fing.shape[1] != 88:
        raise DemonstrationError(
            f"{where}: field 'fingering' must have shape (T, 88), got {fing.shape}"
        )
    if not np.issubdtype(fing.dtype, np.integer):
        raise DemonstrationError(
            f"{where}: field 'fingering' must be an integer array (int8), got dtype {fing.dtype}"
        )
    if fing.size and (fing.min() < -1 or fing.max() > 9):
        bad = np.argwhere((fing < -1) | (fing > 9))[0].tolist()
        raise DemonstrationError(
            f"{where}: field 'fingering' values must be in -1..9, got {int(fing[tuple(bad)])} "
            f"at (step, key) {bad}"
        )
    n = tips.shape[0]
    if wr.shape[0] != n or fing.shape[0] != n:
        raise DemonstrationError(
            f"{where}: fields disagree on the number of steps: fingertips {n}, "
            f"wrists {wr.shape[0]}, fingering {fing.shape[0]}"
        )
    try:
        dt = float(np.asarray(control_timestep))
    except (TypeError, ValueError):
        raise DemonstrationError(
            f"{where}: field 'control_timestep' must be a number, got {control_timestep!r}"
        ) from None
    if not np.isfinite(dt) or dt <= 0:
        raise DemonstrationError(
            f"{where}: field 'control_timestep' must be a finite number > 0, got {dt}"
        )
    return tips, wr, fing.astype(np.int8), dt


@dataclass(frozen=True, eq=False)
class Demonstration:
    """Fingertip/wrist/fingering trajectories at the control rate (see the module docstring).

    Attributes:
        fingertips: (T, 2, 5, 3) float32, m, world frame; hand (right, left) x thumb..little.
        wrists: (T, 2, 3) float32, m, world frame.
        fingering: (T, 88) int8, finger 0-9 pressing key k at step t, -1 for none.
        control_timestep: seconds per step (0.05 by default in the env).
        song_name: the song the demo was made for.
        source: provenance, e.g. ``"score:planner-v1"`` or ``"video:<file>"``.
        version: :data:`FORMAT_VERSION`.
    """

    fingertips: np.ndarray
    wrists: np.ndarray
    fingering: np.ndarray
    control_timestep: float
    song_name: str
    source: str
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        where = f"Demonstration({self.song_name!r})"
        tips, wr, fing, dt = _check_arrays(
            where, self.fingertips, self.wrists, self.fingering, self.control_timestep
        )
        if int(self.version) != FORMAT_VERSION:
            raise DemonstrationError(
                f"{where}: field 'version' is {self.version}, expected {FORMAT_VERSION}"
            )
        for a in (tips, wr, fing):
            a.setflags(write=False)
        # Frozen dataclass: normalise dtypes through object.__setattr__.
        object.__setattr__(self, "fingertips", tips)
        object.__setattr__(self, "wrists", wr)
        object.__setattr__(self, "fingering", fing)
        object.__setattr__(self, "control_timestep", dt)
        object.__setattr__(self, "song_name", str(self.song_name))
        object.__setattr__(self, "source", str(self.source))
        object.__setattr__(self, "version", int(self.version))

    @property
    def n_steps(self) -> int:
        """T, the number of control steps."""
        return int(self.fingertips.shape[0])

    def __len__(self) -> int:
        return self.n_steps

    def check_fits(self, env: object) -> None:
        """Raises :class:`DemonstrationError` unless this demo matches ``env``'s song length and
        control rate (``env``: a PianoMimeEnv or a wrapper of one)."""
        u = getattr(env, "unwrapped", env)
        _check_fit(
            f"demonstration {self.song_name!r}",
            self.n_steps,
            self.control_timestep,
            u.n_steps,
            u.control_timestep,
        )

    def __repr__(self) -> str:
        return (
            f"Demonstration(song_name={self.song_name!r}, n_steps={self.n_steps}, "
            f"control_timestep={self.control_timestep}, source={self.source!r})"
        )

    def save(self, path: str | os.PathLike) -> None:
        """Writes an ``.npz`` archive atomically (temporary file, then ``os.replace``)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    fingertips=self.fingertips,
                    wrists=self.wrists,
                    fingering=self.fingering,
                    control_timestep=np.float64(self.control_timestep),
                    song_name=np.str_(self.song_name),
                    source=np.str_(self.source),
                    version=np.int64(self.version),
                )
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        expected_steps: int | None = None,
        control_timestep: float | None = None,
    ) -> Demonstration:
        """Reads and validates a demonstration.

        Args:
            path: an ``.npz`` written by :meth:`save`.
            expected_steps: if given, the song's number of control steps; must equal T.
            control_timestep: if given, the env's control timestep (s); must match the file's.

        Raises:
            DemonstrationError: the file is missing, not an npz, lacks a field, has a wrong
                shape/dtype, NaN/inf, a version mismatch, or does not fit the song/rate.
        """
        where = str(path)
        p = Path(path)
        if not p.is_file():
            raise DemonstrationError(f"{where}: demonstration file does not exist")
        try:
            npz = np.load(p, allow_pickle=False)
            if not hasattr(npz, "files"):
                raise DemonstrationError(f"{where}: not an .npz archive (a bare .npy array)")
            with npz:
                missing = [k for k in _FIELDS if k not in npz.files]
                if missing:
                    raise DemonstrationError(
                        f"{where}: missing field(s) {missing}; expected {list(_FIELDS)}, "
                        f"got {sorted(npz.files)}"
                    )
                raw = {k: npz[k] for k in _FIELDS}
        except DemonstrationError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise DemonstrationError(f"{where}: not a readable .npz archive ({e})") from None
        version = raw["version"]
        if version.shape != () or not np.issubdtype(version.dtype, np.integer):
            raise DemonstrationError(
                f"{where}: field 'version' must be an integer scalar, got {version!r}"
            )
        if int(version) != FORMAT_VERSION:
            raise DemonstrationError(
                f"{where}: field 'version' is {int(version)}, expected {FORMAT_VERSION} "
                "(written by a different pianomime_env version)"
            )
        for name in ("song_name", "source"):
            if raw[name].shape != () or raw[name].dtype.kind != "U":
                raise DemonstrationError(
                    f"{where}: field {name!r} must be a string scalar, got dtype "
                    f"{raw[name].dtype} shape {raw[name].shape}"
                )
        if raw["control_timestep"].shape != ():
            raise DemonstrationError(
                f"{where}: field 'control_timestep' must be a scalar, got shape "
                f"{raw['control_timestep'].shape}"
            )
        for name, want in (("fingertips", np.float32), ("wrists", np.float32)):
            if raw[name].dtype != want:
                raise DemonstrationError(
                    f"{where}: field {name!r} must be float32, got {raw[name].dtype}"
                )
        if raw["fingering"].dtype != np.int8:
            raise DemonstrationError(
                f"{where}: field 'fingering' must be int8, got {raw['fingering'].dtype}"
            )
        tips, wr, fing, dt = _check_arrays(
            where, raw["fingertips"], raw["wrists"], raw["fingering"], raw["control_timestep"]
        )
        _check_fit(where, tips.shape[0], dt, expected_steps, control_timestep)
        return cls(
            fingertips=tips,
            wrists=wr,
            fingering=fing,
            control_timestep=dt,
            song_name=str(raw["song_name"]),
            source=str(raw["source"]),
            version=int(version),
        )
