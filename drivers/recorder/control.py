"""Controlling a running recorder from another terminal: ``robostack dataset control DIR``.

The recorder announces its request/reply endpoint in ``DIR/.journal/control.json``; a command is
a request whose topic is the command and whose meta may hold ``task``; the reply's meta is the
recorder's status.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from robostack.drivers.recorder.commands import KEY_HELP, KEYS, check_command

CONTROL_FILE = "control.json"


class RecorderNotRunning(RuntimeError):
    """No recorder is recording into the directory (or it does not answer)."""


def control_endpoint(root: str | Path) -> str:
    path = Path(root) / ".journal" / CONTROL_FILE
    try:
        return json.loads(path.read_text())["endpoint"]
    except (OSError, ValueError, KeyError):
        raise RecorderNotRunning(f"no recorder is recording into {root} (no {path})") from None


def send_command(root: str | Path, command: str, task: str | None = None, timeout_s: float = 3.0) -> dict[str, Any]:
    """Send one command to the recorder writing ``root``; returns its status reply."""
    from robostack import messages
    from robostack.transport import ServiceClient

    check_command(command, task)
    client = ServiceClient(control_endpoint(root), src="dataset-control")
    try:
        reply = client.call(messages.make(command, meta={"task": task} if task else {}), timeout_s)
    except TimeoutError:
        raise RecorderNotRunning(f"the recorder of {root} did not answer within {timeout_s} s") from None
    finally:
        client.close()
    return dict(reply.meta)


def format_status(s: dict[str, Any]) -> str:
    target = f"/{s['episodes_target']}" if s.get("episodes_target") else ""
    line = f"{s.get('phase')}: episode {s.get('episode')}{target}, {s.get('episodes_done')} saved, {s.get('elapsed_s')} s, task {s.get('task')!r}"
    if not s.get("ok", True):
        line += f"  [refused: {s.get('error')}]"
    return line


def interactive(root: str | Path, print_fn=print) -> int:
    """Single-key control from this terminal until 'q' or Ctrl-C."""
    from robostack.drivers.recorder.keyboard import TerminalKeys

    keys = TerminalKeys()
    if not keys.active:
        print_fn("stdin is not a terminal: pass a command instead (start, stop, rerecord, discard, quit, status)")
        return 2
    print_fn(KEY_HELP)
    last = 0.0
    try:
        while True:
            for k in keys.read():
                if k in KEYS:
                    print_fn(format_status(send_command(root, KEYS[k])))
                    if KEYS[k] == "quit":
                        return 0
            if time.monotonic() - last > 2.0:
                last = time.monotonic()
                print_fn(format_status(send_command(root, "status")))
            time.sleep(0.05)
    except KeyboardInterrupt:
        return 0
    finally:
        keys.close()
