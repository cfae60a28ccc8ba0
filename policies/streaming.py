"""Streaming diffusion (SDP, Høeg et al. 2024) in numpy: a rolling buffer of the next ``H``
actions whose noise level rises chunk by chunk along the horizon.

The horizon is split into ``h`` chunks. At the start of a call, chunk ``i`` is ``N(i+1)/h``
DDIM steps away from clean (``N`` = the sampler's steps), so the last chunk is pure noise. A call
denoises the whole buffer jointly — every element with its own timestep — for ``N/h`` steps;
the first chunk is then clean and is the answer; the buffer moves on by one chunk and pure noise
is appended. A call costs ``N/h`` step-graph calls instead of ``N``.

A buffer belongs to one session (an episode of one robot): the in-process policy keeps one, the
policy server one per client session. It restarts at episode start, on request (an alarm, a
reconnect), when the number of samples changes and when a call is not one chunk period after
the previous one. A restart samples the whole horizon with plain DDIM (the model is trained on
constant noise levels too), returns its first chunk and noises the rest back onto the schedule,
so the first call of an episode costs ``N`` steps.

Only numpy here (the in-process policy and the server share it).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

from robostack.policies.sampling import ddim_timesteps, ddim_update_alphas

StepFn = Callable[[dict[str, np.ndarray]], np.ndarray]
"""The step graph: ``{"sample", "timestep" (B, H), conditioning...}`` -> epsilon ``(B, H, A)``."""


@dataclass(frozen=True)
class StreamingSchedule:
    """Noise levels of the rolling buffer. A *level* ``ℓ`` is ``ℓ + 1`` DDIM steps from clean
    (``-1``: clean); its timestep is ``ℓ · ⌊train_timesteps / steps⌋``, the DDIM grid."""

    horizon: int
    chunks: int
    steps: int
    train_timesteps: int

    def __post_init__(self) -> None:
        if self.chunks < 1 or self.horizon % self.chunks:
            raise ValueError(f"streaming: the horizon {self.horizon} does not split into {self.chunks} chunks")
        if self.steps % self.chunks:
            raise ValueError(f"streaming: {self.steps} steps do not split into {self.chunks} chunks (steps per call = steps / chunks)")
        ddim_timesteps(self.train_timesteps, self.steps)  # checks 1 <= steps <= train_timesteps

    @property
    def chunk_size(self) -> int:
        """Actions per chunk: what one call returns."""
        return self.horizon // self.chunks

    @property
    def steps_per_call(self) -> int:
        return self.steps // self.chunks

    @property
    def stride(self) -> int:
        return self.train_timesteps // self.steps

    def start_levels(self) -> np.ndarray:
        """``(H,)`` level of each element at the start of a call: chunk ``i`` at ``N(i+1)/h − 1``."""
        chunk = np.arange(self.horizon) // self.chunk_size
        return (self.steps * (chunk + 1)) // self.chunks - 1

    def timesteps(self, levels: np.ndarray) -> np.ndarray:
        """Step-graph timesteps (float32) of levels ``>= 0``."""
        return (np.asarray(levels) * self.stride).astype(np.float32)


@dataclass
class StreamState:
    """One session's rolling buffer (normalized actions at the schedule's start levels)."""

    buffer: np.ndarray | None = None
    """``(B, H, A)``, None before the first call and after a restart."""
    levels: np.ndarray | None = None
    """``(B, H)`` level of every element (between calls: the schedule's start levels)."""
    stamp_ns: int | None = None
    """Observation stamp of the last call; the next one continues it one chunk period later."""
    calls: int = 0
    """Calls since the buffer last started."""
    restarts: int = 0
    """Restarts other than the first start (reset, gap, num_samples)."""
    restarted: str | None = None
    """Why the latest call restarted the buffer (None: it continued)."""
    steps: int = 0
    """Step-graph calls the latest call ran."""

    def clear(self) -> None:
        self.buffer = self.levels = self.stamp_ns = None
        self.calls = 0

    def info(self) -> dict[str, Any]:
        """What the latest call did, for reply meta."""
        return {"call": self.calls, "restarted": self.restarted, "steps": self.steps}


class StreamingSampler:
    """Denoises rolling buffers with a ``streaming_ddim`` sampler (see the module docstring).

    ``sampler`` is the package's :class:`~robostack.policies.package.SamplerSpec` (``chunks``,
    ``train_timesteps``, ``alphas_cumprod``, ``clip_sample``); ``steps`` overrides its steps.
    """

    def __init__(self, sampler: Any, horizon: int, action_dim: int, steps: int | None = None) -> None:
        if sampler.chunks is None or sampler.alphas_cumprod is None or sampler.train_timesteps is None:
            raise ValueError(f"a streaming sampler needs a 'streaming_ddim' sampler spec, got {sampler.type!r}")
        self.schedule = StreamingSchedule(horizon, int(sampler.chunks), int(steps or sampler.steps), int(sampler.train_timesteps))
        self.action_dim = action_dim
        self._acp = np.asarray(sampler.alphas_cumprod, dtype=np.float64)
        self._clip = sampler.clip_sample

    # -- one session's bookkeeping -------------------------------------------------------------
    def prepare(self, state: StreamState, stamp_ns: int, dt_ns: int, num_samples: int = 1, reset: bool = False) -> str | None:
        """Before a call for the observation at ``stamp_ns``: why the buffer restarts (and clear
        it), or None when it continues — the call is one chunk period (± dt/2) after the last."""
        if state.buffer is None:
            reason: str | None = "start"
        elif reset:
            reason = "reset"
        elif state.buffer.shape[0] != num_samples:
            reason = "num_samples"
        elif state.stamp_ns is None or abs(stamp_ns - (state.stamp_ns + self.schedule.chunk_size * dt_ns)) > dt_ns // 2:
            reason = "gap"
        else:
            reason = None
        if reason is not None:
            if reason != "start":
                state.restarts += 1
            state.clear()
        state.stamp_ns = int(stamp_ns)
        state.restarted = reason
        return reason

    # -- sampling ------------------------------------------------------------------------------
    def denoise(
        self, step: StepFn, x: np.ndarray, levels: np.ndarray, cond: Mapping[str, np.ndarray], n_steps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run row ``b`` of ``x`` ``(B, H, A)`` ``n_steps[b]`` DDIM steps down from its per-element
        ``levels`` ``(B, H)``; rows due the same step share one step-graph call. Returns the new
        sample and levels."""
        x = np.array(x, dtype=np.float32)
        levels = np.array(levels, dtype=np.int64)
        n_steps = np.asarray(n_steps)
        sched = self.schedule
        for i in range(int(n_steps.max(initial=0))):
            rows = np.flatnonzero(n_steps > i)
            whole = rows.size == x.shape[0]
            sub, lv = (x, levels) if whole else (x[rows], levels[rows])
            if lv.min() < 0:
                raise ValueError("streaming: asked to denoise an element that is already clean")
            feed = {"sample": sub, "timestep": sched.timesteps(lv), **{name: v if whole else v[rows] for name, v in cond.items()}}
            eps = step(feed)
            prev = lv - 1
            a_t = self._acp[lv * sched.stride].astype(np.float32)[..., None]
            a_prev = np.where(prev >= 0, self._acp[np.maximum(prev, 0) * sched.stride], 1.0).astype(np.float32)[..., None]
            new = ddim_update_alphas(sub, eps, a_t, a_prev, self._clip)
            if whole:
                x, levels = new, prev
            else:
                x[rows], levels[rows] = new, prev
        return x, levels

    def sample(self, step: StepFn, noise: np.ndarray, cond: Mapping[str, np.ndarray]) -> np.ndarray:
        """Whole chunks by plain DDIM from ``noise`` ``(B, H, A)`` (every element at the same level,
        the timestep broadcast over the horizon); normalized ``(B, H, A)``."""
        noise = np.asarray(noise, dtype=np.float32)
        b, h = noise.shape[:2]
        n = self.schedule.steps
        x, _ = self.denoise(step, noise, np.full((b, h), n - 1), cond, np.full(b, n))
        return x

    def advance(
        self, step: StepFn, states: Sequence[StreamState], cond: Mapping[str, np.ndarray], rngs: Sequence[np.random.Generator], counts: Sequence[int]
    ) -> list[np.ndarray]:
        """One call for each session of a batch: ``states[i]`` with ``counts[i]`` samples (rows of
        ``cond``, in order) and noise from ``rngs[i]``. Returns the clean first chunks, normalized
        ``(counts[i], H/h, A)``, and moves every buffer on by one chunk.

        Noise drawn from ``rngs[i]``, in this order: a restarting session its initial buffer
        ``(B, H, A)`` and, after sampling, the noise that puts chunks ``1…h−1`` back on the
        schedule ``(B, H − H/h, A)``; every session then the appended chunk ``(B, H/h, A)``."""
        sched = self.schedule
        H, A, c = sched.horizon, self.action_dim, sched.chunk_size
        start = sched.start_levels()
        xs, levels, n_steps = [], [], []
        for state, rng, b in zip(states, rngs, counts):
            fresh = state.buffer is None
            if fresh:
                xs.append(rng.standard_normal((b, H, A)).astype(np.float32))
                levels.append(np.full((b, H), sched.steps - 1))
            else:
                assert state.buffer is not None and state.levels is not None and state.buffer.shape[0] == b
                xs.append(state.buffer)
                levels.append(state.levels)
            n_steps.append(np.full(b, sched.steps if fresh else sched.steps_per_call))
        x, lv = self.denoise(step, np.concatenate(xs), np.concatenate(levels), cond, np.concatenate(n_steps))
        out = []
        row = 0
        for state, rng, b in zip(states, rngs, counts):
            buf, buf_levels = x[row : row + b], lv[row : row + b]
            fresh = state.buffer is None
            steps_run = sched.steps if fresh else sched.steps_per_call
            row += b
            assert np.all(buf_levels[:, :c] == -1), "the first chunk must be clean after a call"
            rest = buf[:, c:]
            if fresh:  # clean everywhere: noise chunks 1…h−1 back onto the schedule
                rest = self._noised(rest, start[: H - c], rng.standard_normal(rest.shape).astype(np.float32))
            state.buffer = np.concatenate([rest, rng.standard_normal((b, c, A)).astype(np.float32)], axis=1)
            state.levels = np.broadcast_to(start, (b, H)).copy()
            state.calls += 1
            state.steps = steps_run
            out.append(buf[:, :c])
        return out

    def _noised(self, clean: np.ndarray, levels: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """``clean`` at ``levels`` (per horizon index): ``√ᾱ·x + √(1−ᾱ)·ε``, the forward process."""
        a = self._acp[levels * self.schedule.stride].astype(np.float32)[None, :, None]
        return (np.sqrt(a) * clean + np.sqrt(np.float32(1.0) - a) * noise).astype(np.float32)


class StreamSessions:
    """Rolling buffers by session key; beyond ``capacity`` the least recently used is dropped.
    Safe to share between the server's compute threads."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._states: collections.OrderedDict[Hashable, StreamState] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> StreamState:
        with self._lock:
            state = self._states.pop(key, None) or StreamState()
            self._states[key] = state
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
            return state

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
