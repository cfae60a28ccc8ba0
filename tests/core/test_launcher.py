"""The launcher with real node processes: start, supervise, restart, stop, summarize."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROBOSTACK = [sys.executable, "-m", "robostack.cli"]

SIX_NODES = """
    name: six
    nodes:
      cam_a: {class: robostack.diagnostics:Pulse, params: {shape: [64, 64, 3], rate_hz: 50}}
      cam_b: {class: robostack.diagnostics:Pulse, params: {shape: [7], dtype: float32, rate_hz: 100}}
      relay_a: {class: robostack.diagnostics:Relay, inputs: {in: cam_a/out}}
      relay_b: {class: robostack.diagnostics:Relay, inputs: {in: cam_b/out}, restart: on-failure, backoff_s: 0.2}
      probe_a: {class: robostack.diagnostics:Probe, inputs: {frames: relay_a/out}}
      probe_b: {class: robostack.diagnostics:Probe, inputs: {frames: relay_b/out}}
"""


def write(tmp_path, text):
    p = tmp_path / "graph.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def node_pids(graph_name: str) -> dict[str, int]:
    """Live node processes of a graph, found from /proc command lines."""
    pids = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if len(cmd) > 3 and cmd[2] == b"robostack.runtime" and state != "Z":
            spec = json.loads(cmd[3])
            if f"/{graph_name}-" in json.dumps(spec["wiring"]):
                pids[spec["name"]] = int(entry.name)
    return pids


def env_with_tests():
    return dict(os.environ, PYTHONPATH=str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_six_node_graph_runs_and_prints_a_json_summary(tmp_path):
    out = subprocess.run([*ROBOSTACK, "launch", str(write(tmp_path, SIX_NODES)), "--duration", "4", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ended"] == "duration" and summary["startup_s"] is not None
    nodes = summary["nodes"]
    assert set(nodes) == {"cam_a", "cam_b", "relay_a", "relay_b", "probe_a", "probe_b"}
    assert all(n["restarts"] == 0 and n["status"] == "stopped" for n in nodes.values())
    probe = nodes["probe_b"]["stats"]
    assert probe["extra"]["messages"] > 100  # 100 Hz for a few seconds
    assert probe["inputs"]["frames"]["dropped"] == 0
    assert probe["inputs"]["frames"]["latency_ms_p50"] < 50
    assert "[probe_a]" in out.stderr or "[launcher]" not in out.stderr  # logs are prefixed by node


def test_sigkilled_node_is_restarted_and_the_others_keep_running(tmp_path):
    proc = subprocess.Popen([*ROBOSTACK, "launch", str(write(tmp_path, SIX_NODES)), "--duration", "7", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(pids := node_pids("six")) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(pids) == 6
    time.sleep(1.5)
    os.kill(pids["relay_b"], signal.SIGKILL)
    time.sleep(1.5)
    after = node_pids("six")
    assert after["relay_b"] != pids["relay_b"]  # a new process
    assert {k: v for k, v in after.items() if k != "relay_b"} == {k: v for k, v in pids.items() if k != "relay_b"}
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["nodes"]["relay_b"]["restarts"] == 1
    assert -signal.SIGKILL in summary["nodes"]["relay_b"]["exit_codes"]
    assert summary["nodes"]["probe_b"]["stats"]["inputs"]["frames"]["restarts"] >= 0
    assert summary["nodes"]["probe_a"]["restarts"] == 0
    assert "restarting relay_b" in stderr


def test_ctrl_c_stops_every_node_process_and_exits_zero(tmp_path):
    proc = subprocess.Popen([*ROBOSTACK, "launch", str(write(tmp_path, SIX_NODES)), "--no-live"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(node_pids("six")) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(node_pids("six")) == 6
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    while node_pids("six") and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    gone_after = time.monotonic() - t0
    assert not node_pids("six")
    assert gone_after < 3.0  # target 2 s; margin for a loaded CI machine
    assert proc.wait(timeout=5) == 0


def test_launcher_death_takes_its_nodes_with_it(tmp_path):
    proc = subprocess.Popen([*ROBOSTACK, "launch", str(write(tmp_path, SIX_NODES)), "--no-live"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while len(node_pids("six")) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no chance to clean up; the nodes must notice on their own
    proc.wait()
    t0 = time.monotonic()
    while node_pids("six") and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not node_pids("six")


def test_crashing_critical_node_brings_the_graph_down_after_its_restarts(tmp_path):
    graph = write(tmp_path, """
        name: crashy
        nodes:
          bad: {class: "faulty_nodes:CrashAfter", params: {crash_after: 3}, max_restarts: 1, backoff_s: 0.1}
          cam: {class: robostack.diagnostics:Pulse, params: {shape: [4], rate_hz: 20}}
    """)
    out = subprocess.run([*ROBOSTACK, "launch", str(graph), "--duration", "30", "--json"],
                         capture_output=True, text=True, timeout=60, env=env_with_tests())
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert summary["ended"] == "failure"
    assert summary["nodes"]["bad"]["restarts"] == 1 and summary["nodes"]["bad"]["status"] == "failed"
    assert "deliberate failure" in out.stderr


def test_check_reports_problems_and_exits_2(tmp_path):
    graph = write(tmp_path, """
        nodes:
          probe: {class: robostack.diagnostics:Probe, inputs: {frame: cam/out}}
    """)
    out = subprocess.run([*ROBOSTACK, "launch", "--check", str(graph)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "no input 'frame'" in out.stderr and "no node named 'cam'" not in out.stderr


def test_set_changes_a_node_param_for_the_run(tmp_path):
    out = subprocess.run([*ROBOSTACK, "launch", str(write(tmp_path, SIX_NODES)), "--check", "--json",
                          "--set", "cam_a.rate_hz=10"], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["nodes"]["cam_a"]["params"]["rate_hz"] == 10
