"""The sim collect flow end to end: launch/collect.yaml with the twin and the scripted expert runs
unattended to a finished dataset that validates."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robostack.dataset.reader import DatasetReader
from robostack.dataset.validate import validate
from robostack.sim.tasks import get_task

pytestmark = pytest.mark.slow
COLLECT = Path(__file__).resolve().parents[3] / "launch" / "collect.yaml"


def instruction(seed):
    from robostack.sim.scene import build_scene

    arm = build_scene("panda", None).arm
    return get_task("pick_place").sample_layout(seed, arm.workspace).instruction


def test_sim_collect_of_two_short_episodes_ends_by_itself_with_a_valid_dataset(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "robostack.cli", "launch", str(COLLECT), "--no-live", "--json",
           "--set", "robot=sim", "--set", "operator=expert", "--set", "episodes=2", "--set", f"out={out}",
           "--set", "episode_time=2.5", "--set", "seed=10", "--set", "sim_width=160", "--set", "sim_height=120"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads(run.stdout)
    assert summary["nodes"]["recorder"]["exit_codes"][-1] == 0  # the recorder ended the graph
    assert validate(out, decode_videos=True).problems == []
    reader = DatasetReader(out)
    assert reader.num_episodes == 2
    assert sorted(reader.tasks) == sorted({instruction(10), instruction(11)})
    for index in range(2):
        rows = reader.load_episode(index).columns
        assert abs(len(rows["tick_ns"]) - 75) <= 3  # 2.5 s at 30 fps: the twin's episode, not the recorder's timer
        state, action = rows["observation.state"], rows["action"]
        assert state.shape[1] == action.shape[1] == 8
        assert np.abs(state[-1] - state[0]).max() > 0.1  # the expert moved the arm
        # the arm follows the operator's commands (within the tracking lag of the actuators)
        assert np.abs(state[-1, :7] - action[-1, :7]).max() < 0.2
        frames = [img for _, img in reader.frames(index, "observation.images.front")]
        assert len(frames) == len(rows["tick_ns"]) and frames[0].shape == (120, 160, 3)
