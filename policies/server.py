"""The policy server: a policy package behind a request/reply service (``docs/serving.md``).

An I/O thread and ``ServerConfig.workers`` compute threads. The I/O thread owns the ROUTER socket:
it takes requests off the wire (stamping when each arrived), answers ``stats``/``info``/``!ping``
at once, queues ``act`` requests and sends the replies the other threads hand back. A compute
thread takes queued requests in batches — all that are waiting, plus those that arrive within
``batch_window_ms`` of the first while more clients may still send — validates each against the
package's ``policy.json``, and samples the whole batch with one encoder call and one step call per
denoising step. With several workers, one gathers a batch while the others compute theirs (a
streaming session's calls never run at the same time). A ``load`` request builds and warms the
new package on a loader thread, then queues a swap: requests queued before it finish on the old
package, those after it run on the new one; no connection is touched. A lone client's request
(nothing queued or running, no other active client) runs on the I/O thread itself, which saves
the two thread hand-offs (``ServerConfig.inline_lone_requests``).

Errors are replies (``!error`` with ``error``/``detail``), never a crash of the server.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from robostack import messages
from robostack.chunks import ActionChunk, chunk_to_message_parts
from robostack.clock import now_ns
from robostack.messages import Message
from robostack.metrics import Window
from robostack.policies import serving_protocol as proto
from robostack.policies.preprocessing import ObservationError
from robostack.policies.serving_engine import EngineConfig, ServingEngine
from robostack.policies.streaming import StreamSessions, StreamState
from robostack.transport import CurveConfig, Request, ServiceServer

log = logging.getLogger("robostack.policies.server")
_ACTIVE_CLIENT_NS = 1_000_000_000  # a client that sent an act request within this is "active"


@dataclass(frozen=True)
class ServerConfig:
    """``batch_window_ms``: how long the first request of a batch may wait for requests of other
    active clients; ``max_batch``: samples per ONNX call (a larger single request runs alone);
    ``max_obs_age_ms``: refuse observations whose capture stamp is older (same-host clocks
    only; None disables); ``max_queue``: act requests waiting beyond this are refused
    (``overloaded``); ``workers``: compute threads running batches side by side on the shared
    sessions (unless ``engine.threads`` is set, each gets ``cores // workers`` intra-op threads)."""

    package: str
    bind: str = "tcp://127.0.0.1:5555"
    engine: EngineConfig = field(default_factory=EngineConfig)
    batch_window_ms: float = 2.0
    max_batch: int = 32
    max_obs_age_ms: float | None = None
    max_queue: int = 1024
    seed: int | None = None
    curve: CurveConfig | None = None
    workers: int = 1
    inline_lone_requests: bool = True
    """Run an act request on the I/O thread itself when it is the only work and its client the
    only active one: no hand-off to the compute thread and back (two thread wake-ups, a large
    part of the server's overhead). Stats and pings then wait for that one request."""


@dataclass
class _Swap:
    engine: ServingEngine
    request: Request


class _Stats:
    """Counters and latency windows, written by the compute threads under ``lock``, read by the
    I/O thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started_ns = now_ns()
        self.act_requests = 0
        self.chunks = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.batches = 0
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self.multi_request_batches = 0
        self.inline_batches = 0  # lone requests run on the I/O thread
        self.max_concurrent_batches = 0  # most batches computing at once (workers and inline)
        self.swaps = 0
        self.stream_calls: collections.Counter[str] = collections.Counter()  # by how the buffer went on
        self.windows = {k: Window(4000) for k in ("queue_ms", "encode_ms", "sample_ms", "total_ms")}

    def as_dict(self) -> dict[str, Any]:
        def clean(summary: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if v != v else round(v, 4)) for k, v in summary.items()}  # NaN is not JSON

        with self.lock:
            return {
                "uptime_s": round((now_ns() - self.started_ns) / 1e9, 3),
                "act_requests": self.act_requests,
                "chunks": self.chunks,
                "errors": dict(self.errors),
                "batches": self.batches,
                "multi_request_batches": self.multi_request_batches,
                "inline_batches": self.inline_batches,
                "max_concurrent_batches": self.max_concurrent_batches,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "swaps": self.swaps,
                "stream_calls": dict(self.stream_calls),
                "latency_ms": {k: clean(w.summary()) for k, w in self.windows.items()},
            }


class PolicyServer:
    """Serves one policy package at ``config.bind``. ``start()`` loads and warms the package, binds
    and starts the threads; it returns once the server answers requests."""

    def __init__(self, config: ServerConfig) -> None:
        if config.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {config.max_batch}")
        if config.batch_window_ms < 0:
            raise ValueError(f"batch_window_ms must be >= 0, got {config.batch_window_ms}")
        if config.workers < 1:
            raise ValueError(f"workers must be >= 1, got {config.workers}")
        self.config = config
        self.engine: ServingEngine | None = None
        self.endpoint: str | None = None
        self.warmup_ms: dict[str, float] = {}
        self._stats = _Stats()
        self._rng = np.random.default_rng(config.seed)
        self._work: collections.deque[Request | _Swap] = collections.deque()
        self._work_ready = threading.Condition()
        self._outbox: collections.deque[tuple[Request, Message | tuple[str, str]]] = collections.deque()
        self._wake_lock = threading.Lock()
        self._wake_addr = f"inproc://policy-server-{id(self)}-{next(_ids)}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: dict[bytes, int] = {}
        self._active_clients = 0
        self._loading = threading.Lock()
        # Under _work_ready: the batches computing now (on workers or inline), their requests
        # (clients that cannot send again before their reply), the streaming sessions in them.
        self._running = 0
        self._running_requests = 0
        self._busy_sessions: set[tuple[bytes, str]] = set()
        self._swap_pending = False  # a swap waits for the running batches; nothing new starts
        self._gathering = threading.Lock()  # one worker gathers a batch at a time
        self._io_thread_id: int | None = None
        self._failure_scorers: weakref.WeakKeyDictionary[ServingEngine, Any] = weakref.WeakKeyDictionary()
        self._scorers_lock = threading.Lock()
        self._streams = StreamSessions()  # streaming packages: a rolling buffer per (client, session)
        self.failure: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PolicyServer":
        engine_config = self._engine_config(self.config.engine)
        self.engine = ServingEngine(self.config.package, engine_config)
        self.warmup_ms = self.engine.warm_up()
        self._service = ServiceServer(self.config.bind, src="policy_server", curve=self.config.curve)
        self.endpoint = self._service.endpoint
        ctx = zmq.Context.instance()
        self._wake_pull = ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_addr)
        self._wake_push = ctx.socket(zmq.PUSH)
        self._wake_push.connect(self._wake_addr)
        self._threads = [threading.Thread(target=self._guard, args=(self._io_loop,), name="policy-server-io", daemon=True)]
        self._threads += [
            threading.Thread(target=self._guard, args=(self._compute_loop,), name=f"policy-server-compute-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        for t in self._threads:
            t.start()
        log.info("serving %s at %s (%s)", self.engine.spec.name, self.endpoint, self.engine.providers_report()["graphs"])
        return self

    def _engine_config(self, base: EngineConfig) -> EngineConfig:
        sizes = sorted({1, min(self.config.max_batch, 8), self.config.max_batch} | set(base.warmup_batches))
        threads = base.threads
        if threads is None and self.config.workers > 1:
            # onnxruntime's default (a thread per core) in every worker would oversubscribe the
            # cores, and its spinning threads would steal them from each other.
            threads = max(1, (os.cpu_count() or 1) // self.config.workers)
        return replace(base, warmup_batches=tuple(sizes), threads=threads)

    def stop(self) -> None:
        """Stop the threads and close the socket (requests still queued get no reply)."""
        self._stop.set()
        with self._work_ready:
            self._work_ready.notify_all()
        self._wake()
        for t in self._threads:
            t.join(timeout=5.0)
        if self.endpoint is not None:
            self._service.close()
            self._wake_push.close(linger=0)
            self._wake_pull.close(linger=0)
            self.endpoint = None

    def __enter__(self) -> "PolicyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        """True while all its threads run."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads) and self.failure is None

    def _guard(self, loop: Any) -> None:
        try:
            loop()
        except BaseException as exc:  # recorded so the owner (CLI, node) can report and exit
            self.failure = exc
            log.exception("policy server thread died")
            self._stop.set()

    # -- reports -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters, latency percentiles, batching mode, the package and its providers."""
        engine = self.engine
        out = self._stats.as_dict()
        out.update(
            queue_depth=len(self._work),
            active_clients=self._active_clients,
            batch_window_ms=self.config.batch_window_ms,
            max_batch=self.config.max_batch,
            workers=self.config.workers,
            service={"requests": self._service.stats.requests, "pings": self._service.stats.pings,
                     "malformed": dict(self._service.stats.malformed)} if self.endpoint else {},
        )
        if engine is not None:
            out["package"] = engine.describe()
            out["batching"] = engine.batching
            if engine.stream is not None:
                out["stream_sessions"] = len(self._streams)
        return out

    def info(self) -> dict[str, Any]:
        assert self.engine is not None
        return {**proto.spec_summary(self.engine.spec), "package": self.engine.describe(), "warmup_ms": self.warmup_ms}

    # -- I/O thread ----------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._wake_lock:
            try:
                self._wake_push.send(b"", zmq.NOBLOCK)
            except (zmq.Again, zmq.ZMQError):  # a wake already pending is enough; closed on stop
                pass

    def _post(self, request: Request, reply: Message | tuple[str, str]) -> None:
        self._outbox.append((request, reply))
        if threading.get_ident() != self._io_thread_id:  # the I/O thread flushes its own replies
            self._wake()

    def _io_loop(self) -> None:
        self._io_thread_id = threading.get_ident()
        poller = zmq.Poller()
        poller.register(self._service.socket, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        while not self._stop.is_set():
            events = dict(poller.poll(100))
            if self._wake_pull in events:
                while True:
                    try:
                        self._wake_pull.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
            self._flush_outbox()
            if self._service.socket in events:
                for request in self._service.receive(max_requests=256):
                    self._dispatch(request)
                self._flush_outbox()

    def _flush_outbox(self) -> None:
        while self._outbox:
            request, reply = self._outbox.popleft()
            if isinstance(reply, tuple):
                self._service.reply_error(request, *reply)
            else:
                self._service.reply(request, reply)

    def _dispatch(self, request: Request) -> None:
        topic = request.message.topic
        if topic == proto.ACT:
            self._note_client(request)
            if len(self._work) >= self.config.max_queue:
                with self._stats.lock:
                    self._stats.errors["overloaded"] += 1
                self._service.reply_error(request, "overloaded", f"{len(self._work)} requests already queued (max_queue {self.config.max_queue})")
                return
            if self._run_inline(request):
                return
            with self._work_ready:
                self._work.append(request)
                self._work_ready.notify()
        elif topic == proto.STATS:
            self._service.reply(request, messages.make(proto.STATS, meta=self.stats()))
        elif topic == proto.INFO:
            self._service.reply(request, messages.make(proto.INFO, meta=self.info()))
        elif topic == proto.LOAD:
            self._start_load(request)
        else:
            with self._stats.lock:
                self._stats.errors["unknown_topic"] += 1
            self._service.reply_error(request, "unknown_topic", f"topic {topic!r}; this server answers {[proto.ACT, proto.INFO, proto.STATS, proto.LOAD, '!ping']}")

    def _run_inline(self, request: Request) -> bool:
        """Run a lone client's request here on the I/O thread; False when it must be queued
        (other work waiting or running, a swap pending, or other clients that may batch with it)."""
        if not self.config.inline_lone_requests or self._active_clients > 1:
            return False
        with self._work_ready:
            if self._work or self._running or self._swap_pending:
                return False
            self._claim([request])
        try:
            with self._stats.lock:
                self._stats.inline_batches += 1
            self._run_batch([request])
        finally:
            self._release([request])
        self._flush_outbox()  # before the next request received with it runs
        return True

    def _note_client(self, request: Request) -> None:
        t = request.received_ns
        self._clients[request.client] = t
        if len(self._clients) > 64:
            self._clients = {c: s for c, s in self._clients.items() if t - s < _ACTIVE_CLIENT_NS}
        self._active_clients = sum(1 for s in self._clients.values() if t - s < _ACTIVE_CLIENT_NS)

    # -- hot swap ------------------------------------------------------------------------------
    def _start_load(self, request: Request) -> None:
        path = request.message.meta.get("path")
        steps = request.message.meta.get("steps")
        if not isinstance(path, str) or not path:
            self._service.reply_error(request, "request", f"a load request needs meta 'path' (a policy package directory), got {path!r}")
            return
        if steps is not None and (type(steps) is not int or steps < 1):
            self._service.reply_error(request, "request", f"meta 'steps' must be a positive integer, got {steps!r}")
            return
        if not self._loading.acquire(blocking=False):
            self._service.reply_error(request, "busy", "another package is being loaded")
            return
        threading.Thread(target=self._load, args=(request, path, steps), name="policy-server-load", daemon=True).start()

    def _load(self, request: Request, path: str, steps: int | None) -> None:
        try:
            base = self.config.engine if steps is None else replace(self.config.engine, steps=steps)
            engine = ServingEngine(Path(path), self._engine_config(base))
            engine.warm_up()
        except Exception as exc:  # any load problem is the client's answer; the old package keeps serving
            with self._stats.lock:
                self._stats.errors["load_failed"] += 1
            self._loading.release()  # before the reply, so the client may load again at once
            self._post(request, ("load_failed", f"{path}: {exc}"))
            return
        with self._work_ready:
            self._work.append(_Swap(engine, request))
            self._work_ready.notify()

    # -- compute thread ------------------------------------------------------------------------
    def _compute_loop(self) -> None:
        while not self._stop.is_set():
            with self._gathering:
                batch = self._next_batch()
            if batch:
                try:
                    self._run_batch(batch)
                finally:
                    self._release(batch)

    def _next_batch(self) -> list[Request]:
        """Requests to run together, claimed (empty on stop). A swap at the head of the queue is
        applied first, once the batches before it are done. One worker at a time calls this."""
        with self._work_ready:
            while not self._stop.is_set():
                if self._work and isinstance(self._work[0], _Swap):
                    self._apply_swap(self._work.popleft())  # type: ignore[arg-type]
                    continue
                first = self._take([], self.config.max_batch)
                if first is None:
                    self._work_ready.wait(0.1)
                    continue
                batch, samples = [first], _samples_of(first)
                target = self._batch_target()
                deadline = first.received_ns + int(self.config.batch_window_ms * 1e6)
                while samples < self.config.max_batch and len(batch) < target:
                    nxt = self._take(batch, self.config.max_batch - samples)
                    if nxt is not None:
                        batch.append(nxt)
                        samples += _samples_of(nxt)
                        continue
                    # Queued requests that cannot join (too large, behind a swap, of a busy
                    # session) end the batch; otherwise wait out the window for the target.
                    left = (deadline - now_ns()) / 1e9
                    if self._work or left <= 0 or self._stop.is_set():
                        break
                    self._work_ready.wait(left)
                self._claim(batch)
                return batch
            return []

    def _batch_target(self) -> int:
        """How many requests the batch being gathered waits for: the requests that may come now
        (queued, or from active clients not waiting on a running batch: a lone client never
        pays the window) shared among the idle workers, so that several workers compute
        batches side by side instead of one worker taking everything (caller holds
        ``_work_ready``; the first request is already taken)."""
        expected = max(1 + len(self._work), self._active_clients - self._running_requests)
        idle = max(1, self.config.workers - self._running)
        return -(-expected // idle)

    def _take(self, batch: list[Request], room: int) -> Request | None:
        """Remove and return the first queued request that may join ``batch`` (None if there is
        none before the next swap). In order, except that a streaming session's request waits
        while a call of the same session runs; a request larger than ``room`` ends the batch
        (one larger than ``max_batch`` runs alone)."""
        streaming = self.engine is not None and self.engine.stream is not None
        taken = {_session_key(r) for r in batch} if streaming else set()
        for i, item in enumerate(self._work):
            if isinstance(item, _Swap):
                return None
            if streaming:
                key = _session_key(item)
                if key in self._busy_sessions or key in taken:
                    continue
            if batch and _samples_of(item) > room:
                return None
            del self._work[i]
            return item
        return None

    def _claim(self, batch: list[Request]) -> None:
        """Count ``batch`` as running (caller holds ``_work_ready``)."""
        self._running += 1
        self._running_requests += len(batch)
        with self._stats.lock:
            self._stats.max_concurrent_batches = max(self._stats.max_concurrent_batches, self._running)
        if self.engine is not None and self.engine.stream is not None:
            self._busy_sessions.update(_session_key(r) for r in batch)

    def _release(self, batch: list[Request]) -> None:
        with self._work_ready:
            self._running -= 1
            self._running_requests -= len(batch)
            self._busy_sessions.difference_update(_session_key(r) for r in batch)
            self._work_ready.notify_all()

    def _apply_swap(self, swap: _Swap) -> None:
        """Switch to the swap's engine once no batch runs (caller holds ``_work_ready``)."""
        self._swap_pending = True
        while self._running and not self._stop.is_set():
            self._work_ready.wait(0.1)
        self._streams.clear()  # buffers of the old package mean nothing to the new one
        self.engine = swap.engine
        self._swap_pending = False
        with self._stats.lock:
            self._stats.swaps += 1
        self._loading.release()
        self._post(swap.request, messages.make(proto.LOAD, meta={"loaded": swap.engine.describe()}))

    def _run_batch(self, batch: list[Request]) -> None:
        engine = self.engine
        assert engine is not None
        t_start = now_ns()
        accepted: list[tuple[Request, proto.ActRequest]] = []
        feeds, noises, prefixes = [], [], []
        streams: list[StreamState] = []
        rngs: list[np.random.Generator] = []
        H, A = engine.spec.action_horizon, engine.spec.action_dim
        with self._stats.lock:
            self._stats.act_requests += len(batch)
        for request in batch:
            msg = request.message
            try:
                act = proto.parse_act_request(
                    engine.spec, msg.arrays, msg.stamp_ns, msg.meta, now_ns=t_start, max_obs_age_ms=self.config.max_obs_age_ms
                )
                feed = engine.feed(act.history)
            except proto.RequestError as exc:
                self._reply_error(request, exc.kind, exc.detail)
                continue
            except ObservationError as exc:
                self._reply_error(request, "observation", str(exc))
                continue
            rng = np.random.default_rng(act.seed) if act.seed is not None else self._rng
            if engine.stream is not None:
                state = self._streams.get((request.client, act.session))
                restart = engine.stream.prepare(state, act.stamp_ns, engine.dt_ns, act.num_samples, act.reset)
                with self._stats.lock:
                    self._stats.stream_calls[restart or "continued"] += 1
                streams.append(state)
                rngs.append(rng)
            else:
                noises.append(rng.standard_normal((act.num_samples, H, A)).astype(np.float32))
            feeds.append(feed)
            prefixes.append(act.prefix)
            accepted.append((request, act))
        if not accepted:
            return
        try:
            if engine.stream is not None:
                results, timing = engine.sample_stream(feeds, streams, rngs, [act.num_samples for _, act in accepted])
            else:
                results, timing = engine.sample(feeds, noises, prefixes)
        except Exception as exc:  # a graph that fails at run time answers every request of the batch
            log.exception("sampling failed")
            for state in streams:
                state.clear()
            for request, _ in accepted:
                self._reply_error(request, "internal", f"sampling failed: {type(exc).__name__}: {exc}")
            return
        with self._stats.lock:
            self._stats.batches += 1
            self._stats.batch_sizes[len(accepted)] += 1
            self._stats.multi_request_batches += len(accepted) > 1
        t_done = now_ns()
        total_samples = int(sum(act.num_samples for _, act in accepted))
        for (request, act), result in zip(accepted, results):
            timing_meta = {
                "queue_ms": round((t_start - request.received_ns) / 1e6, 4),
                "encode_ms": round(timing.encode_ms, 4),
                "sample_ms": round(timing.sample_ms, 4),
                "total_ms": round((t_done - request.received_ns) / 1e6, 4),
            }
            with self._stats.lock:
                for key, value in timing_meta.items():
                    self._stats.windows[key].add(value)
                self._stats.chunks += 1
            chunk = ActionChunk(
                actions=result.actions[0],
                start_ns=act.stamp_ns,
                dt_ns=engine.dt_ns,
                obs_stamp_ns=act.stamp_ns,
                meta={
                    "policy": engine.spec.name,
                    "steps": engine.steps,
                    "num_samples": act.num_samples,
                    "timing": timing_meta,
                    "batch": {"requests": len(accepted), "samples": total_samples},
                    **({"prefix_steps": int(act.prefix.shape[0])} if act.prefix is not None else {}),
                    **({"stream": {"session": act.session, **result.stream}} if result.stream is not None else {}),
                },
            )
            arrays, meta = chunk_to_message_parts(chunk)
            if act.num_samples > 1:
                arrays["actions"] = result.actions
                scores = self._failure_scores(engine, result)
                if scores is not None:
                    meta["failure"] = scores
            if result.embedding is not None:
                arrays["embedding"] = np.asarray(result.embedding, dtype=np.float32)
            self._post(request, messages.make(proto.CHUNK, arrays, stamp_ns=act.stamp_ns, meta=meta))

    def _reply_error(self, request: Request, kind: str, detail: str) -> None:
        with self._stats.lock:
            self._stats.errors[kind] += 1
        self._post(request, (kind, detail))

    def _failure_scores(self, engine: ServingEngine, result: Any) -> dict[str, Any] | None:
        """Raw per-step failure scores (``rnd``, ``ace``) of one request's B samples when the
        package has a failure-prediction fit (docs/failure-prediction.md); None otherwise."""
        with self._scorers_lock:
            if engine not in self._failure_scorers:
                self._failure_scorers[engine] = _failure_scorer(engine)
            scorer = self._failure_scorers[engine]
        if scorer is None:
            return None
        t0 = now_ns()
        rnd = scorer.rnd(result.embedding) if result.embedding is not None else None
        ace = scorer.ace(result.actions)
        return {"rnd": rnd, "ace": ace, "ms": round((now_ns() - t0) / 1e6, 4)}


def _failure_scorer(engine: ServingEngine) -> Any:
    """The package's failure scorer, or None without a failure-prediction fit (or with one this
    server cannot score: an FK projection needs a robot model)."""
    from robostack.policies.failure.config import FailureConfigError, read_block
    from robostack.policies.failure.scorer import FailureScorer

    block = read_block(engine.spec)
    if block is None or block.ace is None:
        return None
    try:
        return FailureScorer.from_package(engine.package)
    except (FailureConfigError, ValueError) as exc:
        log.warning("failure scores disabled for %s: %s", engine.spec.name, exc)
        return None


_ids = itertools.count()


def _session_key(request: Request) -> tuple[bytes, str]:
    """A streaming session as the queue sees it: the client and its raw ``session`` meta."""
    return request.client, repr(request.message.meta.get("session", ""))


def _samples_of(request: Request) -> int:
    n = request.message.meta.get("num_samples", 1)
    return n if type(n) is int and n > 0 else 1


def serve(config: ServerConfig, stop: threading.Event, on_ready: Any = None, poll_s: float = 0.2) -> int:
    """Run a server until ``stop`` is set or a server thread fails (exit code 1)."""
    with PolicyServer(config) as server:
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(poll_s):
            if not server.alive:
                return 1
    return 0

