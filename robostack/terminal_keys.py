"""Key presses from the launcher's terminal, published as a stream any node can wire to.

Nodes run without a terminal (the launcher owns it, and it may be an SSH session), so the
launcher reads keys itself and publishes them on ``terminal/keys``: a message with no arrays and
``meta = {"key": NAME}`` where NAME is the character typed (``"s"``, ``" "``) or one of
``up, down, left, right, enter, backspace, esc, tab, pageup, pagedown, home, end``. A node takes
them with an input wired ``from: terminal/keys``.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO

from robostack.transport import Publisher

SOURCE = "terminal"
OUTPUT = "keys"
TOPIC = f"{SOURCE}/{OUTPUT}"

_ESCAPES = {
    "\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
    "\x1b[5~": "pageup", "\x1b[6~": "pagedown", "\x1b[H": "home", "\x1b[F": "end",
    "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left",
}
_CONTROL = {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\t": "tab", "\x1b": "esc"}


def decode_keys(data: str) -> list[str]:
    """Split raw terminal input into key names (escape sequences become ``up``, ``left``, …)."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == "\x1b":
            for seq, name in _ESCAPES.items():
                if data.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:
                keys.append("esc")
                i += 1
            continue
        keys.append(_CONTROL.get(data[i], data[i]))
        i += 1
    return keys


class TerminalKeys:
    """Reads ``stream`` (the launcher's stdin) in a thread and publishes each key.

    On a TTY the terminal is put in cbreak mode (no line buffering, no echo; Ctrl-C still
    interrupts) and restored on :meth:`stop`. From a pipe, bytes are read as they come, which
    lets scripts and tests type keys.
    """

    def __init__(self, endpoint: str, stream: IO[str] | None = None, readers: int = 0) -> None:
        self.stream = stream or sys.stdin
        self.readers = readers
        self.publisher = Publisher(endpoint, TOPIC, src=SOURCE)
        self.pressed = 0
        self._saved_tty = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="terminal-keys")

    def start(self) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None and os.isatty(fd):
            import termios
            import tty

            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._thread.start()

    def _run(self) -> None:
        import select

        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        # Keys typed before the nodes subscribed would be lost: wait for them (bounded).
        self.publisher.wait_for_subscribers(self.readers, timeout_s=10.0)
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            self.publisher.tick()
            if not ready:
                continue
            data = os.read(fd, 64)
            if not data:  # end of a pipe
                return
            for key in decode_keys(data.decode(errors="replace")):
                self.publisher.publish({}, meta={"key": key})
                self.pressed += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        if self._saved_tty is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved_tty)
        self.publisher.close()
