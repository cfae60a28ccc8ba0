"""Episode-control commands, shared by the recorder, its control service and the keyboard."""

from __future__ import annotations

COMMANDS = {
    "start": "start recording the next episode (also: skip the rest of the reset phase)",
    "stop": "end the episode in progress and save it, then reset",
    "rerecord": "drop the episode in progress and record it again after the reset phase",
    "discard": "drop the episode in progress and wait for 'start'",
    "quit": "save the episode in progress and end the recording (the node exits 0)",
    "task": "set the task instruction of the next episodes (needs a task text)",
    "status": "report phase, episode count and elapsed time",
}

# Single keys for terminals (cbreak mode, works over SSH without a desktop).
KEYS = {
    "s": "start",
    " ": "stop",
    "e": "stop",
    "r": "rerecord",
    "d": "discard",
    "q": "quit",
    "?": "status",
}

KEY_HELP = "keys: [s]tart  [space]/[e] stop+save  [r]e-record  [d]iscard  [q]uit  [?] status"


class CommandError(ValueError):
    """A control command the recorder does not know or cannot take now."""


def check_command(command: str, task: str | None = None) -> None:
    if command not in COMMANDS:
        raise CommandError(f"unknown recorder command {command!r}; known: {', '.join(COMMANDS)}")
    if command == "task" and not task:
        raise CommandError("command 'task' needs a task text")
