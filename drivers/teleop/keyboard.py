"""Keyboard jog teleop: keys from the launcher's terminal (``terminal/keys``, works in a plain
terminal and over SSH) move a target pose, published as ``action`` for an arm's ``command`` input.

Joint mode moves one joint at a time; end-effector mode (with ``urdf`` and
``end_effector_link``) moves the tool point in x/y/z through PyBullet IK, keeping its orientation.
The key map is in :mod:`robostack.drivers.teleop.jog`. The target starts at the arm's measured
position (its ``state``) and is republished at ``rate_hz`` even while no key is pressed, so the
arm holds it; when this node stops, the arm's command hold time and watchdog take over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robostack.drivers.teleop.jog import Jogger
from robostack.node import Input, Node, Output


@dataclass
class KeyboardJogParams:
    rate_hz: float = 30.0
    joint_step: float = 0.05  # rad per key press (joint mode)
    ee_step: float = 0.01  # m per key press (end-effector mode)
    urdf: str = ""  # enables end-effector mode; "pybullet_data:..." names a model shipped with pybullet
    end_effector_link: str = ""
    urdf_joints: list[str] = field(default_factory=list)  # URDF joint per arm joint ("" = not in URDF)
    position_lower: list[float] | None = None  # keep the target inside these (the arm clamps anyway)
    position_upper: list[float] | None = None

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.joint_step <= 0 or self.ee_step <= 0:
            raise ValueError("params 'rate_hz', 'joint_step' and 'ee_step' must be > 0")
        if bool(self.urdf) != bool(self.end_effector_link):
            raise ValueError("params 'urdf' and 'end_effector_link' go together (end-effector mode needs both)")


class KeyboardJogNode(Node):
    """Jogs an arm from the keyboard (see :mod:`robostack.drivers.teleop.jog` for the keys)."""

    inputs = {
        "keys": Input(mode="queue", queue_size=256, doc="wire from: terminal/keys"),
        "state": Input(mode="latest", doc="the arm's state: start position and joint names"),
    }
    outputs = {"action": Output(doc="position (D,) float32 target; meta joints, source")}
    Params = KeyboardJogParams

    def setup(self) -> None:
        self.jogger: Jogger | None = None
        self.joint_names: list[str] = []
        self._ik = None
        self.keys_seen = 0
        self.keys_unknown = 0

    def _make_jogger(self, names: list[str]) -> Jogger:
        p = self.params
        if p.urdf:
            from robostack.drivers.teleop.ik import PyBulletIK

            urdf_joints = list(p.urdf_joints) or names
            if len(urdf_joints) != len(names):
                raise ValueError(f"param 'urdf_joints' has {len(urdf_joints)} entries for the arm's {len(names)} joints")
            self._ik = PyBulletIK(p.urdf, p.end_effector_link, urdf_joints)
        lower = None if p.position_lower is None else np.asarray(p.position_lower)
        upper = None if p.position_upper is None else np.asarray(p.position_upper)
        return Jogger(len(names), p.joint_step, p.ee_step, ik=self._ik, lower=lower, upper=upper)

    def step(self) -> None:
        state = self.read("state")
        if state is not None:
            if self.jogger is None:
                names = state.meta.get("joints")
                self.joint_names = list(names) if isinstance(names, list) else \
                    [f"joint{i + 1}" for i in range(state["position"].shape[0])]
                self.jogger = self._make_jogger(self.joint_names)
                self.log.info("jogging %s; keys: 1-9 joint, up/down move, +/- step, m end-effector mode",
                              self.joint_names)
            if self.jogger.target is None:
                self.jogger.sync(state["position"])
        for msg in self.read_all("keys"):
            key = msg.meta.get("key")
            if not isinstance(key, str) or self.jogger is None:
                continue
            self.keys_seen += 1
            mode, joint = self.jogger.mode, self.jogger.joint
            if not self.jogger.key(key):
                self.keys_unknown += 1
            elif self.jogger.mode != mode or self.jogger.joint != joint or self.jogger.last_message:
                self.log.info("%s | joint %d (%s) | step %.3f rad / %.1f mm", self.jogger.last_message or
                              f"mode: {self.jogger.mode}", self.jogger.joint + 1,
                              self.joint_names[self.jogger.joint], self.jogger.joint_step,
                              self.jogger.ee_step * 1000)
                self.jogger.last_message = ""
        if self.jogger is not None and self.jogger.target is not None:
            self.publish("action", {"position": self.jogger.target.astype(np.float32)},
                         meta={"joints": self.joint_names, "source": "keyboard"})

    def close(self) -> None:
        if self._ik is not None:
            self._ik.close()

    def extra_stats(self) -> dict[str, Any]:
        jog = self.jogger
        return {"keys": self.keys_seen, "keys_unknown": self.keys_unknown,
                "mode": jog.mode if jog else None, "unreachable": jog.unreachable if jog else 0}
