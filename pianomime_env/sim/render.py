"""Offscreen RGB frames of the scene.

The GL backend is chosen only when the first frame is asked for, so an env that never renders
never loads GL. ``MUJOCO_GL`` (``egl``, ``osmesa``, ``glfw``) is honoured when set; on a Linux
machine with no display it defaults to EGL, then OSMesa.
"""

from __future__ import annotations

import os
import sys
import weakref

import mujoco
import numpy as np

from pianomime_env.sim.scene import SceneIndex

#: RGB (0..1) of a key pressed while the score asks for it (piano roll and video).
CORRECT_COLOR = (0.18, 0.72, 0.22)
#: RGB of a key the score asks for that is not pressed.
MISSED_COLOR = (0.45, 0.62, 0.95)
#: RGB of a key pressed while the score asks for it to be up.
WRONG_COLOR = (0.88, 0.12, 0.10)

# Colour of a key while it is pressed; RoboPianist's.
ACTIVATION_COLOR = np.array([0.2, 0.8, 0.2, 1.0], dtype=np.float32)
# With the goal known: pressed and wanted / wanted but up / pressed but unwanted (the piano
# roll's colours).
CORRECT_RGBA = np.array([*CORRECT_COLOR, 1.0], dtype=np.float32)
MISSED_RGBA = np.array([*MISSED_COLOR, 1.0], dtype=np.float32)
WRONG_RGBA = np.array([*WRONG_COLOR, 1.0], dtype=np.float32)


def _gl_context_class():
    choice = os.environ.get("MUJOCO_GL", "").lower().strip()
    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    if not choice:
        choice = "egl" if headless else "glfw"
    errors = []
    for backend in [choice] + (["osmesa"] if choice == "egl" else []):
        try:
            if backend == "egl":
                from mujoco.egl import GLContext
            elif backend == "osmesa":
                from mujoco.osmesa import GLContext
            else:
                from mujoco.glfw import GLContext
            return GLContext
        except Exception as exc:  # noqa: BLE001 - report every backend's failure together
            errors.append(f"{backend}: {exc}")
    raise RuntimeError(
        "No OpenGL backend for offscreen rendering could be loaded ("
        + "; ".join(errors)
        + "). On Debian/Ubuntu install libegl1 (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)."
    )


def resolve_camera(model: mujoco.MjModel, camera: str | int) -> int:
    """Camera id from a name (``"back"`` or ``"piano/back"``) or an id (-1 = free camera)."""
    if isinstance(camera, (int, np.integer)):
        if not -1 <= camera < model.ncam:
            raise ValueError(f"camera id must be in [-1, {model.ncam - 1}], got {camera}")
        return int(camera)
    for name in (camera, f"piano/{camera}"):
        idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if idx >= 0:
            return idx
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    raise ValueError(f"unknown camera {camera!r}; available: {[n.split('/')[-1] for n in names]}")


class SceneRenderer:
    """Renders (height, width, 3) uint8 frames, lighting pressed keys.

    Args:
        model: the scene model (its offscreen buffer is enlarged if needed).
        index: the scene's index arrays.
        width, height: frame size in pixels.
        camera: camera name or id.
        shadows: draw shadows and reflections (off by default: with software GL they cost ~8x
            the render time of a frame).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        index: SceneIndex,
        width: int,
        height: int,
        camera: str | int,
        *,
        shadows: bool = False,
    ) -> None:
        self._model = model
        self._index = index
        self._camera = resolve_camera(model, camera)
        self.width, self.height = int(width), int(height)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        self._gl = _gl_context_class()(self.width, self.height)
        self._gl.make_current()
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        # Software GL draws shadows and reflections slowly (≈ 8x the time of a frame).
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = bool(shadows)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = bool(shadows)
        self._option = mujoco.MjvOption()
        self._cam = mujoco.MjvCamera()
        if self._camera == -1:
            mujoco.mjv_defaultFreeCamera(model, self._cam)
        else:
            self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._cam.fixedcamid = self._camera
        try:
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        except Exception as exc:  # mujoco.FatalError: the GL context did not come up
            self._gl.free()
            backend = os.environ.get("MUJOCO_GL") or "the default backend"
            raise RuntimeError(
                f"offscreen rendering could not start with MUJOCO_GL={backend} ({exc}). On a "
                "machine without a display use MUJOCO_GL=egl (Debian/Ubuntu: libegl1) or "
                "MUJOCO_GL=osmesa (libosmesa6)."
            ) from exc
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._key_rgba = model.geom_rgba[index.key_geoms].copy()
        # Free GL resources before interpreter teardown unloads the EGL bindings.
        self._finalizer = weakref.finalize(self, _free, self._context, self._gl)

    def render(
        self,
        data: mujoco.MjData,
        key_activation: np.ndarray,
        goal_keys: np.ndarray | None = None,
        *,
        legend: bool = False,
        caption: str = "",
    ) -> np.ndarray:
        """One (height, width, 3) uint8 frame of ``data``'s state.

        Args:
            data: the simulation state to draw.
            key_activation: (88,) bool, keys pressed now.
            goal_keys: optional (88,) goal row (> 0.5 = should be down). Without it pressed
                keys are drawn green (RoboPianist's look); with it, pressed keys the goal wants
                are green (``CORRECT_RGBA``), pressed keys it does not want red
                (``WRONG_RGBA``), and wanted keys that are up blue (``MISSED_RGBA``).
            legend: write what the three colours mean, in their colours, top left.
            caption: a line of text at the bottom left (e.g. the song and the time).
                Frames narrower than 480 pixels get neither (the text would cover them).
        """
        model = self._model
        pressed = np.asarray(key_activation, dtype=bool)[:, None]
        if goal_keys is None:
            rgba = np.where(pressed, ACTIVATION_COLOR, self._key_rgba)
        else:
            wanted = (np.asarray(goal_keys) > 0.5)[:, None]
            rgba = np.where(
                pressed,
                np.where(wanted, CORRECT_RGBA, WRONG_RGBA),
                np.where(wanted, MISSED_RGBA, self._key_rgba),
            )
        model.geom_rgba[self._index.key_geoms] = rgba
        self._gl.make_current()
        mujoco.mjv_updateScene(
            model, data, self._option, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._context)
        if (legend or caption) and self.width >= 480:
            self._draw_text(legend, caption)
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(frame, None, self._rect, self._context)
        model.geom_rgba[self._index.key_geoms] = self._key_rgba
        return np.flipud(frame).copy()

    def _draw_text(self, legend: bool, caption: str) -> None:
        line = 1.5 * 16 * 1.5 / self.height  # line height (fraction of the frame); font scale 150
        margin_x, margin_y = 12 / self.width, 8 / self.height
        font = mujoco.mjtFont.mjFONT_NORMAL
        if legend:
            entries = (
                ("green: pressed, as the score asks", CORRECT_RGBA),
                ("red: pressed, not in the score", WRONG_RGBA),
                ("blue: in the score, not pressed", MISSED_RGBA),
            )
            for i, (text, rgba) in enumerate(entries):
                y = 1.0 - margin_y - (i + 1) * line
                mujoco.mjr_text(font, text, self._context, margin_x, y, *map(float, rgba[:3]))
        if caption:
            mujoco.mjr_text(font, caption, self._context, margin_x, margin_y, 0.9, 0.9, 0.9)

    def close(self) -> None:
        self._finalizer()


def _free(context: mujoco.MjrContext, gl) -> None:
    context.free()
    gl.free()
