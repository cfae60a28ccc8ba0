"""Jogging logic and PyBullet IK (Franka Panda URDF shipped with pybullet_data)."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from robostack.drivers.teleop.ik import PyBulletIK
from robostack.drivers.teleop.jog import Jogger
from robostack.drivers.teleop.spacemouse import deflection_to_velocity, import_pyspacemouse

PANDA = "pybullet_data:franka_panda/panda.urdf"
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.5, 0.0, -2.2, 0.0, 1.8, 0.8])


@pytest.fixture(scope="module")
def ik():
    solver = PyBulletIK(PANDA, "panda_hand", PANDA_JOINTS)
    yield solver
    solver.close()


def test_joint_keys_select_a_joint_and_step_it_and_plus_minus_scale_the_step():
    jog = Jogger(3, joint_step=0.05, lower=np.full(3, -1.0), upper=np.full(3, 1.0))
    jog.sync(np.zeros(3))
    for key in ["2", "up", "up", "+", "up", "right", "down", "-", "-", "left", "left", "down"]:
        assert jog.key(key)
    np.testing.assert_allclose(jog.target, [-0.025, 0.2, -0.1])
    assert not jog.key("x")
    for _ in range(50):
        jog.key("up")  # the target stays inside the limits
    assert jog.target[0] == 1.0


@pytest.mark.parametrize("key, axis, sign", [("w", 0, 1), ("s", 0, -1), ("a", 1, 1), ("d", 1, -1),
                                             ("r", 2, 1), ("f", 2, -1)])
def test_end_effector_keys_move_the_hand_one_step_along_their_axis_keeping_its_orientation(ik, key, axis, sign):
    jog = Jogger(7, ee_step=0.02, ik=ik)
    jog.sync(READY)
    assert jog.key("m") and jog.mode == "ee"
    pos0, orn0 = ik.forward(READY)
    for _ in range(3):
        assert jog.key(key)
    pos, orn = ik.forward(jog.target)
    want = pos0.copy()
    want[axis] += sign * 0.06
    np.testing.assert_allclose(pos, want, atol=1e-3)
    assert abs(abs(np.dot(orn, orn0)) - 1.0) < 1e-3  # same orientation (quaternion sign aside)
    assert np.max(np.abs(jog.target - READY)) < 0.5  # a nearby solution, not a flip


def test_unreachable_end_effector_target_leaves_the_target_unchanged_and_is_counted(ik):
    jog = Jogger(7, ee_step=2.0, ik=ik)  # 2 m: far outside the Panda's reach
    jog.sync(READY)
    jog.key("m")
    assert jog.key("w")
    np.testing.assert_array_equal(jog.target, READY)
    assert jog.unreachable == 1 and "unreachable" in jog.last_message


def test_arm_joints_missing_from_the_urdf_pass_through_unchanged(ik):
    solver = PyBulletIK(PANDA, "panda_hand", PANDA_JOINTS + [""])  # an 8th joint: a gripper
    try:
        jog = Jogger(8, ee_step=0.01, ik=solver)
        jog.sync(np.append(READY, 0.7))
        jog.key("m")
        assert jog.key("r")
        assert jog.target[7] == 0.7
    finally:
        solver.close()


def test_bad_urdf_link_or_joint_names_give_errors_that_list_what_exists():
    with pytest.raises(ValueError, match="has no link 'tool0'.*panda_hand"):
        PyBulletIK(PANDA, "tool0", PANDA_JOINTS)
    with pytest.raises(ValueError, match=r"has no joint\(s\) \['shoulder_pan'\]"):
        PyBulletIK(PANDA, "panda_hand", ["shoulder_pan"] + PANDA_JOINTS[1:])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PyBulletIK("pybullet_data:nope/robot.urdf", "x", ["a"])


def test_end_effector_mode_without_ik_is_refused_with_a_message():
    jog = Jogger(2)
    jog.key("m")
    assert jog.mode == "joint" and "needs a URDF" in jog.last_message


def test_spacemouse_deadband_and_scaling():
    np.testing.assert_allclose(deflection_to_velocity(0.04, -1.0, 0.525, 0.1, 0.05), [0.0, -0.1, 0.05])


def test_spacemouse_without_pyspacemouse_installed_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_pyspacemouse(name, *args, **kwargs):
        if name == "pyspacemouse":
            raise ImportError("No module named 'pyspacemouse'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspacemouse)
    with pytest.raises(ImportError, match="pip install pyspacemouse"):
        import_pyspacemouse()
