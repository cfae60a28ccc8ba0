import json
import subprocess
import sys
import textwrap
import time

import pytest

from robostack.terminal_keys import decode_keys


def test_escape_sequences_become_named_keys():
    assert decode_keys("a\x1b[A\x1b[D \r\x7f\x1bq") == ["a", "up", "left", " ", "enter", "backspace", "esc", "q"]


@pytest.mark.slow
def test_keys_typed_into_the_launcher_reach_a_node_wired_to_terminal_keys(tmp_path):
    graph = tmp_path / "keys.yaml"
    graph.write_text(textwrap.dedent("""
        nodes:
          keys_probe: {class: robostack.diagnostics:Probe, inputs: {frames: terminal/keys}}
    """))
    proc = subprocess.Popen([sys.executable, "-m", "robostack.cli", "launch", str(graph), "--duration", "4", "--json"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    proc.stdin.write(b"ab\x1b[A")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    stats = json.loads(out)["nodes"]["keys_probe"]["stats"]
    assert stats["extra"]["messages"] == 3
