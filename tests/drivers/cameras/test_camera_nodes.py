"""Camera nodes publish real decoded frames with capture stamps over real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robostack.drivers.cameras.nodes import SyntheticCameraNode, VideoFileCameraNode
from robostack.drivers.cameras.pattern import read_frame_counter
from robostack.node import OutputWiring, Wiring
from robostack.runtime import NodeRunner
from robostack.transport import Subscriber, ipc_endpoint


def run_node(node):
    runner = NodeRunner(node)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return runner, thread


def test_video_file_node_publishes_every_frame_in_order_then_stops(tmp_path, make_video):
    video = make_video(list(range(100, 130)), fps=50.0)
    ep = ipc_endpoint(tmp_path, "frames")
    sub = Subscriber(ep, "cam/frames", mode="queue", queue_size=1000)
    # expected_subscribers: the node waits for our subscriber before its first frame; without
    # late-frame dropping a loaded machine delays frames instead of skipping them
    node = VideoFileCameraNode("cam", {"path": str(video), "drop_late_frames": False},
                               Wiring(outputs={"frames": OutputWiring(ep, expected_subscribers=1)}))
    _, thread = run_node(node)
    thread.join(10)
    assert not thread.is_alive(), "the node should stop at the end of the file"
    msgs = sub.receive_all()
    assert [read_frame_counter(np.asarray(m["image"])) for m in msgs] == list(range(100, 130))
    assert [m.meta["index"] for m in msgs] == list(range(30))
    stamps = np.array([m.stamp_ns for m in msgs])
    assert np.median(np.diff(stamps)) / 1e6 == pytest.approx(20.0, abs=2.0)  # paced at the file's 50 fps
    assert msgs[0]["image"].dtype == np.uint8 and msgs[0]["image"].shape == (144, 192, 3)


def test_synthetic_camera_node_with_jpeg_codec_sends_compressed_decodable_frames(tmp_path):
    ep = ipc_endpoint(tmp_path, "frames")
    sub = Subscriber(ep, "cam/frames", mode="queue")
    node = SyntheticCameraNode("cam", {"width": 320, "height": 240, "fps": 60, "codec": "jpeg"},
                               Wiring(outputs={"frames": OutputWiring(ep)}))
    runner, thread = run_node(node)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 10 and time.monotonic() < deadline:
        got += sub.receive_all()
        time.sleep(0.01)
    node.request_stop()
    thread.join(5)
    assert len(got) >= 10
    assert got[0].codecs == {"image": "jpeg"} and got[0]["image"].shape == (240, 320, 3)
    counters = [read_frame_counter(np.asarray(m["image"])) for m in got]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert runner.stats(time.monotonic_ns())["extra"]["frames"] >= 10


@pytest.mark.slow
def test_camera_node_runs_in_a_launched_graph(tmp_path):
    graph = tmp_path / "cams.yaml"
    graph.write_text(
        "nodes:\n"
        "  cam: {class: 'robostack.drivers.cameras.nodes:SyntheticCameraNode', params: {width: 320, height: 240, fps: 30}}\n"
        "  probe: {class: 'robostack.diagnostics:Probe', inputs: {frames: cam/frames}}\n"
    )
    out = subprocess.run([sys.executable, "-m", "robostack.cli", "launch", str(graph), "--duration", "3", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    nodes = json.loads(out.stdout)["nodes"]
    assert nodes["probe"]["stats"]["extra"]["messages"] >= 40
    assert nodes["cam"]["stats"]["extra"]["frames"] >= 40
    assert nodes["probe"]["stats"]["inputs"]["frames"]["dropped"] == 0
