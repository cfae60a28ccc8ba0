"""Starts a validated :class:`~robostack.graph.Graph`: one OS process per node, supervised.

- every node runs ``python -m robostack.runtime SPEC`` in its own session; it also gets SIGTERM
  if the launcher dies (``PR_SET_PDEATHSIG``), so no node outlives its graph;
- logs are multiplexed line by line with a ``[node]`` prefix;
- a node that exits is restarted per its policy with exponential backoff; one that gives up (or
  exits with ``critical``) brings the graph down; ``shutdown_on_exit`` ends the graph when it is done;
- live per-node stats (rates, latency, drops) come from each node's stats topic;
- stop: SIGTERM to every node, SIGKILL after ``stop_timeout_s``, and the run directory removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from robostack.clock import now_ns
from robostack.graph import Graph, NodeConfig
from robostack.runtime import EXIT_CONFIG_ERROR, STATS_OUTPUT
from robostack.transport import Subscriber

_COLORS = ["cyan", "green", "magenta", "yellow", "blue", "bright_cyan", "bright_green", "bright_magenta"]


@dataclass
class NodeProcess:
    config: NodeConfig
    spec_json: str
    proc: subprocess.Popen | None = None
    restarts: int = 0
    status: str = "pending"  # pending, starting, running, backoff, done, failed, stopped
    exit_codes: list[int] = field(default_factory=list)
    started_ns: int = 0
    ready_ns: int | None = None
    restart_at_ns: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)


class Launcher:
    """Runs ``graph`` until ``duration_s`` passes, Ctrl-C, or the graph fails or finishes."""

    def __init__(
        self,
        graph: Graph,
        *,
        host: str | None = None,
        duration_s: float | None = None,
        live: bool | None = None,
        stop_timeout_s: float = 1.5,
        log_stream: TextIO | None = None,
        status_every_s: float = 0.0,
        read_keys: bool = True,
    ) -> None:
        self.graph = graph
        self.duration_s = duration_s
        self.stop_timeout_s = stop_timeout_s
        self.out = log_stream or sys.stderr
        self.live = self.out.isatty() if live is None else live
        self.status_every_s = status_every_s
        self.read_keys = read_keys
        self._keys = None
        names = graph.local_nodes(host)
        if not names:
            raise ValueError(f"no nodes of graph {graph.name!r} run on host {host or 'localhost'!r}")
        self.nodes = {n: NodeProcess(graph.nodes[n], graph.specs[n].to_json()) for n in names}
        self._lock = threading.Lock()
        self._stop_reason: str | None = None
        self._stats_subs: dict[str, Subscriber] = {}
        self._console = None
        self.started_ns = 0
        self.all_ready_ns: int | None = None

    # ----------------------------------------------------------------------------------- logging
    def _emit(self, text: str) -> None:
        with self._lock:
            if self._console is not None:
                self._console.print(text, markup=False, highlight=False, soft_wrap=True)
            else:
                self.out.write(text + "\n")
                self.out.flush()

    def _pump_logs(self, np_: NodeProcess, proc: subprocess.Popen) -> None:
        name = np_.config.name
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            np_.log_tail = (np_.log_tail + [line])[-20:]
            self._emit(f"[{name}] {line}")

    # ------------------------------------------------------------------------------- processes
    def _spawn(self, np_: NodeProcess) -> None:
        env = dict(os.environ, ROBOSTACK_LAUNCHER_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "robostack.runtime", np_.spec_json],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops nodes in order
        )
        np_.proc = proc
        np_.status = "starting"
        np_.started_ns = now_ns()
        np_.ready_ns = None
        threading.Thread(target=self._pump_logs, args=(np_, proc), daemon=True).start()

    def _read_stats(self) -> None:
        for name, sub in self._stats_subs.items():
            for msg in sub.receive_all():
                np_ = self.nodes[name]
                if np_.proc is not None and msg.meta.get("pid") != np_.proc.pid:
                    continue  # a previous incarnation's last words
                np_.stats = msg.meta
                if np_.ready_ns is None and np_.status == "starting":
                    np_.ready_ns = now_ns()
                    np_.status = "running"
        if self.all_ready_ns is None and all(n.ready_ns is not None for n in self.nodes.values()):
            self.all_ready_ns = now_ns()

    def _supervise(self) -> None:
        t = now_ns()
        for np_ in self.nodes.values():
            if np_.status == "backoff" and np_.restart_at_ns is not None and t >= np_.restart_at_ns:
                np_.restarts += 1
                self._emit(f"[launcher] restarting {np_.config.name} (restart {np_.restarts})")
                self._spawn(np_)
                continue
            if np_.proc is None or np_.status not in ("starting", "running"):
                continue
            rc = np_.proc.poll()
            if rc is None:
                continue
            np_.exit_codes.append(rc)
            cfg = np_.config
            self._emit(f"[launcher] {cfg.name} exited with code {rc}")
            if rc == 0 and cfg.restart != "always":
                np_.status = "done"
                if cfg.shutdown_on_exit:
                    self._stop_reason = self._stop_reason or "finished"
                continue
            wants_restart = cfg.restart == "always" or (cfg.restart == "on-failure" and rc != 0)
            if rc == EXIT_CONFIG_ERROR:
                wants_restart = False
            if wants_restart and np_.restarts < cfg.max_restarts:
                delay = min(cfg.backoff_s * (2 ** np_.restarts), 10.0)
                np_.status = "backoff"
                np_.restart_at_ns = t + int(delay * 1e9)
                continue
            np_.status = "failed"
            if cfg.critical:
                self._emit(f"[launcher] {cfg.name} failed for good; bringing the graph down")
                self._stop_reason = self._stop_reason or "failure"

    def stop_all(self) -> None:
        """SIGTERM every node, then SIGKILL whatever is left after the timeout."""
        live = [n for n in self.nodes.values() if n.proc is not None and n.proc.poll() is None]
        for np_ in live:
            try:
                os.killpg(np_.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.stop_timeout_s
        for np_ in live:
            try:
                np_.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._emit(f"[launcher] {np_.config.name} did not stop in {self.stop_timeout_s}s; killing it")
                try:
                    os.killpg(np_.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                np_.proc.wait()
            np_.exit_codes.append(np_.proc.returncode)
            if np_.status in ("starting", "running"):
                np_.status = "stopped"

    # ------------------------------------------------------------------------------------- run
    def run(self) -> str:
        """Run the graph; returns why it ended: ``duration``, ``interrupt``, ``finished`` or
        ``failure``."""
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:  # signal handlers can only be set there; embedders call request_stop()
            prev_int = signal.signal(signal.SIGINT, self._on_signal)
            prev_term = signal.signal(signal.SIGTERM, self._on_signal)
        self.started_ns = now_ns()
        live_ctx = None
        try:
            if self.live:
                live_ctx = self._start_live()
            for name in self.nodes:
                self._stats_subs[name] = Subscriber(
                    self.graph.stats_endpoints[name], f"{name}/{STATS_OUTPUT}", mode="queue"
                )
            if self.graph.keys_endpoint is not None and self.read_keys:
                from robostack.terminal_keys import TerminalKeys

                self._keys = TerminalKeys(self.graph.keys_endpoint, readers=self.graph.keys_readers)
                self._keys.start()
            for np_ in self.nodes.values():
                self._spawn(np_)
            next_status = time.monotonic() + self.status_every_s
            end = None if self.duration_s is None else time.monotonic() + self.duration_s
            while self._stop_reason is None:
                time.sleep(0.05)
                self._read_stats()
                self._supervise()
                if live_ctx is not None:
                    live_ctx.update(self.table())
                if self.status_every_s and time.monotonic() >= next_status:
                    next_status += self.status_every_s
                    self._emit(self.status_line())
                if end is not None and time.monotonic() >= end:
                    self._stop_reason = "duration"
                if all(n.status in ("done", "failed") for n in self.nodes.values()):
                    self._stop_reason = self._stop_reason or "finished"
            self._read_stats()
        finally:
            if self._keys is not None:
                self._keys.stop()
            self.stop_all()
            time.sleep(0.05)
            self._read_stats()
            if live_ctx is not None:
                live_ctx.update(self.table())
                live_ctx.stop()
                self._console = None
            for sub in self._stats_subs.values():
                sub.close()
            shutil.rmtree(self.graph.run_dir, ignore_errors=True)
            if in_main:
                signal.signal(signal.SIGINT, prev_int)
                signal.signal(signal.SIGTERM, prev_term)
        return self._stop_reason or "interrupt"

    def request_stop(self, reason: str = "interrupt") -> None:
        """Stop the graph as Ctrl-C would (safe to call from another thread)."""
        self._stop_reason = self._stop_reason or reason

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._stop_reason is not None and signum == signal.SIGINT:
            for np_ in self.nodes.values():  # second Ctrl-C: no more patience
                if np_.proc is not None and np_.proc.poll() is None:
                    os.killpg(np_.proc.pid, signal.SIGKILL)
        self._stop_reason = self._stop_reason or "interrupt"

    # ----------------------------------------------------------------------------------- display
    def _start_live(self):
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=self.out)
        live = Live(self.table(), console=self._console, refresh_per_second=4, transient=False)
        live.start()
        return live

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, np_ in self.nodes.items():
            st = np_.stats
            ins = st.get("inputs", {}) or {}
            lat50 = [v.get("latency_ms_p50") for v in ins.values() if v.get("latency_ms_p50") is not None]
            lat99 = [v.get("latency_ms_p99") for v in ins.values() if v.get("latency_ms_p99") is not None]
            rows.append(
                {
                    "node": name,
                    "status": np_.status,
                    "pid": np_.proc.pid if np_.proc else None,
                    "restarts": np_.restarts,
                    "step_hz": st.get("step_rate_hz"),
                    "in_hz": sum(v.get("rate_hz", 0) or 0 for v in ins.values()) if ins else None,
                    "lat_p50_ms": max(lat50) if lat50 else None,
                    "lat_p99_ms": max(lat99) if lat99 else None,
                    "dropped": sum(v.get("dropped", 0) for v in ins.values()),
                    "malformed": sum(v.get("malformed_total", 0) for v in ins.values()),
                    "overruns": st.get("overruns", 0),
                }
            )
        return rows

    def table(self):
        from rich.table import Table

        table = Table(title=f"graph {self.graph.name}", expand=False)
        for col in ("node", "status", "pid", "restarts", "step Hz", "in Hz", "lat p50 ms", "lat p99 ms",
                    "dropped", "malformed", "overruns"):
            table.add_column(col, justify="left" if col in ("node", "status") else "right")
        for i, r in enumerate(self.rows()):
            table.add_row(
                f"[{_COLORS[i % len(_COLORS)]}]{r['node']}[/]",
                r["status"],
                str(r["pid"] or "-"),
                str(r["restarts"]),
                _fmt(r["step_hz"]),
                _fmt(r["in_hz"]),
                _fmt(r["lat_p50_ms"], 2),
                _fmt(r["lat_p99_ms"], 2),
                str(r["dropped"]),
                str(r["malformed"]),
                str(r["overruns"]),
            )
        return table

    def status_line(self) -> str:
        parts = [
            f"{r['node']}:{r['status']} {_fmt(r['step_hz'])}Hz lat99={_fmt(r['lat_p99_ms'], 2)}ms drop={r['dropped']}"
            for r in self.rows()
        ]
        return "[launcher] " + " | ".join(parts)

    def summary(self, reason: str) -> dict[str, Any]:
        """Per-node stats and how the run went, for ``--json``."""
        startup = None if self.all_ready_ns is None else (self.all_ready_ns - self.started_ns) / 1e9
        return {
            "graph": self.graph.name,
            "source": self.graph.source,
            "ended": reason,
            "startup_s": startup,
            "duration_s": (now_ns() - self.started_ns) / 1e9,
            "args": self.graph.args,
            "nodes": {
                name: {
                    "class": np_.config.class_path,
                    "status": np_.status,
                    "restarts": np_.restarts,
                    "exit_codes": np_.exit_codes,
                    "ready_s": None if np_.ready_ns is None else (np_.ready_ns - np_.started_ns) / 1e9,
                    "stats": np_.stats,
                }
                for name, np_ in self.nodes.items()
            },
        }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str)
