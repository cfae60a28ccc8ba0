"""SpaceMouse teleop through the optional ``pyspacemouse`` package (``pip install pyspacemouse``;
needs the device and hidapi): the puck's translation moves the end effector (velocity control,
IK as in keyboard end-effector jog), publishing ``action`` for an arm's ``command`` input.

Not tested against a device here (none is attached to CI); the IK path is the keyboard jog's,
which is tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robostack.drivers.teleop.jog import Jogger
from robostack.node import Input, Node, Output


def import_pyspacemouse() -> Any:
    try:
        import pyspacemouse  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError("SpaceMouse teleop needs the optional package 'pyspacemouse' "
                          "(pip install pyspacemouse; it also needs the hidapi system library)") from exc
    return pyspacemouse


@dataclass
class SpaceMouseParams:
    urdf: str = ""
    end_effector_link: str = ""
    urdf_joints: list[str] = field(default_factory=list)
    rate_hz: float = 50.0
    max_speed: float = 0.10  # m/s at full deflection
    deadband: float = 0.05  # fraction of full deflection ignored (sensor noise)

    def __post_init__(self) -> None:
        if not self.urdf or not self.end_effector_link:
            raise ValueError("params 'urdf' and 'end_effector_link' are required (SpaceMouse moves the end effector)")
        if self.rate_hz <= 0 or self.max_speed <= 0 or not 0 <= self.deadband < 1:
            raise ValueError("params 'rate_hz' and 'max_speed' must be > 0 and 'deadband' in [0, 1)")


def deflection_to_velocity(x: float, y: float, z: float, max_speed: float, deadband: float) -> np.ndarray:
    """Puck deflection (each in [-1, 1]) to an end-effector velocity (m/s), with a deadband."""
    d = np.clip(np.array([x, y, z], dtype=np.float64), -1.0, 1.0)
    mag = np.abs(d)
    scaled = np.where(mag > deadband, np.sign(d) * (mag - deadband) / (1.0 - deadband), 0.0)
    return scaled * max_speed


class SpaceMouseNode(Node):
    """End-effector velocity teleop from a 3Dconnexion SpaceMouse (optional ``pyspacemouse``)."""

    inputs = {"state": Input(mode="latest", doc="the arm's state: start position and joint names")}
    outputs = {"action": Output(doc="position (D,) float32 target; meta joints, source")}
    Params = SpaceMouseParams

    def setup(self) -> None:
        self._device = import_pyspacemouse()
        if not self._device.open():
            raise RuntimeError("no SpaceMouse found (is it plugged in, and may this user read hidraw devices?)")
        self.jogger: Jogger | None = None
        self._ik = None
        self.joint_names: list[str] = []

    def step(self) -> None:
        p = self.params
        state = self.read("state")
        if state is not None and self.jogger is None:
            from robostack.drivers.teleop.ik import PyBulletIK

            names = state.meta.get("joints")
            self.joint_names = list(names) if isinstance(names, list) else \
                [f"joint{i + 1}" for i in range(state["position"].shape[0])]
            self._ik = PyBulletIK(p.urdf, p.end_effector_link, list(p.urdf_joints) or self.joint_names)
            self.jogger = Jogger(len(self.joint_names), ik=self._ik)
            self.jogger.sync(state["position"])
        if self.jogger is None:
            return
        reading = self._device.read()
        velocity = deflection_to_velocity(reading.x, reading.y, reading.z, p.max_speed, p.deadband)
        if np.any(velocity):
            self.jogger.move_end_effector(velocity / p.rate_hz)
        self.publish("action", {"position": self.jogger.target.astype(np.float32)},
                     meta={"joints": self.joint_names, "source": "spacemouse"})

    def close(self) -> None:
        if getattr(self, "_ik", None) is not None:
            self._ik.close()
        device = getattr(self, "_device", None)
        if device is not None and hasattr(device, "close"):
            device.close()
