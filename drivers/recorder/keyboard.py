"""Single-key input from a terminal in cbreak mode (no Enter needed, no desktop needed: works
over SSH). A no-op where stdin is not a terminal, e.g. under the launcher."""

from __future__ import annotations

import os
import select
import sys
from typing import TextIO


class TerminalKeys:
    """Reads keys from ``stream`` without blocking; restores the terminal on :meth:`close`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._saved = None
        self.active = False
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        if not os.isatty(fd):
            return
        import termios
        import tty

        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self.active = True

    def read(self) -> list[str]:
        """Keys typed since the last call."""
        if not self.active:
            return []
        keys = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 64)
            if not data:
                break
            keys.extend(data.decode(errors="ignore"))
        return keys

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.active = False
