"""A policy served by a policy server, used like any in-process policy.

:class:`ServedPolicy` implements :class:`robostack.chunks.Policy` over a
:class:`robostack.transport.ServiceClient`: it keeps the observation history by capture stamp (as
the in-process ONNX policy does), sends the last ``observation_horizon`` observations with every
request, and turns the reply into an :class:`~robostack.chunks.ActionChunk`. No onnxruntime here.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from robostack import messages
from robostack.chunks import ActionChunk, Observation, chunk_from_message
from robostack.policies import serving_protocol as proto
from robostack.policies.observation_history import ObservationHistory
from robostack.policies.package import parse_policy_json
from robostack.transport import CurveConfig, ServiceClient, ServiceError


class ServedPolicyError(RuntimeError):
    """The server refused a request (``kind`` is its reason) or did not answer in time."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"policy server: {kind}: {detail}")
        self.kind = kind
        self.detail = detail


class ServedPolicy:
    """``Policy`` over a policy server at ``endpoint``.

    ``timeout_s`` bounds every request; ``seed`` makes the sampling noise reproducible (each
    request carries a seed drawn from it), otherwise the server's own generator is used.
    ``session`` names this policy's rolling buffer on a streaming-diffusion server (default: one
    per connection); ``reset()`` restarts it with the next request.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        seed: int | None = None,
        curve: CurveConfig | None = None,
        src: str = "served_policy",
        session: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.session = session
        self._restart_stream = True
        self.timeout_s = timeout_s
        self._client = ServiceClient(endpoint, src=src, curve=curve)
        self._seed_rng = None if seed is None else np.random.default_rng(seed)
        self._history = ObservationHistory(horizon=1, dt_ns=1)  # shaped by refresh_info()
        self._sent_ns: dict[int, int] = {}
        self.last_embedding: np.ndarray | None = None
        self.last_meta: dict[str, Any] = {}
        self.last_round_trip_ms: float | None = None
        self.info: dict[str, Any] = {}
        self.refresh_info()

    # -- server information ----------------------------------------------------------------------
    def refresh_info(self) -> dict[str, Any]:
        """Ask the server what it serves (after a hot swap the history shape may change)."""
        self.info = self._call(messages.make(proto.INFO)).meta
        self.observation_horizon = int(self.info["observation_horizon"])
        self.fps = float(self.info["fps"])
        self.dt_ns = int(round(1e9 / self.fps))
        # Kept observations stay; only the grid they are picked on follows the served package.
        self._history.horizon, self._history.dt_ns = self.observation_horizon, self.dt_ns
        # The same input specs the server validates against, parsed by the package loader.
        self.spec = parse_policy_json(_spec_json(self.info))
        """The served inputs, action shape and horizons as a ``PolicySpec`` (graphs and sampler are
        placeholders: the server holds the real ones)."""
        self.streaming = self.info.get("sampler", {}).get("type") == "streaming_ddim"
        return self.info

    def stats(self) -> dict[str, Any]:
        """The server's counters and latency percentiles."""
        return self._call(messages.make(proto.STATS)).meta

    def load(self, package_dir: str, steps: int | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
        """Hot-swap the served package; returns the new package's description once it serves."""
        meta: dict[str, Any] = {"path": str(package_dir)}
        if steps is not None:
            meta["steps"] = steps
        reply = self._call(messages.make(proto.LOAD, meta=meta), timeout_s)
        self.refresh_info()
        return reply.meta["loaded"]

    # -- Policy --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        self._history.clear()
        self._restart_stream = True
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        self.last_embedding = None

    def observe(self, obs: Observation, stamp_ns: int) -> None:
        """Add an observation to the history without a request."""
        self._history.add(obs, stamp_ns)

    def history(self) -> list[Observation]:
        """What the server's encoder gets, oldest first (see :class:`ObservationHistory`)."""
        return self._history.frames()

    def act(self, obs: Observation, stamp_ns: int, prefix: np.ndarray | None = None) -> ActionChunk:
        """The chunk for ``obs`` captured at ``stamp_ns`` (starting with the frozen ``prefix``, raw
        ``(d, A)``, when given); raises :class:`ServedPolicyError` when the server refuses the
        request or does not answer within ``timeout_s``."""
        reply = self.wait(self.send(obs, stamp_ns, prefix=prefix))
        return chunk_from_message(reply.arrays, reply.meta)

    def sample(self, obs: Observation, num_samples: int, stamp_ns: int | None = None) -> np.ndarray:
        """``num_samples`` chunks ``(B, H, A)`` for one observation (one batched call on the server)."""
        newest = self._history.newest_stamp_ns
        stamp = stamp_ns if stamp_ns is not None else (newest if newest is not None else time.monotonic_ns())
        reply = self.wait(self.send(obs, stamp, num_samples=num_samples))
        actions = np.asarray(reply.arrays["actions"])
        return actions if actions.ndim == 3 else actions[None]

    # -- asynchronous use ----------------------------------------------------------------------
    def send(self, obs: Observation, stamp_ns: int, num_samples: int = 1, prefix: np.ndarray | None = None) -> int:
        """Observe ``obs`` and send the request without waiting; returns the request id.
        ``prefix``: raw ``(d, A)`` actions for ``stamp_ns + i/fps`` the chunk must start with."""
        self.observe(obs, stamp_ns)
        arrays, instruction = proto.act_arrays(self.spec, self.history())
        if prefix is not None:
            arrays[proto.PREFIX_ARRAY] = np.ascontiguousarray(prefix, dtype=np.float32)
        meta: dict[str, Any] = {"num_samples": int(num_samples)}
        if instruction is not None:
            meta["instruction"] = instruction
        if self._seed_rng is not None:
            meta["seed"] = int(self._seed_rng.integers(0, 2**62))
        if self.streaming:
            if self.session is not None:
                meta["session"] = self.session
            if self._restart_stream:
                meta["reset"], self._restart_stream = True, False
        request_id = self._send(messages.make(proto.ACT, arrays, stamp_ns=stamp_ns, meta=meta))
        self._sent_ns[request_id] = time.perf_counter_ns()
        return request_id

    def wait(self, request_id: int, timeout_s: float | None = None) -> messages.Message:
        """The reply to ``request_id`` (a ``chunk`` message)."""
        try:
            reply = self._wait(request_id, self.timeout_s if timeout_s is None else timeout_s)
        finally:
            sent = self._sent_ns.pop(request_id, None)
        self.last_round_trip_ms = None if sent is None else (time.perf_counter_ns() - sent) / 1e6
        self.last_meta = dict(reply.meta)
        emb = reply.arrays.get("embedding")
        self.last_embedding = None if emb is None else np.array(emb)
        return reply

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "ServedPolicy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, msg: messages.Message) -> int:
        try:
            return self._client.send(msg)
        except TimeoutError as exc:
            raise ServedPolicyError("timeout", str(exc)) from None

    def _wait(self, request_id: int, timeout_s: float) -> messages.Message:
        try:
            return self._client.wait_for(request_id, timeout_s)
        except ServiceError as exc:
            raise ServedPolicyError(exc.kind, exc.detail) from None
        except TimeoutError:
            raise ServedPolicyError("timeout", f"no reply from the policy server at {self.endpoint} within {timeout_s:g} s") from None

    def _call(self, msg: messages.Message, timeout_s: float | None = None) -> messages.Message:
        return self._wait(self._send(msg), self.timeout_s if timeout_s is None else timeout_s)


def _spec_json(info: Mapping[str, Any]) -> dict[str, Any]:
    """A minimal ``policy.json`` with the served inputs, for the shared validation code."""
    return {
        "format": "robostack-policy",
        "format_version": 1,
        "fps": info["fps"],
        "observation_horizon": info["observation_horizon"],
        "inputs": info["inputs"],
        "action": {"dim": info["action_dim"], "horizon": info["action_horizon"]},
        "sampler": {"type": "flow_euler", "steps": 1},
        "graphs": {"encoder": {"file": "encoder.onnx"}, "step": {"file": "step.onnx"}},
        **({"tokenizer": {"file": "tokenizer.json"}} if any(i["kind"] == "text" for i in info["inputs"]) else {}),
    }
