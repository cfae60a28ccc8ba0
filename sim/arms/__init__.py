"""Arm models built with ``mujoco.MjSpec``; ``ARM_BUILDERS`` maps an arm name to its builder."""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Callable

if TYPE_CHECKING:
    import mujoco

    from robostack.sim.arms.base import ArmInfo


def _panda(spec: mujoco.MjSpec) -> ArmInfo:
    from robostack.sim.arms.panda import add_panda

    return add_panda(spec)


def _so101(spec: mujoco.MjSpec) -> ArmInfo:
    from robostack.sim.arms.so101 import add_so101

    return add_so101(spec)


ARM_BUILDERS: dict[str, Callable[[mujoco.MjSpec], ArmInfo]] = {"panda": _panda, "so101": _so101}


def add_arm(spec: mujoco.MjSpec, name: str) -> ArmInfo:
    """Add the arm called ``name`` (see ``ARM_BUILDERS``) to ``spec``."""
    try:
        builder = ARM_BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown arm {name!r}; known arms: {sorted(ARM_BUILDERS)}") from None
    if spec.compiler.degree:
        raise ValueError("arm builders write radians: set spec.compiler.degree = False first")
    return builder(spec)
