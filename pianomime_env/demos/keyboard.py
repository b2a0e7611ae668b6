"""Keyboard detection in an image and the homography image -> piano plane.

PianoMime clicked 20 points per video by hand. Here the black keys are found automatically:

1. **White-key mask.** Otsu threshold of the grey image; the keyboard's long axis is the major axis
   of the largest bright component, and the image is rotated so that this axis is horizontal.
2. **Black keys.** In each row, a dark run bounded by white on both sides and no longer than a few
   black-key widths is a black-key slice (this separates the black keys from the dark piano case
   they touch at their back end). Connected slices form blobs; blobs that are too small or not
   elongated across the row are dropped (fingers, shadows).
3. **Which blob is which key.** The black keys' positions along the keyboard follow the 2-3
   grouping. A 1-D projective map (plane y -> image position along the row, which is exactly how a
   line projects under perspective) is fitted RANSAC-style: for every three consecutive blobs and
   every three consecutive black keys, fit, predict all 36 black keys, count blobs that land on a
   prediction. The pattern is mirror-symmetric, so the direction of increasing pitch is taken from
   the side the white keys extend to (the player's side): for a non-mirrored view from above,
   ``cross(front, ascending) < 0`` in image coordinates (front down -> pitch rises to the right).
   When fewer than all 36 black keys are seen, octave shifts of the fit tie; the one whose keys are
   closest to the middle of the keyboard (or to ``center_key``) wins and ``octave_ambiguous`` is set.
4. **Homography.** Each matched blob gives its back end, centre and front end (extremes along its
   own long axis) -> plane points ``(x_back, y_k)``, ``(x_mid, y_k)``, ``(x_front, y_k)`` on the
   plane of the black-key tops; ``cv2.findHomography`` (RANSAC) fits image -> plane.

The plane frame is the simulation's piano frame (metres): ``x`` across the keys (the player's side
is +x), ``y`` along the keyboard (A0 at -0.6, C8 at +0.6), read from the scene model. Heights (the
white- and black-key top surfaces) are in :class:`KeyboardLayout`.

The manual override (:func:`calibrate_from_corners`) takes 4 image points of the keyboard's corners
in the order A0-back, C8-back, C8-front, A0-front and maps them onto the white-key top plane.

OpenCV is imported lazily (the ``video`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pianomime_env.extras import require

__all__ = [
    "KeyboardDetectionError",
    "KeyboardLayout",
    "KeyboardCalibration",
    "keyboard_layout",
    "detect_keyboard",
    "calibrate_from_corners",
    "project_points",
    "import_cv2",
]

VIDEO_EXTRA_HINT = 'pip install "pianomime-env[video]"'
# Black keys by pitch class (C=0): C#, D#, F#, G#, A#.
_BLACK_PITCH_CLASSES = (1, 3, 6, 8, 10)


class KeyboardDetectionError(RuntimeError):
    """The keyboard could not be found in the image (pass keyboard_corners= instead)."""


def import_cv2() -> Any:
    """Imports OpenCV or raises an ImportError naming the extra to install."""
    return require("cv2", f"OpenCV is needed for video demonstrations: {VIDEO_EXTRA_HINT}")


@dataclass(frozen=True)
class KeyboardLayout:
    """Key geometry of the simulated piano, in the piano's frame (metres).

    Attributes:
        key_y: (88,) y of each key's centre line, A0..C8.
        is_black: (88,) bool.
        white_top_z, black_top_z: heights of the key top surfaces.
        white_x: (back, front) x extent of the white keys; black_x likewise.
        y_range: (low end, high end) of the keyboard along y.
        finger_press_points: (5, 88, 3) the scene's press point of each key per finger
            (thumb..little), :func:`pianomime_env.sim.scene.key_press_points`.
    """

    key_y: np.ndarray
    is_black: np.ndarray
    white_top_z: float
    black_top_z: float
    white_x: tuple[float, float]
    black_x: tuple[float, float]
    y_range: tuple[float, float]
    finger_press_points: np.ndarray

    def key_top_points(self) -> np.ndarray:
        """(88, 3) centres of the key top surfaces."""
        x = np.where(self.is_black, np.mean(self.black_x), np.mean(self.white_x))
        z = np.where(self.is_black, self.black_top_z, self.white_top_z)
        return np.stack([x, self.key_y, z], axis=1)

    def key_press_points(self, finger: int = 2) -> np.ndarray:
        """(88, 3) where finger ``finger`` (0..4, thumb..little; default the middle finger)
        presses each key, on the key top: the scene's one press point definition
        (:func:`pianomime_env.sim.scene.key_press_points`), shared with the score planner."""
        return self.finger_press_points[int(finger)].copy()


@lru_cache(maxsize=1)
def keyboard_layout() -> KeyboardLayout:
    """Reads the key geometry from the scene model (keys at rest)."""
    from pianomime_env.sim.scene import SceneIndex, key_press_points, key_rest_geometry, load_model

    model = load_model()
    rest = key_rest_geometry(model, SceneIndex.from_model(model))
    pos, size, top, is_black = rest.center, rest.half_size, rest.top, rest.is_black
    xw = (pos[~is_black, 0] - size[~is_black, 0], pos[~is_black, 0] + size[~is_black, 0])
    xb = (pos[is_black, 0] - size[is_black, 0], pos[is_black, 0] + size[is_black, 0])
    return KeyboardLayout(
        key_y=pos[:, 1].copy(),
        is_black=is_black,
        white_top_z=float(np.median(top[~is_black])),
        black_top_z=float(np.median(top[is_black])),
        white_x=(float(np.median(xw[0])), float(np.median(xw[1]))),
        black_x=(float(np.median(xb[0])), float(np.median(xb[1]))),
        y_range=(float(pos[0, 1] - size[0, 1]), float(pos[-1, 1] + size[-1, 1])),
        finger_press_points=key_press_points(rest),
    )


@dataclass(frozen=True)
class KeyboardCalibration:
    """An image -> piano-plane homography.

    Attributes:
        homography: (3, 3) maps homogeneous image pixels (u, v, 1) to plane (x, y, 1), metres.
        plane_z: height of the plane the homography maps onto (a key top surface).
        method: ``"auto"`` or ``"corners"``.
        black_keys: indices (0..87) of the black keys matched in the image (auto only).
        octave_ambiguous: fewer than all black keys were seen and the octave came from the prior.
        rms_px: RMS reprojection error of the fit's inliers, pixels.
    """

    homography: np.ndarray
    plane_z: float
    method: str
    black_keys: np.ndarray
    octave_ambiguous: bool = False
    rms_px: float = float("nan")

    def image_to_plane(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) plane x, y (metres). NaN in, NaN out."""
        p = np.asarray(points, dtype=np.float64)
        h = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], axis=-1) @ self.homography.T
        return h[..., :2] / h[..., 2:3]

    def plane_to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) plane x, y -> (..., 2) pixels."""
        p = np.asarray(points, dtype=np.float64)
        h = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], axis=-1)
        h = h @ np.linalg.inv(self.homography).T
        return h[..., :2] / h[..., 2:3]


def project_points(
    model: Any, data: Any, camera: int, width: int, height: int, points: np.ndarray
) -> np.ndarray:
    """Pixels (u right, v down) of world points seen by a MuJoCo camera (pinhole, fovy)."""
    pos = data.cam_xpos[camera]
    rot = data.cam_xmat[camera].reshape(3, 3)
    pc = (np.asarray(points, dtype=np.float64) - pos) @ rot  # camera frame: x right, y up, -z fwd
    f = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[camera]) / 2)
    u = width / 2 + f * pc[:, 0] / -pc[:, 2]
    v = height / 2 - f * pc[:, 1] / -pc[:, 2]
    return np.stack([u, v], axis=1)


def calibrate_from_corners(
    corners: np.ndarray, layout: KeyboardLayout | None = None
) -> KeyboardCalibration:
    """Homography from 4 image points: the keyboard's A0-back, C8-back, C8-front, A0-front corners
    (the outer corners of the white-key tops)."""
    cv2 = import_cv2()
    lay = layout or keyboard_layout()
    img = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    if img.shape != (4, 2) or not np.isfinite(img).all():
        raise ValueError(f"keyboard_corners must be 4 finite (u, v) points, got {img.shape}")
    (xb, xf), (y0, y1) = lay.white_x, lay.y_range
    plane = np.array([[xb, y0], [xb, y1], [xf, y1], [xf, y0]], dtype=np.float64)
    h = cv2.getPerspectiveTransform(img.astype(np.float32), plane.astype(np.float32))
    return KeyboardCalibration(
        homography=np.asarray(h, dtype=np.float64),
        plane_z=lay.white_top_z,
        method="corners",
        black_keys=np.zeros(0, dtype=np.int64),
        rms_px=0.0,
    )


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of True runs in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], row.view(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _fit_1d_projective(y: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    """Least-squares s = (a y + b) / (c y + 1); returns (a, b, c) or None."""
    a = np.stack([y, np.ones_like(y), -s * y], axis=1)
    try:
        sol, *_ = np.linalg.lstsq(a, s, rcond=None)
    except np.linalg.LinAlgError:
        return None
    return sol


def _apply_1d(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (p[0] * y + p[1]) / (p[2] * y + 1)


def detect_keyboard(
    image: np.ndarray,
    *,
    layout: KeyboardLayout | None = None,
    center_key: int | None = None,
    min_black_keys: int = 7,
) -> KeyboardCalibration:
    """Finds the keyboard in an RGB (or grey) image and fits the image -> plane homography.

    Stages: the white-key region, rotated so the keyboard runs horizontally
    (:func:`_upright_white_region`); black-key blobs, the dark gaps bounded by white on both
    sides (:func:`_black_key_blobs`); which side is the player's (:func:`_front_is_down`); the
    blobs matched to the layout's black keys by the 2-3 pattern (:func:`_match_black_keys`);
    and the homography from each matched key's back, centre and front (:func:`_fit_homography`).

    Args:
        image: (H, W, 3) uint8 RGB or (H, W) grey.
        layout: key geometry (default: the scene model's).
        center_key: key index (0..87) near the middle of the visible part, used only to pick the
            octave when not all 36 black keys are visible (default: the keyboard's middle).
        min_black_keys: fewer matched black keys than this is a failure.

    Raises:
        KeyboardDetectionError: no keyboard pattern was found.
    """
    cv2 = import_cv2()
    lay = layout or keyboard_layout()
    img = np.asarray(image)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img.astype(np.uint8)
    grey = cv2.GaussianBlur(grey, (3, 3), 0)
    rot, wr, valid = _upright_white_region(cv2, grey)
    labels, stats, cents, blobs = _black_key_blobs(cv2, wr, valid, min_black_keys)
    bx = np.array([cents[i][0] for i in blobs])
    front_down = _front_is_down(cv2, wr, stats, blobs, bx)
    order, sel, kmatch = _match_black_keys(bx, front_down, lay, center_key, min_black_keys)
    black_idx = np.flatnonzero(lay.is_black)
    hmat, rms = _fit_homography(
        cv2, lay, rot, labels, [blobs[oi] for oi in order[sel]], kmatch, front_down
    )
    return KeyboardCalibration(
        homography=np.asarray(hmat, dtype=np.float64),
        plane_z=lay.black_top_z,
        method="auto",
        black_keys=black_idx[np.sort(kmatch)].astype(np.int64),
        octave_ambiguous=bool(len(sel) < len(black_idx)),
        rms_px=rms,
    )


def _upright_white_region(cv2: Any, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The largest bright region's long axis, and the white mask rotated to run horizontally:
    (2x3 rotation, (h', w') bool white mask, (h', w') bool valid-pixel mask)."""
    _, white = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    white = white > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(white.view(np.uint8), connectivity=8)
    if n < 2:
        raise KeyboardDetectionError("no bright (white-key) region in the image")
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(labels == big)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    _, evecs = np.linalg.eigh(np.cov((pts - centre).T))
    axis = evecs[:, 1]  # keyboard's long axis in the image
    angle = np.degrees(np.arctan2(axis[1], axis[0]))
    if angle > 90:
        angle -= 180
    elif angle < -90:
        angle += 180
    h, w = grey.shape
    # Rotate so that the keyboard runs horizontally (keep the whole image).
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    nw, nh = int(h * sin + w * cos) + 1, int(h * cos + w * sin) + 1
    rot[0, 2] += nw / 2 - w / 2
    rot[1, 2] += nh / 2 - h / 2
    wr = cv2.warpAffine(white.view(np.uint8) * 255, rot, (nw, nh), flags=cv2.INTER_NEAREST) > 0
    valid = cv2.warpAffine(np.full_like(grey, 255), rot, (nw, nh), flags=cv2.INTER_NEAREST) > 0
    return rot, wr, valid


def _black_key_blobs(
    cv2: Any, wr: np.ndarray, valid: np.ndarray, min_black_keys: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Dark runs bounded by white on both sides, per row, joined into tall blobs: (labels,
    stats, centroids, blob labels sorted left to right)."""
    nh, nw = wr.shape
    runs = []
    for r in range(nh):
        row = wr[r]
        if row.sum() < 3:
            continue
        s, e = _runs(~row & valid[r])
        for a, b in zip(s, e):
            if a > 0 and b < nw and row[a - 1] and row[b]:
                runs.append((r, a, b))
    if not runs:
        raise KeyboardDetectionError("no black keys (dark gaps between white keys) found")
    runs = np.array(runs)
    lengths = runs[:, 2] - runs[:, 1]
    width_px = float(np.median(lengths))
    dark = np.zeros((nh, nw), dtype=np.uint8)
    for r, a, b in runs[lengths <= 2.5 * width_px]:
        dark[r, a:b] = 1
    n, labels, stats, cents = cv2.connectedComponentsWithStats(dark, connectivity=8)
    blobs = []
    for i in range(1, n):
        bw, bh, area = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, 4]
        if area < 6 or bh < 2.0 * bw:
            continue
        blobs.append(i)
    if len(blobs) < min_black_keys:
        raise KeyboardDetectionError(
            f"found {len(blobs)} black-key candidates, need {min_black_keys}; "
            "pass keyboard_corners= to calibrate by hand"
        )
    heights = stats[blobs, cv2.CC_STAT_HEIGHT].astype(float)
    med_h = np.median(heights)
    blobs = [b for b, hh in zip(blobs, heights) if 0.5 * med_h <= hh <= 1.6 * med_h]
    return labels, stats, cents, sorted(blobs, key=lambda i: cents[i][0])


def _front_is_down(
    cv2: Any, wr: np.ndarray, stats: np.ndarray, blobs: list[int], bx: np.ndarray
) -> bool:
    """Whether the player's side is towards +v in the rotated image: the white keys extend
    beyond the black keys towards the player."""
    top = np.array([stats[i, cv2.CC_STAT_TOP] for i in blobs])
    heights = np.array([stats[i, cv2.CC_STAT_HEIGHT] for i in blobs])
    bot = top + heights
    ext = int(np.median(heights))

    def _frac(col: np.ndarray) -> float:
        return float(col.mean()) if col.size else np.nan

    above = np.nanmean(
        [_frac(wr[max(t - ext, 0) : max(t - 1, 0), int(x)]) for t, x in zip(top, bx)]
    )
    below = np.nanmean([_frac(wr[b + 1 : b + ext, int(x)]) for b, x in zip(bot, bx)])
    return bool(below > above)


def _match_black_keys(
    bx: np.ndarray,
    front_down: bool,
    lay: KeyboardLayout,
    center_key: int | None,
    min_black_keys: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matches blob positions ``bx`` to the layout's black keys with a 1-D projective map
    fitted to every 3-blob / 3-key seed; returns (order of the blobs by key position, the
    matched entries of that order, their black-key indices)."""
    black_y = lay.key_y[np.flatnonzero(lay.is_black)]
    # cross(front, ascending) < 0 in image coordinates: front (0, +1) -> ascending (+1, 0).
    ascending_right = front_down
    s_obs = bx if ascending_right else -bx
    order = np.argsort(s_obs)
    s_sorted = s_obs[order]
    tol = 0.3 * float(np.median(np.diff(s_sorted))) if len(s_sorted) > 1 else 1.0
    target = float(lay.key_y[center_key]) if center_key is not None else float(np.mean(lay.y_range))
    best = None
    nb = len(black_y)
    for j in range(len(s_sorted) - 2):
        for k in range(nb - 2):
            p = _fit_1d_projective(black_y[k : k + 3], s_sorted[j : j + 3])
            if p is None:
                continue
            pred = _apply_1d(p, black_y)
            if not np.all(np.diff(pred) > 0):
                continue
            # Match each observed blob to the nearest prediction.
            near = np.abs(s_sorted[:, None] - pred[None, :])
            kk = near.argmin(axis=1)
            ok = near[np.arange(len(kk)), kk] < tol
            if ok.sum() < 4:
                continue
            _, first = np.unique(kk[ok], return_index=True)
            sel = np.flatnonzero(ok)[first]
            p2 = _fit_1d_projective(black_y[kk[sel]], s_sorted[sel])
            if p2 is None:
                continue
            resid = np.abs(_apply_1d(p2, black_y[kk[sel]]) - s_sorted[sel])
            prior = abs(float(np.mean(black_y[kk[sel]])) - target)
            score = (len(sel), -round(float(resid.mean()) / tol, 1), -prior)
            if best is None or score > best[0]:
                best = (score, sel, kk[sel])
    if best is None or best[0][0] < min_black_keys:
        raise KeyboardDetectionError(
            "the dark blobs do not follow the 2-3 black-key pattern; pass keyboard_corners="
        )
    _, sel, kmatch = best
    return order, sel, kmatch


def _fit_homography(
    cv2: Any,
    lay: KeyboardLayout,
    rot: np.ndarray,
    labels: np.ndarray,
    matched_blobs: list[int],
    kmatch: np.ndarray,
    front_down: bool,
) -> tuple[np.ndarray, float]:
    """Image -> plane homography (RANSAC) from each matched blob's back end, centre and front
    end along its own long axis, in the original image; returns (3x3, inlier RMS in px)."""
    black_y = lay.key_y[np.flatnonzero(lay.is_black)]
    inv = cv2.invertAffineTransform(rot)
    img_pts, plane_pts = [], []
    (xb0, xb1) = lay.black_x
    xmid = 0.5 * (xb0 + xb1)
    for i, k in zip(matched_blobs, kmatch):
        ys_, xs_ = np.nonzero(labels == i)
        q = np.stack([xs_, ys_], axis=1).astype(np.float64)
        c = q.mean(axis=0)
        _, evec = np.linalg.eigh(np.cov((q - c).T))
        ax = evec[:, 1] if evec[1, 1] >= 0 else -evec[:, 1]  # pointing down (+v)
        t = (q - c) @ ax
        lo, hi = c + ax * t.min(), c + ax * t.max()
        front, back = (hi, lo) if front_down else (lo, hi)
        y = black_y[k]
        for pt, x in ((back, xb0), (c, xmid), (front, xb1)):
            img_pts.append(inv @ np.array([pt[0], pt[1], 1.0]))
            plane_pts.append((x, y))
    img_pts = np.array(img_pts, dtype=np.float64)
    plane_pts = np.array(plane_pts, dtype=np.float64)
    hmat, mask = cv2.findHomography(img_pts, plane_pts, cv2.RANSAC, 0.004)
    if hmat is None:
        raise KeyboardDetectionError("homography fit failed; pass keyboard_corners=")
    hinv = np.linalg.inv(hmat)
    ph = np.concatenate([plane_pts, np.ones((len(plane_pts), 1))], axis=1) @ hinv.T
    reproj = ph[:, :2] / ph[:, 2:]
    inl = mask.ravel().astype(bool)
    rms = float(np.sqrt(np.mean(np.sum((reproj[inl] - img_pts[inl]) ** 2, axis=1))))
    return hmat, rms
