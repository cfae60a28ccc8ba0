"""The recorder node.

Inputs (all ``queue`` delivery: a lost sample is counted, never silent):

- ``camera0`` … ``camera3``: camera ``frames`` (array ``image`` (H, W, 3) uint8 RGB); their
  names in the dataset come from the ``cameras`` param (``observation.images.<name>``);
- ``state``: arm ``state`` (array ``position`` (D,)); ``action``: teleop/policy ``action``
  (array ``position`` (D,));
- ``control`` (optional): messages whose meta is ``{"command": "start"|"stop"|"rerecord"|
  "discard"|"quit"|"task", "task": "..."}``;
- ``episode`` (optional): the twin's episode topic; ``phase: running`` starts an episode with
  its ``instruction`` as the task, ``success``/``timeout`` ends and saves it.

Output ``status``: phase, episode counts and elapsed time, twice a second.

Episodes are also controlled from the terminal when stdin is one (single keys, see
:mod:`.commands`) and from ``robostack dataset control DIR`` through a request/reply socket whose
address the node writes to ``DIR/.journal/control.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robostack.clock import now_ns
from robostack.node import Input, Node, Output
from robostack.drivers.recorder.alignment import StreamBuffer
from robostack.drivers.recorder.commands import COMMANDS, KEY_HELP, KEYS, CommandError, check_command

MAX_CAMERAS = 4
EXIT_STORAGE_ERROR = 3
CONTROL_FILE = "control.json"
SESSION_FILE = "session.json"


@dataclass
class RecorderParams:
    out: str = ""
    fps: int = 30
    cameras: list[str] = field(default_factory=list)
    task: str = ""
    episodes: int = 0
    episode_time_s: float = 60.0
    reset_time_s: float = 5.0
    autostart: bool = True
    robot_type: str = ""
    vcodec: str = "libx264"
    preset: str = "ultrafast"
    crf: int = 23
    keyframe_interval_s: float = 0.5
    encoder_threads: int = 1
    align_delay_ms: float = 60.0
    stale_after_s: float = 1.0
    control_endpoint: str = "auto"
    keyboard: bool = True
    state_array: str = "position"
    action_array: str = "position"

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("param 'out': the dataset directory is required")
        if not 1 <= self.fps <= 1000:
            raise ValueError(f"param 'fps' must be in [1, 1000], got {self.fps}")
        if len(self.cameras) > MAX_CAMERAS:
            raise ValueError(f"param 'cameras': at most {MAX_CAMERAS} cameras, got {len(self.cameras)}")
        if self.episodes < 0:
            raise ValueError(f"param 'episodes' must be >= 0 (0: until quit), got {self.episodes}")
        if self.episode_time_s <= 0 or self.reset_time_s < 0:
            raise ValueError("params 'episode_time_s' must be > 0 and 'reset_time_s' >= 0")
        if self.vcodec not in ("libx264", "mpeg4"):
            raise ValueError(f"param 'vcodec' must be 'libx264' or 'mpeg4', got {self.vcodec!r}")
        if not 0 <= self.align_delay_ms <= 1000:
            raise ValueError(f"param 'align_delay_ms' must be in [0, 1000], got {self.align_delay_ms}")


class Recorder(Node):
    """Records aligned camera/state/action episodes into a LeRobot-v3-layout dataset.

    Ends with exit code 0 after ``episodes`` episodes (set ``shutdown_on_exit: true`` on it in
    the launch file to end the graph then), and with code 3 when the disk refuses a write.
    """

    inputs = {
        **{f"camera{i}": Input(mode="queue", queue_size=240, required=False, doc="camera frames") for i in range(MAX_CAMERAS)},
        "state": Input(mode="queue", queue_size=1000, doc="arm state (array 'position')"),
        "action": Input(mode="queue", queue_size=1000, doc="commanded action (array 'position')"),
        "control": Input(mode="queue", queue_size=100, required=False, doc="meta {'command': ..., 'task': ...}"),
        "episode": Input(mode="queue", queue_size=100, required=False, doc="twin episode phases"),
    }
    outputs = {"status": Output(doc="meta: phase, episode, episodes_done, elapsed_s, task")}
    Params = RecorderParams

    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        return float(params.fps) if params is not None else None

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        p = self.params
        self.root = Path(p.out).expanduser()
        self.camera_inputs = [f"camera{i}" for i in range(MAX_CAMERAS) if f"camera{i}" in self._inputs]
        names = list(p.cameras) or [f"camera{i}" for i in range(len(self.camera_inputs))]
        if len(names) != len(self.camera_inputs):
            raise ValueError(f"param 'cameras' names {len(names)} cameras but {len(self.camera_inputs)} camera inputs are wired ({self.camera_inputs})")
        self.camera_keys = {inp: f"observation.images.{n}" for inp, n in zip(self.camera_inputs, names)}
        self.buffers: dict[str, StreamBuffer] = {k: StreamBuffer(k) for k in self.camera_keys.values()}
        self.buffers["observation.state"] = StreamBuffer("observation.state")
        self.buffers["action"] = StreamBuffer("action")
        self.period_ns = int(round(1e9 / p.fps))
        self.delay_ns = int(p.align_delay_ms * 1e6)
        self.writer = None  # opened when the first samples show the shapes
        self.episode = None
        self.phase = "waiting"  # waiting -> idle -> recording -> reset -> ... -> done
        self.phase_since = time.monotonic()
        self.task = p.task
        self.episodes_done = 0
        self.pending_rerecord = False
        self.quit_requested = False
        self.failed = False
        self.t0_ns = 0
        self.next_row = 0
        self.saved: list[dict[str, Any]] = []
        self.recovered_lines: list[str] = []
        self._last_status = 0.0
        self._last_log = 0.0
        self._stale_warned: set[str] = set()
        self._keys = None
        if p.keyboard:
            from robostack.drivers.recorder.keyboard import TerminalKeys

            self._keys = TerminalKeys()
            if self._keys.active:
                self.log.info(KEY_HELP)
        self._server = None
        self._open_dataset_dir()

    def _open_dataset_dir(self) -> None:
        from robostack.dataset.errors import storage_error

        try:
            (self.root / ".journal").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(storage_error(exc, f"dataset directory {self.root}"))
        ep = self.params.control_endpoint
        if ep:
            from robostack.transport import ServiceServer

            if ep == "auto":
                import hashlib

                run = Path(f"/tmp/robostack-{os.getuid()}")
                run.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
                ep = f"ipc://{run}/recorder-{digest}.sock"
            self._server = ServiceServer(ep, src=self.name)
            info = {"endpoint": self._server.endpoint, "pid": os.getpid(), "node": self.name}
            (self.root / ".journal" / CONTROL_FILE).write_text(json.dumps(info))

    def close(self) -> None:
        try:
            if self.episode is not None and not self.failed:
                self._end_episode(save=True, why="shutdown")
            elif self.episode is not None:
                self.episode._abandon()  # keep the journal for `robostack dataset repair`
        finally:
            if self._keys is not None:
                self._keys.close()
            if self._server is not None:
                self._server.close()
                try:
                    (self.root / ".journal" / CONTROL_FILE).unlink(missing_ok=True)
                except OSError:
                    pass

    # ------------------------------------------------------------------ the loop
    def step(self) -> None:
        from robostack.dataset.errors import DatasetStorageError

        try:
            self._pump_inputs()
            self._handle_commands()
            self._advance()
            self._report()
        except DatasetStorageError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        self.log.error(
            "recording stopped: %s. Committed episodes in %s are intact; the episode in progress "
            "stays in its journal (run `robostack dataset repair %s`).", exc, self.root, self.root,
        )
        raise SystemExit(EXIT_STORAGE_ERROR)

    def _pump_inputs(self) -> None:
        for inp, key in self.camera_keys.items():
            for msg in self.read_all(inp):
                if "image" not in msg.arrays:
                    self.log.warning("%s: message without an 'image' array ignored", inp)
                    continue
                self.buffers[key].push(msg)
        for inp, key, arr in (("state", "observation.state", self.params.state_array), ("action", "action", self.params.action_array)):
            for msg in self.read_all(inp):
                if arr not in msg.arrays:
                    self.log.warning("%s: message without a %r array ignored (has %s)", inp, arr, sorted(msg.arrays))
                    continue
                self.buffers[key].push(msg)
        if self.phase != "recording":
            keep = now_ns() - 2 * self.delay_ns - self.period_ns
            for b in self.buffers.values():
                b.trim(keep)

    # ------------------------------------------------------------------ commands
    def _handle_commands(self) -> None:
        cmds: list[tuple[str, str | None, Any]] = []
        if self._keys is not None:
            cmds += [(KEYS[k], None, None) for k in self._keys.read() if k in KEYS]
        if "control" in self._inputs:
            for msg in self.read_all("control"):
                cmds.append((str(msg.meta.get("command", "")), msg.meta.get("task"), None))
        if "episode" in self._inputs:
            for msg in self.read_all("episode"):
                phase = msg.meta.get("phase")
                if phase == "running" and self.phase in ("idle", "reset"):
                    if msg.meta.get("instruction"):
                        self.task = str(msg.meta["instruction"])
                    cmds.append(("start", None, None))
                elif phase in ("success", "timeout") and self.phase == "recording":
                    cmds.append(("stop", None, None))
        if self._server is not None:
            for req in self._server.receive():
                cmds.append((req.message.topic, req.message.meta.get("task"), req))
        for command, task, req in cmds:
            try:
                check_command(command, task)
                self._apply(command, task)
                reply_meta = {"ok": True, **self.status()}
            except CommandError as exc:
                self.log.warning("%s", exc)
                reply_meta = {"ok": False, "error": str(exc), **self.status()}
            if req is not None:
                from robostack import messages

                self._server.reply(req, messages.make("status", meta=reply_meta))

    def _apply(self, command: str, task: str | None) -> None:
        if command == "status":
            return
        if command == "task":
            self.task = str(task)
            self.log.info("task for the next episodes: %r", self.task)
            return
        if task:
            self.task = str(task)
        if command == "start":
            if self.phase in ("idle", "reset"):
                self._set_phase("recording_requested")
            elif self.phase == "waiting":
                raise CommandError("cannot start yet: waiting for every input to deliver a sample")
        elif command == "stop":
            if self.phase == "recording":
                self._end_episode(save=True, why="stopped")
            elif self.phase == "reset":
                self._set_phase("recording_requested")
        elif command in ("rerecord", "discard"):
            if self.phase != "recording":
                raise CommandError(f"nothing to {command}: no episode is being recorded")
            self._end_episode(save=False, why=command)
            if command == "rerecord":
                self.pending_rerecord = True
            else:
                self._set_phase("idle")
        elif command == "quit":
            self.quit_requested = True
            if self.phase == "recording":
                self._end_episode(save=True, why="quit")
            self._finish()

    # ------------------------------------------------------------------ phases
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_since = time.monotonic()

    def _inputs_ready(self, t_ns: int) -> list[str]:
        return [k for k, b in self.buffers.items() if not b.has_sample_at(t_ns)]

    def _advance(self) -> None:
        now = now_ns()
        if self.phase == "waiting":
            if not self._inputs_ready(now - self.delay_ns):
                self._ensure_writer()
                if self.phase == "done":
                    return
                self._set_phase("recording_requested" if self.params.autostart else "idle")
                if not self.params.autostart:
                    self.log.info("ready: press 's' or send 'start' to record episode %d", self.writer.num_episodes)
            elif time.monotonic() - self.phase_since > 5 and time.monotonic() - self._last_log > 5:
                self._last_log = time.monotonic()
                self.log.info("waiting for samples from: %s", ", ".join(self._inputs_ready(now - self.delay_ns)))
            return
        if self.phase == "reset":
            if time.monotonic() - self.phase_since >= self.params.reset_time_s:
                self._set_phase("recording_requested" if (self.params.autostart or self.pending_rerecord) else "idle")
            return
        if self.phase == "recording_requested":
            self._start_episode(now)
            return
        if self.phase == "recording":
            self._write_due_rows(now)
            if self.next_row >= int(round(self.params.episode_time_s * self.params.fps)):
                self._end_episode(save=True, why="time")

    def _ensure_writer(self) -> None:
        if self.writer is not None:
            return
        from robostack.dataset import CameraSpec, DatasetSpec, VideoEncoderConfig
        from robostack.dataset.writer import DatasetWriter

        p = self.params
        cams = []
        for key in self.camera_keys.values():
            h, w = self.buffers[key].samples[-1]["image"].shape[:2]
            cams.append(CameraSpec(key[len("observation.images."):], int(h), int(w)))
        state_msg = self.buffers["observation.state"].samples[-1]
        action_msg = self.buffers["action"].samples[-1]
        d_state = int(np.asarray(state_msg[p.state_array]).size)
        d_action = int(np.asarray(action_msg[p.action_array]).size)
        state_names = state_msg.meta.get("joints") or [f"q{i}" for i in range(d_state)]
        action_names = action_msg.meta.get("joints") or state_names if d_action == d_state else [f"a{i}" for i in range(d_action)]
        spec = DatasetSpec(
            fps=p.fps,
            cameras=tuple(cams),
            state_names=tuple(state_names)[:d_state] if len(state_names) >= d_state else tuple(f"q{i}" for i in range(d_state)),
            action_names=tuple(action_names)[:d_action] if len(action_names) >= d_action else tuple(f"a{i}" for i in range(d_action)),
            robot_type=p.robot_type or None,
            video=VideoEncoderConfig(codec=p.vcodec, preset=p.preset, crf=p.crf, keyframe_interval_s=p.keyframe_interval_s, threads=p.encoder_threads),
        )
        self.writer = DatasetWriter(self.root, spec)
        self.spec = spec
        self._resume_session()
        for line in [e.describe() for e in self.writer.recovered] + self.writer.repair_notes:
            self.log.warning("repair: %s", line)
            self.recovered_lines.append(line)
        self.log.info(
            "dataset %s: %d episodes so far; recording %s at %d fps, video %s/%s crf %d, keyframe every %.2f s",
            self.root, self.writer.num_episodes, ", ".join(spec.stream_keys), spec.fps, p.vcodec, p.preset, p.crf, p.keyframe_interval_s,
        )

    def _resume_session(self) -> None:
        """A session (``episodes`` to record) survives a crash and restart of this node: its start
        is kept in ``.journal/session.json`` until it finishes, so a restarted recorder counts the
        episodes saved (or recovered) before the crash toward the same goal."""
        from robostack.dataset.atomic_files import write_json_atomic

        path = self.root / ".journal" / SESSION_FILE
        try:
            start = int(json.loads(path.read_text())["start_episodes"])
            self.log.info("resuming the recording session that began at episode %d", start)
        except (OSError, ValueError, KeyError):
            start = self.writer.num_episodes - len(self.writer.recovered)
            write_json_atomic(path, {"start_episodes": start, "episodes": self.params.episodes})
        self.session_start = start
        self.episodes_done = self.writer.num_episodes - start
        if self.params.episodes and self.episodes_done >= self.params.episodes:
            self._finish()

    def _start_episode(self, now: int) -> None:
        t0 = now - self.delay_ns
        cams = [self.buffers[k] for k in self.camera_keys.values()]
        newest = [m.stamp_ns for m in (cams[0].samples if cams else []) if m.stamp_ns <= t0]
        if newest:
            # Put ticks half a period after the first camera's frames: with equal nominal rates a
            # tick grid in phase with the frames would alias on jitter (a dup, then a skip).
            phase_t0 = newest[-1] + self.period_ns // 2
            t0 = phase_t0 if phase_t0 <= t0 else phase_t0 - self.period_ns
        missing = self._inputs_ready(t0)
        if missing:
            return  # an input paused; try again next step
        self.pending_rerecord = False
        self.episode = self.writer.begin_episode(self.task)
        for b in self.buffers.values():
            b.forget_used()
        self.t0_ns = t0
        self.next_row = 0
        self._stale_warned.clear()
        self._set_phase("recording")
        target = f"/{self.params.episodes}" if self.params.episodes else ""
        self.log.info("episode %d%s: recording (task %r, up to %.1f s)", self.episode.index, target, self.task, self.params.episode_time_s)

    def _write_due_rows(self, now: int) -> None:
        limit = int(round(self.params.episode_time_s * self.params.fps))
        p = self.params
        while self.next_row < limit:
            tick = self.t0_ns + self.next_row * 1_000_000_000 // self.params.fps  # exact grid, no drift
            if tick + self.delay_ns > now:
                break
            images, samples = {}, {}
            for key, buf in self.buffers.items():
                got = buf.take(tick)
                if got is None:  # cannot happen after the start check, unless a publisher restarted
                    return
                msg, samples[key] = got
                if key.startswith("observation.images."):
                    images[key] = msg["image"]
                if tick - msg.stamp_ns > p.stale_after_s * 1e9 and key not in self._stale_warned:
                    self._stale_warned.add(key)
                    self.log.warning("%s: newest sample is %.2f s old; repeating it (rows flagged dup)", key, (tick - msg.stamp_ns) / 1e9)
            state = self.buffers["observation.state"].samples[0][p.state_array]
            action = self.buffers["action"].samples[0][p.action_array]
            self.episode.add_frame(tick, state, action, images, samples)
            self.next_row += 1

    def _end_episode(self, *, save: bool, why: str) -> None:
        ep, self.episode = self.episode, None
        if ep is None:
            return
        if save:
            committed = ep.save()
            if committed is not None:
                self.episodes_done += 1
                dups = {k: b.dup_rows for k, b in self.buffers.items()}
                self.saved.append({"episode": committed.episode_index, "frames": committed.length})
                self.log.info("%s (%s); duplicated rows so far per stream: %s", committed.describe(), why, dups)
        else:
            ep.discard()
            self.log.info("episode %d dropped (%s)", ep.index, why)
        if self.params.episodes and self.episodes_done >= self.params.episodes:
            self._finish()
        elif not self.quit_requested:
            self._set_phase("reset")
            if self.params.reset_time_s > 0:
                self.log.info("reset phase: %.1f s", self.params.reset_time_s)

    def _finish(self) -> None:
        self._set_phase("done")
        (self.root / ".journal" / SESSION_FILE).unlink(missing_ok=True)
        self.log.info("recording finished: %d episodes saved in %s", self.episodes_done, self.root)
        self.request_stop()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.phase_since
        out: dict[str, Any] = {
            "phase": self.phase,
            "episode": self.episode.index if self.episode is not None else (self.writer.num_episodes if self.writer else None),
            "episodes_done": self.episodes_done,
            "episodes_target": self.params.episodes,
            "dataset_episodes": self.writer.num_episodes if self.writer else None,
            "elapsed_s": round(self.next_row / self.params.fps if self.phase == "recording" else elapsed, 2),
            "task": self.task,
        }
        return out

    def _report(self) -> None:
        t = time.monotonic()
        if t - self._last_status >= 0.5 and "status" in self._outputs:
            self._last_status = t
            self.publish("status", {}, meta=self.status())
        if self.phase == "recording" and t - self._last_log >= 5.0:
            self._last_log = t
            q = self.episode.encoder_queue_depth() if self.episode else {}
            self.log.info("episode %d: %.1f s, %d frames, encoder queues %s", self.episode.index, self.next_row / self.params.fps, self.next_row, q)

    def extra_stats(self) -> dict[str, Any]:
        out = self.status()
        out["frames_in_episode"] = self.next_row if self.phase == "recording" else 0
        out["dup_rows"] = {k: b.dup_rows for k, b in self.buffers.items()} if hasattr(self, "buffers") else {}
        out["dropped_samples"] = {k: b.dropped for k, b in self.buffers.items()} if hasattr(self, "buffers") else {}
        if self.episode is not None:
            out["encoder"] = self.episode.encoder_stats()
        out["recovered"] = self.recovered_lines if hasattr(self, "recovered_lines") else []
        return out


__all__ = ["COMMANDS", "Recorder", "RecorderParams"]
