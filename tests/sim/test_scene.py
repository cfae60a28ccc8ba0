import mujoco
import numpy as np
import pytest

from robostack.sim.arms import add_arm
from robostack.sim.scene import FIXED_CAMERAS, build_scene


@pytest.mark.parametrize("arm", ["panda", "so101"])
def test_arm_holds_its_home_pose_under_position_control(arm):
    scene = build_scene(arm)
    model, data = scene.model, mujoco.MjData(scene.model)
    joints = (*scene.arm.arm_joints, scene.arm.gripper_joint)
    qpos = [model.joint(j).qposadr[0] for j in joints]
    data.ctrl[[model.actuator(a).id for a in scene.arm.actuators]] = scene.arm.home
    mujoco.mj_step(model, data, nstep=1000)
    np.testing.assert_allclose(data.qpos[qpos], scene.arm.home, atol=0.02)


def test_panda_has_seven_limited_arm_joints_a_gripper_and_fast_physics():
    scene = build_scene("panda")
    model = scene.model
    assert len(scene.arm.arm_joints) == 7
    assert scene.arm.action_dim == 8
    assert model.opt.timestep <= 0.002
    for joint in scene.arm.arm_joints:
        assert model.jnt_limited[model.joint(joint).id]
    # Franka's published joint 4 range, in radians (not degrees).
    np.testing.assert_allclose(model.joint("panda_joint4").range, [-3.0718, -0.0698])


def test_so101_is_a_five_joint_arm_with_a_jaw():
    scene = build_scene("so101")
    assert len(scene.arm.arm_joints) == 5
    assert scene.arm.gripper_joint == "gripper"


def test_scene_has_fixed_and_wrist_cameras():
    model = build_scene("panda").model
    names = {model.camera(i).name for i in range(model.ncam)}
    assert set(FIXED_CAMERAS) | {"wrist"} <= names


def test_unknown_arm_is_rejected_with_the_known_names():
    spec = mujoco.MjSpec()
    spec.compiler.degree = False
    with pytest.raises(ValueError, match="so101"):
        add_arm(spec, "ur5")


def test_arm_builders_refuse_a_degree_spec():
    with pytest.raises(ValueError, match="degree"):
        add_arm(mujoco.MjSpec(), "panda")


def test_physics_slower_than_500hz_is_rejected():
    with pytest.raises(ValueError, match="500 Hz"):
        build_scene("panda", timestep=0.005)
