"""Offscreen camera rendering with the fast settings (no shadows/reflections, no multisampling).

Set ``MUJOCO_GL=egl`` (the default chosen here when unset) for headless GPU or Mesa rendering.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402


class CameraRenderer:
    """Renders named or free cameras of one model, keeping one GL context per image size."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self._model = model
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def _renderer(self, height: int, width: int) -> mujoco.Renderer:
        key = (height, width)
        if key not in self._renderers:
            max_w, max_h = self._model.vis.global_.offwidth, self._model.vis.global_.offheight
            if width > max_w or height > max_h:
                raise ValueError(f"image size {width}x{height} exceeds the offscreen buffer {max_w}x{max_h}")
            renderer = mujoco.Renderer(self._model, height=height, width=width)
            flags = renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
            self._renderers[key] = renderer
        return self._renderers[key]

    def render(self, data: mujoco.MjData, camera: str | mujoco.MjvCamera, height: int, width: int) -> np.ndarray:
        """RGB image (height, width, 3) uint8 from a named camera or a free ``MjvCamera``."""
        if isinstance(camera, str) and mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [self._model.camera(i).name for i in range(self._model.ncam)]
            raise ValueError(f"unknown camera {camera!r}; cameras in this scene: {names}")
        renderer = self._renderer(height, width)
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


def free_camera(lookat: np.ndarray, distance: float, azimuth_deg: float, elevation_deg: float) -> mujoco.MjvCamera:
    """A free camera orbiting ``lookat`` (a virtual view from any pose)."""
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = lookat
    camera.distance = distance
    camera.azimuth = azimuth_deg
    camera.elevation = elevation_deg
    return camera
