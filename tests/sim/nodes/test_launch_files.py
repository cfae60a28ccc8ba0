"""launch/twin.yaml and launch/collect.yaml: one file for the twin and the real SO-101, swapping
node classes (and the sim cameras' world input) by the `robot` argument."""

from pathlib import Path

import pytest

from robostack.graph import GraphError, load

LAUNCH = Path(__file__).resolve().parents[3] / "launch"


def classes(graph):
    return {name: cfg.class_path for name, cfg in graph.nodes.items()}


def test_collect_in_sim_is_the_twin_with_the_expert_and_a_twin_paced_recorder():
    g = load(LAUNCH / "collect.yaml", ["robot=sim", "operator=expert", "episodes=10", "out=/tmp/x"])
    assert classes(g) == {
        "arm": "robostack.sim.nodes.arm:SimArmNode",
        "front": "robostack.sim.nodes.camera:SimCameraNode",
        "wrist": "robostack.sim.nodes.camera:SimCameraNode",
        "expert": "robostack.sim.nodes.expert:SimExpertNode",
        "recorder": "robostack.drivers.recorder.node:Recorder",
    }
    rec = g.nodes["recorder"]
    assert rec.inputs["episode"]["from"] == "arm/episode" and rec.inputs["action"]["from"] == "expert/action"
    assert rec.params["episodes"] == 10 and rec.params["autostart"] is False and rec.shutdown_on_exit
    assert g.nodes["arm"].params["episodes"] == 10 and g.nodes["arm"].params["mode"] == "realtime"
    assert g.nodes["front"].inputs["world"]["from"] == "arm/world"


@pytest.mark.parametrize("operator,source", [("auto", "leader"), ("leader", "leader"), ("keyboard", "keyboard")])
def test_collect_on_the_real_so101_swaps_classes_only(operator, source):
    g = load(LAUNCH / "collect.yaml", ["robot=so101", f"operator={operator}"])
    c = classes(g)
    assert c["arm"] == "robostack.drivers.arm.servo_arm:ServoArmNode"
    assert c["front"] == c["wrist"] == "robostack.drivers.cameras.nodes:V4L2CameraNode"
    assert "expert" not in c and source in c
    assert g.nodes["arm"].inputs["command"]["from"] == f"{source}/action"
    assert g.nodes["recorder"].inputs["action"]["from"] == f"{source}/action"
    assert "episode" not in g.nodes["recorder"].inputs and g.nodes["front"].inputs == {}


def test_the_expert_on_the_real_robot_is_refused_with_the_reason():
    with pytest.raises(GraphError, match="operator='expert' has no case"):
        load(LAUNCH / "collect.yaml", ["robot=so101", "operator=expert"])


@pytest.mark.parametrize("robot", ["sim", "so101"])
@pytest.mark.parametrize("mode", ["realtime", "lockstep"])
def test_twin_graph_validates_for_both_robots_and_modes(robot, mode):
    g = load(LAUNCH / "twin.yaml", [f"robot={robot}", f"mode={mode}"])
    assert g.nodes["mirror"].inputs["state"]["from"] == "arm/state"
    if robot == "sim":
        assert g.nodes["front"].inputs["world"]["mode"] == ("queue" if mode == "lockstep" else "latest")
        assert g.nodes["operator"].params["mode"] == mode
    else:
        assert "operator" not in g.nodes
