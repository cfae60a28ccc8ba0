"""The task contract: what objects a scene gets, how a seed lays them out, when it is solved,
and the waypoints a scripted expert follows.

Everything here except :meth:`Task.build` works on plain arrays (object positions and
orientations, which objects the gripper touches), so the MuJoCo and PyBullet engines share it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar
from collections.abc import Mapping

import mujoco
import numpy as np

from robostack.sim.arms.base import WORLD_CONAFFINITY, WORLD_CONTYPE, ArmInfo, Workspace

CUBE_COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.15, 0.12, 1.0),
    "blue": (0.12, 0.3, 0.85, 1.0),
}


@dataclass(frozen=True)
class ObjectPose:
    """Position (m, world) and yaw (rad) of a task object."""

    pos: tuple[float, float, float]
    yaw: float

    def quat(self) -> np.ndarray:
        """Orientation (w, x, y, z): a pure rotation about world z."""
        return np.array([np.cos(self.yaw / 2), 0.0, 0.0, np.sin(self.yaw / 2)])


@dataclass(frozen=True)
class Layout:
    """A seeded initial state: object poses, the instruction, and task parameters."""

    seed: int
    poses: Mapping[str, ObjectPose]
    instruction: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldState:
    """What a success check looks at: object positions/orientations and gripper contacts."""

    positions: Mapping[str, np.ndarray]
    quats: Mapping[str, np.ndarray]
    touching_gripper: frozenset[str]


@dataclass(frozen=True)
class Waypoint:
    """A goal for the scripted expert: the tool point at ``pos`` with the gripper pointing down
    at ``yaw`` and the gripper at ``grip`` (``"open"``/``"closed"``), taking ``duration_s``.

    With ``holding`` set to an object name, ``pos``/``yaw`` are where that (grasped) object
    should be instead; the expert measures how the object sits in the hand when it gets there
    and moves the tool accordingly (closed-loop placing)."""

    pos: tuple[float, float, float]
    yaw: float
    grip: str
    duration_s: float
    holding: str | None = None


class Task(ABC):
    """One manipulation task. Subclasses are registered with :func:`register_task`."""

    name: ClassVar[str]
    time_limit_s: ClassVar[float]
    movable_objects: ClassVar[tuple[str, ...]]
    """Bodies with a free joint, named as in the scene."""
    fixtures: ClassVar[tuple[str, ...]] = ()
    """Mocap bodies the layout moves (bins, targets)."""

    @abstractmethod
    def build(self, spec: mujoco.MjSpec, arm: ArmInfo) -> None:
        """Add the task's bodies to the scene spec."""

    @abstractmethod
    def sample_layout(self, seed: int, workspace: Workspace) -> Layout:
        """Initial state for ``seed``; pure numpy so every engine gets the same layout."""

    @abstractmethod
    def is_success(self, layout: Layout, state: WorldState, workspace: Workspace) -> bool:
        """Whether ``state`` solves the task laid out by ``layout``."""

    def instructed_objects(self, layout: Layout) -> tuple[str, ...]:
        """The movable objects ``layout``'s instruction names, the one to move first; () when the
        instruction names none."""
        return ()

    @abstractmethod
    def expert_waypoints(
        self, instruction: str, positions: Mapping[str, np.ndarray], yaws: Mapping[str, float], workspace: Workspace
    ) -> list[Waypoint]:
        """Tool-point waypoints that solve the task from the observed object poses."""


def add_cube(spec: mujoco.MjSpec, name: str, size: float, rgba: tuple[float, ...], mass: float) -> None:
    """A free-floating cube body called ``name`` (placed by the layout at reset)."""
    body = spec.worldbody.add_body(name=name, pos=[0, 0, size / 2])
    body.add_freejoint(name=f"{name}_free")
    body.add_geom(
        name=f"{name}_geom",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[size / 2] * 3,
        rgba=list(rgba),
        mass=mass,
        friction=[1.2, 0.01, 0.0005],
        condim=4,
        contype=WORLD_CONTYPE,
        conaffinity=WORLD_CONAFFINITY,
    )


def named_color(instruction: str) -> str:
    """First cube colour named in an instruction (the experts' language grounding)."""
    hits = [(instruction.find(f"{c} "), c) for c in CUBE_COLORS if f"{c} " in instruction]
    if not hits:
        raise ValueError(f"instruction names no cube colour of {sorted(CUBE_COLORS)}: {instruction!r}")
    return min(hits)[1]


def sample_separated_xy(
    rng: np.random.Generator, workspace: Workspace, count: int, min_dist: float, keep_out: list[tuple[np.ndarray, float]]
) -> list[np.ndarray]:
    """``count`` xy points in the workspace, ``min_dist`` apart and clear of ``keep_out`` discs."""
    center = np.asarray(workspace.center_xy)
    half = np.asarray(workspace.half_extent_xy)
    points: list[np.ndarray] = []
    for _ in range(10_000):
        candidate = center + rng.uniform(-half, half)
        if all(np.linalg.norm(candidate - p) >= min_dist for p in points) and all(
            np.linalg.norm(candidate - c) >= r for c, r in keep_out
        ):
            points.append(candidate)
            if len(points) == count:
                return points
    raise RuntimeError("workspace too small to separate the task objects")
