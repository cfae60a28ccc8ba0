"""``pick_place``: put the named cube (red or blue, both on the table) into the bin."""

from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np

from robostack.sim.arms.base import WORLD_CONAFFINITY, WORLD_CONTYPE, ArmInfo, Workspace
from robostack.sim.tasks import register_task
from robostack.sim.tasks.base import (
    CUBE_COLORS,
    Layout,
    ObjectPose,
    Task,
    Waypoint,
    WorldState,
    add_cube,
    named_color,
    sample_separated_xy,
)

BIN_FLOOR = 0.006
BIN_WALL = 0.008


def bin_inner_half(workspace: Workspace) -> float:
    return 1.5 * workspace.cube_size


def bin_wall_height(workspace: Workspace) -> float:
    return 0.8 * workspace.cube_size


@register_task
class PickPlace(Task):
    name = "pick_place"
    time_limit_s = 15.0
    movable_objects = ("cube_red", "cube_blue")
    fixtures = ("bin",)

    def build(self, spec: mujoco.MjSpec, arm: ArmInfo) -> None:
        size = arm.workspace.cube_size
        for color in CUBE_COLORS:
            add_cube(spec, f"cube_{color}", size, CUBE_COLORS[color], mass=0.05)
        inner = bin_inner_half(arm.workspace)
        height = bin_wall_height(arm.workspace)
        # A mocap body: the layout moves it at reset without recompiling the model.
        bin_body = spec.worldbody.add_body(name="bin", pos=[0, 0, 0], mocap=True)
        boxes = [((inner + BIN_WALL, inner + BIN_WALL, BIN_FLOOR / 2), (0, 0, BIN_FLOOR / 2))]
        for sign in (-1, 1):
            boxes.append(((BIN_WALL / 2, inner + BIN_WALL, height / 2), (sign * (inner + BIN_WALL / 2), 0, height / 2)))
            boxes.append(((inner, BIN_WALL / 2, height / 2), (0, sign * (inner + BIN_WALL / 2), height / 2)))
        for index, (half, pos) in enumerate(boxes):
            bin_body.add_geom(
                name=f"bin_part{index}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=list(half),
                pos=list(pos),
                rgba=[0.25, 0.6, 0.3, 1],
                contype=WORLD_CONTYPE,
                conaffinity=WORLD_CONAFFINITY,
            )

    def sample_layout(self, seed: int, workspace: Workspace) -> Layout:
        rng = np.random.default_rng(seed)
        size = workspace.cube_size
        center = np.asarray(workspace.center_xy)
        half = np.asarray(workspace.half_extent_xy)
        side = rng.choice([-1.0, 1.0])
        bin_xy = center + np.array([rng.uniform(-0.5, 0.5) * half[0], side * rng.uniform(0.55, 0.9) * half[1]])
        keep_out = (bin_inner_half(workspace) + BIN_WALL) * np.sqrt(2) + 0.8 * size
        cubes = sample_separated_xy(rng, workspace, 2, 2.2 * size, [(bin_xy, keep_out)])
        target = str(rng.choice(list(CUBE_COLORS)))
        poses = {
            f"cube_{color}": ObjectPose((float(xy[0]), float(xy[1]), size / 2), float(rng.uniform(-np.pi / 4, np.pi / 4)))
            for color, xy in zip(CUBE_COLORS, cubes)
        }
        poses["bin"] = ObjectPose((float(bin_xy[0]), float(bin_xy[1]), 0.0), 0.0)
        return Layout(seed=seed, poses=poses, instruction=f"put the {target} cube in the bin", params={"target": target})

    def instructed_objects(self, layout: Layout) -> tuple[str, ...]:
        return (f"cube_{layout.params['target']}",)

    def is_success(self, layout: Layout, state: WorldState, workspace: Workspace) -> bool:
        cube, = self.instructed_objects(layout)
        pos = state.positions[cube]
        offset = np.abs(pos[:2] - state.positions["bin"][:2])
        inside = bool(np.all(offset < bin_inner_half(workspace) - 0.25 * workspace.cube_size))
        resting = pos[2] < BIN_FLOOR + bin_wall_height(workspace)
        return inside and resting and cube not in state.touching_gripper

    def expert_waypoints(
        self, instruction: str, positions: Mapping[str, np.ndarray], yaws: Mapping[str, float], workspace: Workspace
    ) -> list[Waypoint]:
        cube = f"cube_{named_color(instruction)}"
        size = workspace.cube_size
        up = workspace.approach_height
        x, y, z = positions[cube]
        yaw = yaws[cube]
        place_yaw = yaw
        hold_dz = -0.1 * size  # the grasped cube's centre sits this far from the tool point
        bx, by, bz = positions["bin"]
        carry_z = bz + bin_wall_height(workspace) + size + up * 0.6
        release_z = bz + BIN_FLOOR + size / 2 + 0.2 * size
        return [
            Waypoint((x, y, z + up), yaw, "open", 1.5),
            Waypoint((x, y, z - 0.1 * size), yaw, "open", 1.0),
            Waypoint((x, y, z - 0.1 * size), yaw, "closed", 0.6),
            Waypoint((x, y, max(carry_z, z + up)), yaw, "closed", 0.9),
            Waypoint((bx, by, carry_z - hold_dz), place_yaw, "closed", 1.4, holding=cube),
            Waypoint((bx, by, release_z - hold_dz), place_yaw, "closed", 0.7, holding=cube),
            Waypoint((bx, by, release_z - hold_dz), place_yaw, "open", 0.4, holding=cube),
            Waypoint((bx, by, carry_z), place_yaw, "open", 0.8),
        ]
