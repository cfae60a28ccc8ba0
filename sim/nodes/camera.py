"""The sim camera: renders the twin's scene from the sim arm's ``world`` stream and publishes
``frames`` exactly like a real camera node (``image`` (H, W, 3) uint8 RGB; meta ``index``,
``camera``, ``flags``).

Each camera node holds its own ``MjModel``/``MjData`` of the scene (built from the first world
message's ``arm``/``task``), so cameras in their own processes render in parallel like real
ones. Frames carry the capture stamp of the world they show.

- ``mode: realtime``: the node runs at ``fps`` and renders the newest world (a camera samples
  the scene at its own rate); when no new world came since the last frame it publishes nothing.
- ``mode: lockstep``: the node renders when a world's sim-time stamp reaches the next frame time
  on the ``fps`` grid, so which states get frames is deterministic. Wire ``world`` with
  ``mode: queue`` then, so no world is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from robostack.node import Input, Node, Output
from robostack.sim.nodes.world import WorldSample, world_from_message


@dataclass
class SimCameraParams:
    camera: str = "front"  # a scene camera: front, top, side, wrist
    width: int = 640
    height: int = 480
    fps: float = 30.0
    mode: Literal["realtime", "lockstep"] = "realtime"
    codec: Literal["raw", "jpeg", "png"] = "raw"

    def __post_init__(self) -> None:
        from robostack.sim.scene import MAX_RENDER_SIZE

        if not (0 < self.width <= MAX_RENDER_SIZE[0] and 0 < self.height <= MAX_RENDER_SIZE[1]):
            raise ValueError(f"params 'width'x'height' must be within 1..{MAX_RENDER_SIZE[0]} x "
                             f"1..{MAX_RENDER_SIZE[1]}, got {self.width}x{self.height}")
        if self.fps <= 0:
            raise ValueError(f"param 'fps' must be > 0, got {self.fps}")


class SimCameraNode(Node):
    """A camera of the twin (see the module docstring)."""

    inputs: ClassVar[dict[str, Input]] = {
        "world": Input(mode="latest", trigger=True, doc="the sim arm's world stream"),
    }
    outputs: ClassVar[dict[str, Output]] = {
        "frames": Output(doc="image (H, W, 3) uint8 RGB; meta: index, camera, flags"),
    }
    Params = SimCameraParams

    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        if params is None or getattr(params, "mode", "realtime") == "lockstep":
            return None
        return float(params.fps)

    def setup(self) -> None:
        if self.params.codec != "raw":
            self.set_codec("frames", "image", self.params.codec)
        self.model = None
        self.data = None
        self.renderer = None
        self.scene_key: tuple[str, str] | None = None
        self.index = 0
        self.last_stamp: int | None = None
        self.next_frame_ns: int | None = None
        self.grid_origin_ns: int | None = None
        self.frame_ns = int(round(1e9 / self.params.fps))
        self.render_ms: list[float] = []

    def step(self) -> None:
        if self.params.mode == "lockstep":
            for msg in self.read_all("world"):
                world = self._decode(msg)
                if world is None:
                    continue
                if self.next_frame_ns is None or world.stamp_ns >= self.next_frame_ns:
                    if self.grid_origin_ns is None:
                        self.grid_origin_ns = world.stamp_ns
                    # The next frame time on the fps grid (sim time) after this stamp.
                    k = (world.stamp_ns - self.grid_origin_ns) // self.frame_ns + 1
                    self.next_frame_ns = self.grid_origin_ns + k * self.frame_ns
                    self._render_and_publish(world)
            return
        msg = self.read("world")
        if msg is None:
            return
        world = self._decode(msg)
        if world is not None and world.stamp_ns != self.last_stamp:
            self._render_and_publish(world)

    def _decode(self, msg: Any) -> WorldSample | None:
        try:
            return world_from_message(msg.arrays, msg.meta, msg.stamp_ns)
        except ValueError as exc:
            self.log.warning("ignored a world message: %s", exc)
            return None

    def _ensure_scene(self, world: WorldSample) -> None:
        key = (world.arm, world.task)
        if key == self.scene_key:
            return
        import mujoco

        from robostack.sim.rendering import CameraRenderer
        from robostack.sim.scene import build_scene
        from robostack.sim.tasks import get_task

        if self.renderer is not None:
            self.renderer.close()
        scene = build_scene(world.arm, get_task(world.task))
        names = [scene.model.camera(i).name for i in range(scene.model.ncam)]
        if self.params.camera not in names:
            raise ValueError(f"param 'camera': the {world.arm}/{world.task} scene has no camera "
                             f"{self.params.camera!r}; cameras: {names}")
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self.renderer = CameraRenderer(self.model)
        self.scene_key = key
        self.log.info("rendering %s of the %s/%s scene at %dx%d", self.params.camera, world.arm, world.task,
                      self.params.width, self.params.height)

    def _render_and_publish(self, world: WorldSample) -> None:
        from robostack.clock import now_ns
        from robostack.sim.nodes.world import apply_world

        self._ensure_scene(world)
        t0 = now_ns()
        apply_world(self.model, self.data, world)
        image = self.renderer.render(self.data, self.params.camera, self.params.height, self.params.width)
        self.render_ms.append((now_ns() - t0) / 1e6)
        if len(self.render_ms) > 500:
            del self.render_ms[:250]
        gap = self.last_stamp is not None and world.stamp_ns - self.last_stamp > 3 * self.frame_ns
        flags = ["after_gap"] if gap else []
        self.publish("frames", {"image": image}, stamp_ns=world.stamp_ns,
                     meta={"index": self.index, "camera": self.name, "flags": flags, "episode": world.episode})
        self.index += 1
        self.last_stamp = world.stamp_ns

    def close(self) -> None:
        if getattr(self, "renderer", None) is not None:
            self.renderer.close()

    def extra_stats(self) -> dict[str, Any]:
        import numpy as np

        times = getattr(self, "render_ms", [])
        return {
            "frames": getattr(self, "index", 0),
            "render_ms_p50": round(float(np.percentile(times, 50)), 3) if times else None,
            "render_ms_p99": round(float(np.percentile(times, 99)), 3) if times else None,
        }


__all__ = ["SimCameraNode", "SimCameraParams"]
