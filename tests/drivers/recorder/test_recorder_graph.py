"""The recorder as a real node process in a launched graph, fed by real publisher processes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from robostack.dataset.reader import DatasetReader
from robostack.dataset.validate import validate
from robostack.drivers.cameras.pattern import read_frame_counter

pytestmark = pytest.mark.slow
ROBOSTACK = [sys.executable, "-m", "robostack.cli"]

GRAPH = """
name: {name}
nodes:
  cam_front: {{class: robostack.drivers.recorder.sources:PatternCamera, params: {{name: front, width: 160, height: 120}}}}
  cam_wrist:
    class: robostack.drivers.recorder.sources:PatternCamera
    params: {{name: wrist, width: 128, height: 96, pause_after: {pause_after}, pause_s: 0.4}}
  arm: {{class: robostack.drivers.recorder.sources:JointWave}}
  rec:
    class: robostack.drivers.recorder.node:Recorder
    params: {{out: "{out}", cameras: [front, wrist], episodes: {episodes}, episode_time_s: {episode_time}, reset_time_s: 0.3, task: "stack the blocks", keyboard: false}}
    inputs: {{camera0: cam_front/frames, camera1: cam_wrist/frames, state: arm/state, action: arm/action}}
    shutdown_on_exit: true
    backoff_s: 0.2
"""


def graph_file(tmp_path, **kw):
    defaults = {"name": "rec", "pause_after": -1, "episodes": 2, "episode_time": 2.0}
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(GRAPH.format(out=tmp_path / "ds", **{**defaults, **kw})))
    return path


def check_frame_exact(reader, index):
    rows = reader.load_episode(index).columns
    for key in reader.video_keys:
        counters = [read_frame_counter(img) for _, img in reader.frames(index, key)]
        assert counters == rows[f"seq.{key}"].tolist(), key  # decoded frame i is the sample row i used
        assert np.all(rows[f"stamp_ns.{key}"] <= rows["tick_ns"])
    ticks = rows["tick_ns"] - rows["tick_ns"][0]
    assert np.abs(ticks - np.round(np.arange(len(ticks)) * 1e9 / 30)).max() <= 1  # exactly on the fps grid: no drift
    assert np.array_equal(rows["observation.state"][:, 0], rows["seq.observation.state"].astype(np.float32))
    return rows


def test_recorded_graph_reads_back_frame_exactly_with_a_camera_pause_flagged(tmp_path):
    out = subprocess.run([*ROBOSTACK, "launch", str(graph_file(tmp_path, pause_after=20)), "--no-live", "--json"],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["nodes"]["rec"]["exit_codes"][-1] == 0  # finished its 2 episodes, ended the graph
    ds = tmp_path / "ds"
    assert validate(ds, decode_videos=True).problems == []
    reader = DatasetReader(ds)
    assert reader.num_episodes == 2 and reader.tasks == ["stack the blocks"]
    rows = check_frame_exact(reader, 0)
    assert rows["dup.observation.images.wrist"].sum() >= 8  # the 0.4 s pause: rows repeat the last frame
    assert rows["dup.observation.images.front"].sum() <= 2
    check_frame_exact(reader, 1)
    assert reader.load_episode(1).length == 60


def test_sigkilled_recorder_restarts_recovers_the_episode_and_keeps_earlier_ones(tmp_path):
    from robostack.drivers.recorder.control import send_command

    ds = tmp_path / "ds"
    proc = subprocess.Popen([*ROBOSTACK, "launch", str(graph_file(tmp_path, episodes=3, episode_time=3.0)), "--no-live", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        status = {}
        while time.monotonic() < deadline:
            try:
                status = send_command(ds, "status", timeout_s=1)
            except Exception:  # noqa: BLE001 - the recorder is not up yet
                status = {}
            if status.get("phase") == "recording" and status.get("episode") == 1 and status.get("elapsed_s", 0) >= 2.0:
                break
            time.sleep(0.05)
        assert status.get("episode") == 1, status
        pid = json.loads((ds / ".journal/control.json").read_text())["pid"]
        recorded_s = status["elapsed_s"]
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "repair: recovered episode 1" in stderr
    assert validate(ds, decode_videos=True).problems == []
    reader = DatasetReader(ds)
    assert reader.num_episodes == 3  # 0 saved, 1 recovered, 2 recorded after the restart
    assert reader.load_episode(0).length == 90
    recovered = reader.episodes[1]
    assert recovered["robostack/recovered"] is True
    assert recovered["length"] >= (recorded_s - 1.0) * 30, (recovered["length"], recorded_s)
    for i in range(3):
        check_frame_exact(reader, i)


def test_unwritable_output_stops_the_recorder_with_a_clear_message(tmp_path):
    (tmp_path / "blocker").write_text("x")
    path = tmp_path / "graph.yaml"
    path.write_text(textwrap.dedent(GRAPH.format(name="recbad", out=tmp_path / "blocker" / "ds", pause_after=-1, episodes=1, episode_time=1.0)).replace("backoff_s: 0.2", "restart: never"))
    out = subprocess.run([*ROBOSTACK, "launch", str(path), "--no-live", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "recording stopped: cannot write dataset directory" in out.stderr
    assert "a path component is not a directory" in out.stderr
    assert json.loads(out.stdout)["nodes"]["rec"]["exit_codes"] == [3]
