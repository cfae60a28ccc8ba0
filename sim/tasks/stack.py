"""``stack``: put the named cube on top of the other one (red and blue both on the table)."""

from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np

from robostack.sim.arms.base import ArmInfo, Workspace
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


def nearest_equivalent_yaw(yaw: float, reference: float) -> float:
    """``yaw`` shifted by a multiple of pi/2 (a cube's symmetry) to lie closest to ``reference``."""
    return reference + (yaw - reference + np.pi / 4) % (np.pi / 2) - np.pi / 4


@register_task
class Stack(Task):
    name = "stack"
    time_limit_s = 15.0
    movable_objects = ("cube_red", "cube_blue")

    def build(self, spec: mujoco.MjSpec, arm: ArmInfo) -> None:
        for color in CUBE_COLORS:
            add_cube(spec, f"cube_{color}", arm.workspace.cube_size, CUBE_COLORS[color], mass=0.05)

    def sample_layout(self, seed: int, workspace: Workspace) -> Layout:
        rng = np.random.default_rng(seed)
        size = workspace.cube_size
        cubes = sample_separated_xy(rng, workspace, 2, 2.5 * size, [])
        top, base = (str(c) for c in rng.permutation(list(CUBE_COLORS)))
        poses = {
            f"cube_{color}": ObjectPose((float(xy[0]), float(xy[1]), size / 2), float(rng.uniform(-np.pi / 4, np.pi / 4)))
            for color, xy in zip(CUBE_COLORS, cubes)
        }
        return Layout(
            seed=seed,
            poses=poses,
            instruction=f"stack the {top} cube on the {base} cube",
            params={"top": top, "base": base},
        )

    def instructed_objects(self, layout: Layout) -> tuple[str, ...]:
        return (f"cube_{layout.params['top']}", f"cube_{layout.params['base']}")

    def is_success(self, layout: Layout, state: WorldState, workspace: Workspace) -> bool:
        size = workspace.cube_size
        top_name, base_name = self.instructed_objects(layout)
        top = state.positions[top_name]
        base = state.positions[base_name]
        aligned = np.linalg.norm(top[:2] - base[:2]) < 0.4 * size
        on_top = abs(top[2] - base[2] - size) < 0.2 * size
        base_on_table = base[2] < 0.6 * size
        released = top_name not in state.touching_gripper
        return bool(aligned and on_top and base_on_table and released)

    def expert_waypoints(
        self, instruction: str, positions: Mapping[str, np.ndarray], yaws: Mapping[str, float], workspace: Workspace
    ) -> list[Waypoint]:
        top_color = named_color(instruction)
        base_color = next(c for c in CUBE_COLORS if c != top_color)
        size = workspace.cube_size
        up = workspace.approach_height
        x, y, z = positions[f"cube_{top_color}"]
        cube = f"cube_{top_color}"
        yaw = yaws[cube]
        hold_dz = -0.1 * size  # the grasped cube's centre sits this far from the tool point
        bx, by, bz = positions[f"cube_{base_color}"]
        place_yaw = nearest_equivalent_yaw(yaws[f"cube_{base_color}"], yaw)
        carry_z = bz + 2 * size + up * 0.6
        release_z = bz + size + 0.15 * size
        return [
            Waypoint((x, y, z + up), yaw, "open", 1.5),
            Waypoint((x, y, z - 0.1 * size), yaw, "open", 1.0),
            Waypoint((x, y, z - 0.1 * size), yaw, "closed", 0.6),
            Waypoint((x, y, carry_z), yaw, "closed", 0.9),
            Waypoint((bx, by, carry_z - hold_dz), place_yaw, "closed", 1.4, holding=cube),
            Waypoint((bx, by, release_z - hold_dz), place_yaw, "closed", 0.9, holding=cube),
            Waypoint((bx, by, release_z - hold_dz), place_yaw, "open", 0.4, holding=cube),
            Waypoint((bx, by, carry_z), place_yaw, "open", 0.8),
        ]
