"""Transport over ZeroMQ: publish/subscribe streams and request/reply services.

- :class:`Publisher` binds one endpoint and publishes messages of one topic, stamping a sequence
  number and sending heartbeats while idle so readers can tell a live, quiet publisher from a
  dead one.
- :class:`Subscriber` connects and delivers either the newest sample (``latest``: no backlog) or
  every sample in order from a bounded queue (``queue``: overflow and upstream losses, found from
  sequence gaps, are counted, never silent). Malformed messages are counted per reason and dropped.
- :class:`ServiceServer` / :class:`ServiceClient`: ROUTER/DEALER request/reply with request ids,
  many concurrent clients and several requests in flight per client.

Endpoints are ZMQ addresses: ``ipc:///path`` on one host, ``tcp://host:port`` across hosts. tcp
links may require CURVE authentication (:class:`CurveConfig`, keys from ``robostack keys new``).
"""

from __future__ import annotations

import collections
import hashlib
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np
import zmq
import zmq.auth

from robostack import messages
from robostack.clock import now_ns, wall_ns
from robostack.messages import HEARTBEAT_TOPIC, Message, MessageError

DeliveryMode = Literal["latest", "queue"]
_HB_TOPIC = HEARTBEAT_TOPIC.encode()
_REQ_ID = struct.Struct("<Q")
# Plain ints: pyzmq's enum flags cost microseconds per use on the hot path.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVTIMEO = int(zmq.RCVTIMEO)
ERROR_TOPIC = "!error"
PING_TOPIC = "!ping"


# --------------------------------------------------------------------------------------- security
@dataclass(frozen=True)
class CurveConfig:
    """CURVE keys for one end of a tcp link.

    The binding end (publisher, service server) gives its own ``secret_key_file`` and, to admit
    only known peers, ``authorized_keys_dir`` holding their ``*.key`` public certificates. The
    connecting end gives its own ``secret_key_file`` and the binder's ``server_public_key_file``.
    """

    secret_key_file: str
    server_public_key_file: str | None = None
    authorized_keys_dir: str | None = None


_authenticators: dict[int, Any] = {}
_auth_lock = threading.Lock()


def _load_secret(path: str) -> tuple[bytes, bytes]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"CURVE key file not found: {path}")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise ValueError(f"{path} holds no secret key; pass the '.key_secret' file")
    return public, secret


def _apply_curve(sock: zmq.Socket, curve: CurveConfig | None, server: bool) -> None:
    if curve is None:
        return
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support")

    public, secret = _load_secret(curve.secret_key_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    if server:
        # ZAP is per context: give each server socket its own domain so one process can hold
        # servers with different authorized-key sets (and open ones) side by side.
        keys_dir = curve.authorized_keys_dir
        domain = "rs-any" if keys_dir is None else "rs-" + hashlib.sha1(str(Path(keys_dir).resolve()).encode()).hexdigest()[:12]
        _configure_authenticator(sock.context, domain, keys_dir)
        sock.zap_domain = domain.encode()
        sock.curve_server = True
    else:
        if curve.server_public_key_file is None:
            raise ValueError("a connecting CURVE socket needs server_public_key_file")
        if not Path(curve.server_public_key_file).is_file():
            raise FileNotFoundError(f"CURVE server public key not found: {curve.server_public_key_file}")
        server_public, _ = zmq.auth.load_certificate(curve.server_public_key_file)
        sock.curve_serverkey = server_public


def _configure_authenticator(context: zmq.Context, domain: str, keys_dir: str | None) -> None:
    """Admit only the public keys in ``keys_dir`` on ``domain`` (any key when None)."""
    from zmq.auth.thread import ThreadAuthenticator

    if keys_dir is not None and not Path(keys_dir).is_dir():
        raise FileNotFoundError(f"CURVE authorized keys directory not found: {keys_dir}")
    with _auth_lock:
        auth = _authenticators.get(id(context))
        if auth is None:
            auth = ThreadAuthenticator(context)
            auth.start()
            _authenticators[id(context)] = auth
        auth.configure_curve(domain=domain, location=zmq.auth.CURVE_ALLOW_ANY if keys_dir is None else str(keys_dir))


def ipc_endpoint(run_dir: str | os.PathLike, name: str) -> str:
    """An ``ipc://`` endpoint for ``name`` inside ``run_dir`` (created if missing)."""
    path = Path(run_dir) / f"{name}.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        raise ValueError(f"ipc path too long for a unix socket ({len(str(path))} chars): {path}")
    return f"ipc://{path}"


def _context() -> zmq.Context:
    return zmq.Context.instance()


def _tune(sock: zmq.Socket) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 20)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)


def _send_frames(sock: zmq.Socket, frames: list) -> None:
    """``send_multipart(frames, copy=False)`` without its per-frame type checks and flag enums,
    which cost more than the send itself on a small message."""
    send = sock.send
    last = len(frames) - 1
    for i in range(last):
        send(frames[i], _SNDMORE, copy=False)
    send(frames[last], 0, copy=False)


def _recv_frames(sock: zmq.Socket, flags: int) -> list:
    """``recv_multipart(flags, copy=False)`` reading each frame's more-flag instead of asking
    the socket for it."""
    recv = sock.recv
    frame = recv(flags, copy=False)
    frames = [frame]
    while frame.more:
        frame = recv(flags, copy=False)
        frames.append(frame)
    return frames


# ---------------------------------------------------------------------------------- pub / sub
@dataclass
class PublisherStats:
    sent: int = 0
    bytes: int = 0
    heartbeats: int = 0


class Publisher:
    """Publishes messages of one ``topic`` on a bound endpoint.

    ``endpoint`` may use a wildcard tcp port (``tcp://127.0.0.1:*``); :attr:`endpoint` then holds
    the bound address. Call :meth:`tick` from the owner's loop so heartbeats go out while idle.
    The socket is an XPUB, so the publisher knows how many subscribers are connected
    (:attr:`subscribers`) and a node can wait for them before its first message (PUB/SUB
    drops whatever is sent before a subscriber has joined).
    """

    def __init__(
        self,
        endpoint: str,
        topic: str,
        *,
        src: str = "",
        hwm: int = 1000,
        heartbeat_s: float = 0.25,
        curve: CurveConfig | None = None,
        jpeg_quality: int = 90,
        codecs: Mapping[str, str] | None = None,
    ) -> None:
        if not topic or topic.startswith("\x00") or topic.startswith("!"):
            raise ValueError(f"bad topic {topic!r}: non-empty, not starting with NUL or '!'")
        self.topic = topic
        self._topic_bytes = topic.encode()
        self.src = src
        self.jpeg_quality = jpeg_quality
        self.codecs = dict(codecs or {})
        self.stats = PublisherStats()
        self._seq = 0
        self._heartbeat_ns = int(heartbeat_s * 1e9)
        self._last_send_ns = 0
        self._subscribers = 0
        self.socket = _context().socket(zmq.XPUB)
        _tune(self.socket)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscription, so we can count peers
        _apply_curve(self.socket, curve, server=True)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(
        self,
        arrays: Mapping[str, np.ndarray] | Message,
        *,
        stamp_ns: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Message:
        """Send one sample. ``stamp_ns`` is the capture stamp (now if omitted). Returns the
        message as sent (with its sequence number)."""
        if isinstance(arrays, Message):
            msg = arrays
            msg.topic = self.topic
            msg.src = msg.src or self.src
            msg.wall_ns = msg.wall_ns or wall_ns()
        else:
            msg = messages.make(self.topic, arrays, stamp_ns=stamp_ns, src=self.src, meta=meta, codecs=self.codecs)
        msg.seq = self._seq
        frames = messages.encode(msg, self.jpeg_quality)
        nbytes = len(frames[1]) + msg.nbytes
        t = now_ns()
        _send_frames(self.socket, frames)
        # Only stores after the send: the message is in flight, and on a small machine the I/O
        # threads moving it need the CPU more than this thread does.
        self._seq += 1
        self.stats.sent += 1
        self.stats.bytes += nbytes
        self._last_send_ns = t
        return msg

    @property
    def subscribers(self) -> int:
        """Subscribers currently connected to this topic."""
        sock = self.socket
        while sock.getsockopt(_EVENTS) & _POLLIN:
            event = sock.recv(_NOBLOCK)
            if event[1:] == self._topic_bytes:
                self._subscribers += 1 if event[:1] == b"\x01" else -1
        return self._subscribers

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` subscribers joined (True) or ``timeout_s`` passed (False)."""
        deadline = now_ns() + int(timeout_s * 1e9)
        while self.subscribers < count:
            if now_ns() >= deadline:
                return False
            self.socket.poll(10)
        return True

    def tick(self, t_ns: int | None = None) -> None:
        """Send a heartbeat if nothing went out for the heartbeat interval."""
        if self.socket.getsockopt(_EVENTS) & _POLLIN:
            _ = self.subscribers  # drain subscription events so they do not pile up
        t = now_ns() if t_ns is None else t_ns
        if t - self._last_send_ns >= self._heartbeat_ns:
            hb = messages.make(self.topic, src=self.src, stamp_ns=t, meta={"last_seq": self._seq - 1})
            frames = messages.encode(hb)
            frames[0] = _HB_TOPIC
            _send_frames(self.socket, frames)
            self.stats.heartbeats += 1
            self._last_send_ns = t

    def close(self) -> None:
        self.socket.close(linger=100)


@dataclass
class SubscriberStats:
    received: int = 0  # valid data messages taken off the socket
    delivered: int = 0  # handed to the reader
    superseded: int = 0  # latest mode: older samples skipped in favour of a newer one
    overflow: int = 0  # queue mode: dropped because the local queue was full
    gaps: int = 0  # samples that never arrived, from sequence-number gaps
    restarts: int = 0  # a publisher's sequence went backwards (it restarted)
    heartbeats: int = 0
    other_topic: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def dropped(self) -> int:
        """Samples lost that a queue reader should have seen (overflow + upstream gaps)."""
        return self.overflow + self.gaps

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "delivered": self.delivered,
            "superseded": self.superseded,
            "overflow": self.overflow,
            "gaps": self.gaps,
            "dropped": self.dropped,
            "restarts": self.restarts,
            "heartbeats": self.heartbeats,
            "other_topic": self.other_topic,
            "malformed": dict(self.malformed),
            "malformed_total": self.malformed_total,
        }


class Subscriber:
    """Reads one topic from one or more publisher endpoints.

    ``mode="latest"``: :meth:`receive` returns the newest sample not yet returned (older ones are
    skipped and counted as superseded). ``mode="queue"``: samples come in order from a bounded
    queue of ``queue_size``; overflow and upstream losses are counted in :attr:`stats`.
    """

    def __init__(
        self,
        endpoints: str | Iterable[str],
        topic: str,
        *,
        mode: DeliveryMode = "latest",
        queue_size: int = 100,
        heartbeat_timeout_s: float = 1.0,
        curve: CurveConfig | None = None,
    ) -> None:
        if mode not in ("latest", "queue"):
            raise ValueError(f"delivery mode must be 'latest' or 'queue', got {mode!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.topic = topic
        self.mode = mode
        self.stats = SubscriberStats()
        self._topic_bytes = topic.encode()
        self._queue: collections.deque[Message] = collections.deque()
        self._queue_size = queue_size
        self._last_seq: dict[str, int] = {}
        self._last_heard_ns: int | None = None
        self._timeout_ns = int(heartbeat_timeout_s * 1e9)
        self._pending_latest: Message | None = None
        self.socket = _context().socket(zmq.SUB)
        _tune(self.socket)
        # Generous in both modes: ZMQ drops the *newest* messages when a queue is full, which
        # would leave a latest reader with stale data. Latest readers drain everything waiting
        # and decode only the newest sample, so a backlog costs little.
        self.socket.setsockopt(zmq.RCVHWM, max(queue_size, 1000))
        _apply_curve(self.socket, curve, server=False)
        self.socket.setsockopt(zmq.SUBSCRIBE, self._topic_bytes)
        self.socket.setsockopt(zmq.SUBSCRIBE, _HB_TOPIC)
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        for ep in self.endpoints:
            self.socket.connect(ep)
        self._recv_timeout_ms = -1  # the socket's RCVTIMEO, set only when a wait needs another

    # -- liveness
    @property
    def last_heard_ns(self) -> int | None:
        """Monotonic time of the last data message or heartbeat, or None if never heard."""
        return self._last_heard_ns

    def publisher_alive(self, t_ns: int | None = None) -> bool:
        """True if a message or heartbeat arrived within the heartbeat timeout."""
        self._pump()
        if self._last_heard_ns is None:
            return False
        return (now_ns() if t_ns is None else t_ns) - self._last_heard_ns < self._timeout_ns

    # -- reading
    def _not_data(self, frames: list) -> None:
        """Handle a frame set whose topic is not ours: a heartbeat or a foreign topic."""
        if frames[0].bytes == _HB_TOPIC:
            if len(frames) != 2:
                self.stats.malformed["frames"] += 1
                return
            try:
                messages.decode_header(frames[1])
            except MessageError as exc:
                self.stats.malformed[exc.kind] += 1
                return
            self.stats.heartbeats += 1
            self._last_heard_ns = now_ns()
        else:
            self.stats.other_topic += 1  # SUBSCRIBE matches prefixes; we want the exact topic

    def _decode(self, frames: list) -> Message | None:
        try:
            msg = messages.decode(frames)
        except MessageError as exc:
            self.stats.malformed[exc.kind] += 1
            return None
        self._last_heard_ns = now_ns()
        self.stats.received += 1
        last = self._last_seq.get(msg.src)
        if last is not None:
            if msg.seq > last + 1 and self.mode == "queue":
                self.stats.gaps += msg.seq - last - 1
            elif msg.seq <= last:
                self.stats.restarts += 1
        self._last_seq[msg.src] = msg.seq
        return msg

    def _pump(self, first: list | None = None) -> None:
        """Move ``first`` (frames already received) and everything waiting on the socket into the
        local buffer."""
        sock = self.socket
        if sock.closed:
            return
        latest: list[list] = []
        topic = self._topic_bytes
        while True:
            if first is not None:
                frames, first = first, None
            # Checking EVENTS is ~2x cheaper than letting a NOBLOCK recv raise zmq.Again.
            elif sock.getsockopt(_EVENTS) & _POLLIN:
                frames = _recv_frames(sock, _NOBLOCK)
            else:
                break
            if frames[0].bytes != topic:
                self._not_data(frames)
                continue
            if self.mode == "latest":
                latest.append(frames)  # decoded below: only the newest valid one is needed
                continue
            msg = self._decode(frames)
            if msg is None:
                continue
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.stats.overflow += 1
            self._queue.append(msg)
        for i in range(len(latest) - 1, -1, -1):
            msg = self._decode(latest[i])
            if msg is not None:
                self.stats.superseded += i + (self._pending_latest is not None)
                self._pending_latest = msg
                break

    def _has_sample(self) -> bool:
        return self._pending_latest is not None or bool(self._queue)

    def _wait_pumped(self, timeout_ms: int) -> bool:
        """Wait for a sample when none is buffered: block in recv (one call where a poll, an
        EVENTS check and a recv would be three), then pump whatever else is waiting."""
        sock = self.socket
        deadline = now_ns() + timeout_ms * 1_000_000
        while True:
            left_ms = (deadline - now_ns() + 999_999) // 1_000_000
            if left_ms <= 0:
                return False
            if left_ms != self._recv_timeout_ms:
                sock.setsockopt(_RCVTIMEO, left_ms)
                self._recv_timeout_ms = left_ms
            try:
                frames = _recv_frames(sock, 0)
            except zmq.Again:
                return False
            self._pump(frames)
            if self._has_sample():
                return True

    def wait(self, timeout_ms: int) -> bool:
        """Block up to ``timeout_ms`` for a sample; True if one is ready."""
        return self.ready() or self._wait_pumped(timeout_ms)

    def ready(self) -> bool:
        """True if :meth:`receive` would return a sample now."""
        self._pump()
        return self._has_sample()

    def receive(self, timeout_ms: int = 0) -> Message | None:
        """The next sample (newest in latest mode), waiting up to ``timeout_ms``; None if none."""
        if timeout_ms > 0 and not self._has_sample():
            self._wait_pumped(timeout_ms)  # its blocking recv returns at once if data is waiting
        else:
            self._pump()
        if self.mode == "latest":
            msg, self._pending_latest = self._pending_latest, None
        else:
            msg = self._queue.popleft() if self._queue else None
        if msg is not None:
            self.stats.delivered += 1
        return msg

    def receive_all(self) -> list[Message]:
        """Every sample waiting now (queue mode), oldest first; at most one in latest mode."""
        self._pump()
        out: list[Message] = []
        while (msg := self.receive()) is not None:
            out.append(msg)
        return out

    def close(self) -> None:
        self.socket.close(linger=0)


# ------------------------------------------------------------------------------------- services
class ServiceError(RuntimeError):
    """The service answered with an error. ``kind`` is the server's reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Request:
    """One request received by a :class:`ServiceServer`."""

    client: bytes
    request_id: int
    message: Message
    received_ns: int


@dataclass
class ServiceStats:
    requests: int = 0
    replies: int = 0
    errors: int = 0
    pings: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


def error_message(kind: str, detail: str, **extra: Any) -> Message:
    """The reply a service sends instead of a result."""
    return messages.make(ERROR_TOPIC, meta={"error": kind, "detail": detail, **extra})


class ServiceServer:
    """Request/reply server (ZMQ ROUTER). Envelope, client → server:
    ``[b"", request_id (u64 LE), topic, header, arrays...]``; replies mirror it.

    Requests are handed out in batches by :meth:`receive` so a server can batch concurrent work;
    answer each with :meth:`reply` (any order). A request whose envelope is intact but whose
    message is malformed is answered with an error reply; anything else malformed is dropped.
    Every malformed frame set is counted in :attr:`stats`.
    """

    def __init__(self, endpoint: str, *, src: str = "", curve: CurveConfig | None = None) -> None:
        self.src = src
        self.stats = ServiceStats()
        self.socket = _context().socket(zmq.ROUTER)
        _tune(self.socket)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        _apply_curve(self.socket, curve, server=True)
        self.socket.bind(endpoint)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _parse(self, frames: list) -> Request | None:
        if len(frames) < 3 or len(frames[1]) != 0 or len(frames[2]) != _REQ_ID.size:
            self.stats.malformed["envelope"] += 1
            return None
        client = frames[0].bytes
        (request_id,) = _REQ_ID.unpack(frames[2].bytes)
        try:
            msg = messages.decode(frames[3:])
        except MessageError as exc:
            self.stats.malformed[exc.kind] += 1
            self._send(client, request_id, error_message("malformed", str(exc)))
            self.stats.errors += 1
            return None
        if msg.topic == PING_TOPIC:
            self.stats.pings += 1
            self._send(client, request_id, messages.make("!pong", src=self.src))
            return None
        self.stats.requests += 1
        return Request(client, request_id, msg, now_ns())

    def receive(self, timeout_ms: int = 0, max_requests: int = 64) -> list[Request]:
        """Requests waiting now (after waiting up to ``timeout_ms`` for the first)."""
        out: list[Request] = []
        if timeout_ms > 0 and not self.socket.poll(timeout_ms):
            return out
        while len(out) < max_requests:
            try:
                frames = _recv_frames(self.socket, _NOBLOCK)
            except zmq.Again:
                break
            req = self._parse(frames)
            if req is not None:
                out.append(req)
        return out

    def _send(self, client: bytes, request_id: int, msg: Message) -> None:
        msg.src = msg.src or self.src
        frames = messages.encode(msg)
        _send_frames(self.socket, [client, b"", _REQ_ID.pack(request_id), *frames])

    def reply(self, request: Request, msg: Message) -> None:
        """Answer ``request`` with ``msg``."""
        self._send(request.client, request.request_id, msg)
        self.stats.replies += 1

    def reply_error(self, request: Request, kind: str, detail: str) -> None:
        """Answer ``request`` with an error the client raises as :class:`ServiceError`."""
        self._send(request.client, request.request_id, error_message(kind, detail))
        self.stats.errors += 1

    def close(self) -> None:
        self.socket.close(linger=0)


@dataclass(frozen=True)
class Reply:
    request_id: int
    message: Message

    @property
    def error(self) -> ServiceError | None:
        if self.message.topic != ERROR_TOPIC:
            return None
        return ServiceError(str(self.message.meta.get("error")), str(self.message.meta.get("detail")))


SEND_TIMEOUT_MS = 1000
"""How long a service client's send may wait for a connected server."""


class ServiceClient:
    """Request/reply client (ZMQ DEALER): several requests may be in flight at once."""

    def __init__(self, endpoint: str, *, src: str = "", curve: CurveConfig | None = None) -> None:
        self.src = src
        self.malformed_replies = 0
        self._next_id = 1
        self._stash: dict[int, Reply] = {}
        self.socket = _context().socket(zmq.DEALER)
        _tune(self.socket)
        _apply_curve(self.socket, curve, server=False)
        # A DEALER with no connected peer blocks in send (e.g. after the server refused our CURVE
        # key and the connection was torn down): bound it, so a client never hangs there.
        self.socket.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        self.socket.connect(endpoint)
        self.endpoint = endpoint

    def send(self, msg: Message) -> int:
        """Send a request; returns its id. ``TimeoutError`` when it cannot even be queued
        (no server connected: down, or it refused this client's key)."""
        request_id = self._next_id
        self._next_id += 1
        msg.src = msg.src or self.src
        frames = messages.encode(msg)
        try:
            _send_frames(self.socket, [b"", _REQ_ID.pack(request_id), *frames])
        except zmq.Again:
            raise TimeoutError(f"could not send request {request_id} to {self.endpoint} within {SEND_TIMEOUT_MS} ms: no server connected") from None
        return request_id

    def _recv_one(self, timeout_ms: int) -> Reply | None:
        if not self.socket.poll(timeout_ms):
            return None
        frames = _recv_frames(self.socket, 0)
        if len(frames) < 2 or len(frames[0]) != 0 or len(frames[1]) != _REQ_ID.size:
            self.malformed_replies += 1
            return None
        try:
            msg = messages.decode(frames[2:])
        except MessageError:
            self.malformed_replies += 1
            return None
        (request_id,) = _REQ_ID.unpack(frames[1].bytes)
        return Reply(request_id, msg)

    def receive(self, timeout_ms: int = 0) -> Reply | None:
        """The next reply to any in-flight request, or None after ``timeout_ms``."""
        if self._stash:
            return self._stash.pop(next(iter(self._stash)))
        deadline = now_ns() + timeout_ms * 1_000_000
        while True:
            reply = self._recv_one(max(0, (deadline - now_ns()) // 1_000_000))
            if reply is not None or now_ns() >= deadline:
                return reply

    def wait_for(self, request_id: int, timeout_s: float) -> Message:
        """Wait for the reply to ``request_id``; raise :class:`ServiceError` if it is an error,
        ``TimeoutError`` if none comes in time. Other replies are kept for later."""
        if request_id in self._stash:
            reply = self._stash.pop(request_id)
        else:
            deadline = now_ns() + int(timeout_s * 1e9)
            while True:
                left_ms = (deadline - now_ns()) // 1_000_000
                if left_ms < 0:
                    raise TimeoutError(f"no reply to request {request_id} from {self.endpoint} in {timeout_s}s")
                reply = self._recv_one(int(left_ms))
                if reply is None:
                    continue
                if reply.request_id == request_id:
                    break
                self._stash[reply.request_id] = reply
        if reply.error is not None:
            raise reply.error
        return reply.message

    def call(self, msg: Message, timeout_s: float = 5.0) -> Message:
        """Send ``msg`` and wait for its reply."""
        return self.wait_for(self.send(msg), timeout_s)

    def ping(self, timeout_s: float = 1.0) -> bool:
        """True if the server answers a ping in time."""
        try:
            self.call(messages.make(PING_TOPIC), timeout_s)
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.socket.close(linger=0)
