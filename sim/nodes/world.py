"""The ``world`` topic: everything a renderer needs to reproduce the twin's scene, as arrays.

A world message carries

- arrays ``qpos`` (nq,) float64, ``mocap_pos`` (nmocap, 3) and ``mocap_quat`` (nmocap, 4)
  float64: the full physical state to render (velocities are not needed to draw a frame);
- array ``object_poses`` (N, 7) float64: privileged poses (x, y, z, qw, qx, qy, qz) of the
  task's objects, in the order of meta ``objects`` (what a scripted expert reads);
- meta ``arm``, ``task`` (to build the same scene), ``sim_time_ns`` (physics time since the
  episode's reset), ``episode``, ``seed``, ``phase``, ``instruction`` (so a consumer can tell
  which episode a state belongs to without racing the ``episode`` topic), and in lockstep mode
  ``ack`` (see ``docs/sim.md``).

The message stamp is the capture stamp of the state it shows (the same stamp as the arm's
``state`` message of that tick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

WORLD_META_KEYS = ("arm", "task", "sim_time_ns", "episode", "seed", "phase", "instruction")


@dataclass(frozen=True)
class WorldSample:
    """A decoded ``world`` message."""

    qpos: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    objects: tuple[str, ...]
    object_poses: np.ndarray
    arm: str
    task: str
    sim_time_ns: int
    episode: int
    seed: int
    phase: str
    instruction: str
    stamp_ns: int = 0
    ack: int | None = None

    def priv_observation(self) -> dict[str, np.ndarray]:
        """The ``priv/<object>`` entries of a :class:`~robostack.sim.env.TwinEnv` observation."""
        return {f"priv/{name}": self.object_poses[i] for i, name in enumerate(self.objects)}


def task_bodies(model: Any, task: Any) -> dict[str, int]:
    """Body ids of a task's objects and fixtures (what ``object_poses`` lists), by name."""
    return {name: model.body(name).id for name in (*task.movable_objects, *task.fixtures)}


def world_message_parts(
    model: Any,
    data: Any,
    *,
    arm: str,
    task: str,
    objects: Mapping[str, int],
    episode: int,
    seed: int,
    phase: str,
    instruction: str,
    ack: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` of a world message for a MuJoCo ``model``/``data``; ``objects`` maps
    object names to body ids."""
    names = list(objects)
    ids = np.fromiter(objects.values(), dtype=np.int64, count=len(names))
    poses = np.concatenate([data.xpos[ids], data.xquat[ids]], axis=1) if names else np.zeros((0, 7))
    arrays = {
        "qpos": data.qpos.copy(),
        "mocap_pos": data.mocap_pos.copy(),
        "mocap_quat": data.mocap_quat.copy(),
        "object_poses": poses,
    }
    meta: dict[str, Any] = {
        "arm": arm,
        "task": task,
        "sim_time_ns": int(round(data.time * 1e9)),
        "episode": int(episode),
        "seed": int(seed),
        "phase": phase,
        "instruction": instruction,
        "objects": names,
    }
    if ack is not None:
        meta["ack"] = int(ack)
    return arrays, meta


def world_from_message(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stamp_ns: int = 0) -> WorldSample:
    """Decode and check a world message; raises ``ValueError`` naming what is missing or wrong."""
    for name in ("qpos", "mocap_pos", "mocap_quat", "object_poses"):
        if name not in arrays:
            raise ValueError(f"world message has no {name!r} array (has {sorted(arrays)})")
    missing = [k for k in WORLD_META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"world message meta lacks {missing}")
    objects = meta.get("objects", [])
    if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
        raise ValueError(f"world message meta 'objects' must be a list of names, got {objects!r}")
    qpos = np.asarray(arrays["qpos"], dtype=np.float64)
    mocap_pos = np.asarray(arrays["mocap_pos"], dtype=np.float64).reshape(-1, 3)
    mocap_quat = np.asarray(arrays["mocap_quat"], dtype=np.float64).reshape(-1, 4)
    poses = np.asarray(arrays["object_poses"], dtype=np.float64)
    if qpos.ndim != 1:
        raise ValueError(f"world 'qpos' must be 1-D, got shape {qpos.shape}")
    if poses.shape != (len(objects), 7):
        raise ValueError(f"world 'object_poses' must have shape ({len(objects)}, 7), got {poses.shape}")
    if mocap_pos.shape[0] != mocap_quat.shape[0]:
        raise ValueError(f"world mocap arrays disagree: {mocap_pos.shape} vs {mocap_quat.shape}")
    ack = meta.get("ack")
    return WorldSample(
        qpos=qpos, mocap_pos=mocap_pos, mocap_quat=mocap_quat, objects=tuple(objects), object_poses=poses,
        arm=str(meta["arm"]), task=str(meta["task"]), sim_time_ns=int(meta["sim_time_ns"]),
        episode=int(meta["episode"]), seed=int(meta["seed"]), phase=str(meta["phase"]),
        instruction=str(meta["instruction"]), stamp_ns=int(stamp_ns), ack=None if ack is None else int(ack),
    )


def apply_world(model: Any, data: Any, world: WorldSample) -> None:
    """Put ``world``'s state into ``data`` and update what drawing needs (poses, cameras, lights);
    raises ``ValueError`` when the world was made for a different scene."""
    import mujoco

    if world.qpos.shape[0] != model.nq or world.mocap_pos.shape[0] != model.nmocap:
        raise ValueError(
            f"world of {world.arm}/{world.task} has nq={world.qpos.shape[0]}, nmocap={world.mocap_pos.shape[0]} "
            f"but this scene has nq={model.nq}, nmocap={model.nmocap}"
        )
    data.qpos[:] = world.qpos
    data.mocap_pos[:] = world.mocap_pos
    data.mocap_quat[:] = world.mocap_quat
    data.time = world.sim_time_ns * 1e-9
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)


__all__ = ["WORLD_META_KEYS", "WorldSample", "apply_world", "task_bodies", "world_from_message", "world_message_parts"]
