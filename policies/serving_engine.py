"""ONNX Runtime sessions of one policy package, set up for serving: execution-provider selection
with a report of where each graph really runs, warm-up, and batched sampling of many requests
(each with its own number of samples and noise) in one encoder call and one step call per
denoising step when the graphs have a dynamic batch axis, in pieces of the graph's fixed batch
otherwise.

On a GPU the sessions run through IOBinding on buffers that stay put (:mod:`.bound_session`), and
CUDA graphs can replay each batch size's kernels. GPU providers (CUDA, TensorRT) are configured
here but untested on this project's CI machine; the IOBinding path is tested on the CPU provider.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from robostack.policies import sampling
from robostack.policies.bound_session import BoundSession, pad_batch
from robostack.policies.package import PolicyPackage, PolicyPackageError, load_package
from robostack.policies.preprocessing import encoder_feed
from robostack.policies.streaming import StreamingSampler, StreamState

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class EngineConfig:
    """How the sessions are built. ``providers``: preference order of ``cpu``/``cuda``/``tensorrt``;
    ones this onnxruntime build lacks are skipped (and reported). ``fp16``: TensorRT may use
    half precision. ``steps``: sampler steps (default: the package's). ``spin``: onnxruntime's
    worker threads busy-wait between calls (lower latency on dedicated cores; turn it off on a
    host whose cores are shared with other work). ``io_binding``: run the graphs through IOBinding
    on fixed buffers (None: when a graph runs on a GPU provider). ``cuda_graphs``: capture and
    replay each batch size's kernels (CUDA provider; implies ``io_binding``). ``fused``: sample
    with the package's fused ``sampler`` graph (the whole loop in one call; requests with a
    frozen prefix still take the step loop)."""

    providers: tuple[str, ...] = ("cpu",)
    threads: int | None = None
    steps: int | None = None
    fp16: bool = False
    device_id: int = 0
    trt_cache_dir: str | None = None
    warmup_batches: tuple[int, ...] = (1,)
    spin: bool = True
    io_binding: bool | None = None
    cuda_graphs: bool = False
    fused: bool = False


def parse_providers(text: str) -> tuple[str, ...]:
    """``"tensorrt,cuda,cpu"`` -> a checked tuple; raises ``ValueError`` naming an unknown name."""
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if not names:
        raise ValueError("no execution provider given (use cpu, cuda, tensorrt)")
    for name in names:
        if name not in PROVIDERS:
            raise ValueError(f"unknown execution provider {name!r}; use one of {sorted(PROVIDERS)}")
    return names


def provider_list(config: EngineConfig, available: Sequence[str], cache_dir: Path) -> tuple[list[Any], list[str]]:
    """The onnxruntime ``providers`` argument for ``config`` and the requested providers skipped
    because this build lacks them. Raises ``RuntimeError`` if none is available."""
    chosen: list[Any] = []
    skipped: list[str] = []
    for name in config.providers:
        ort_name = PROVIDERS[name]
        if ort_name not in available:
            skipped.append(name)
            continue
        if name == "tensorrt":
            chosen.append(
                (
                    ort_name,
                    {
                        "device_id": config.device_id,
                        "trt_fp16_enable": config.fp16,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache_dir),
                        **({"trt_cuda_graph_enable": True} if config.cuda_graphs else {}),
                    },
                )
            )
        elif name == "cuda":
            options = {"device_id": config.device_id, "cudnn_conv_algo_search": "HEURISTIC"}
            if config.cuda_graphs:
                options["enable_cuda_graph"] = "1"
            chosen.append((ort_name, options))
        else:
            chosen.append(ort_name)
    if not chosen:
        raise RuntimeError(f"none of the requested execution providers {list(config.providers)} is available in this onnxruntime build (it has {list(available)})")
    return chosen, skipped


@dataclass
class Sampled:
    """The result for one request of a batch."""

    actions: np.ndarray  # (B, H, A) raw action units; streaming: (B, H/h, A)
    embedding: np.ndarray | None
    stream: dict[str, Any] | None = None  # streaming: what the session's call did


@dataclass
class BatchTiming:
    encode_ms: float = 0.0
    sample_ms: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)


def _fixed_batch(session: Any, input_name: str) -> int | None:
    for arg in session.get_inputs():
        if arg.name == input_name:
            first = arg.shape[0] if arg.shape else None
            return first if isinstance(first, int) and first > 0 else None
    return None


class ServingEngine:
    """The encoder and step sessions of one package and the numpy sampling loop around them."""

    def __init__(self, package: str | Path | PolicyPackage, config: EngineConfig | None = None) -> None:
        import onnxruntime as ort

        self.config = config or EngineConfig()
        self.package = package if isinstance(package, PolicyPackage) else load_package(package)
        spec = self.spec = self.package.spec
        self.steps = self.config.steps or spec.sampler.steps
        self._timesteps = spec.sampler.times(self.steps)
        self.stream = StreamingSampler(spec.sampler, spec.action_horizon, spec.action_dim, self.steps) if spec.sampler.streaming else None
        cache_dir = Path(self.config.trt_cache_dir or self.package.root / ".trt_cache")
        providers, self.skipped_providers = provider_list(self.config, ort.get_available_providers(), cache_dir)
        if any(isinstance(p, tuple) and p[0] == PROVIDERS["tensorrt"] for p in providers):
            os.makedirs(cache_dir, exist_ok=True)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.config.threads:
            options.intra_op_num_threads = self.config.threads
        if not self.config.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graphs = ["encoder", "step"]
        if self.config.fused:
            if "sampler" not in spec.graphs:
                raise PolicyPackageError(f"{self.package.root}: fused sampling asked for, but the package has no 'sampler' graph (export with --fused-sampler)")
            if self.steps != spec.sampler.steps or self.stream is not None:
                raise PolicyPackageError(f"{self.package.root}: the fused sampler graph runs {spec.sampler.steps} whole-chunk steps; it cannot serve "
                                         + ("a streaming package" if self.stream is not None else f"{self.steps} steps"))
            graphs.append("sampler")
        self.sessions = {}
        for name in graphs:
            path = self.package.graph_path(name)
            try:
                self.sessions[name] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise PolicyPackageError(f"{path.name}: onnxruntime cannot load this graph ({exc})") from None
        self.encoder, self.step = self.sessions["encoder"], self.sessions["step"]
        self._encoder_outputs = [o.name for o in self.encoder.get_outputs()]
        self._cond_names = [i.name for i in self.step.get_inputs() if i.name not in ("sample", "timestep")]
        first_input = spec.inputs[0].name
        self.fixed_batch = {"encoder": _fixed_batch(self.encoder, first_input), "step": _fixed_batch(self.step, "sample")}
        if "sampler" in self.sessions:
            self.fixed_batch["sampler"] = _fixed_batch(self.sessions["sampler"], "noise")
        self._runners = {name: self._runner(name, session) for name, session in self.sessions.items()}
        self.dt_ns = int(round(1e9 / spec.fps))

    def _runner(self, graph: str, session: Any) -> Any:
        """What runs ``graph``: the session itself, or a :class:`BoundSession` around it."""
        on_gpu = session.get_providers()[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])
        if self.config.cuda_graphs and not on_gpu:
            raise PolicyPackageError(f"{graph} graph: CUDA graphs asked for, but it runs on {session.get_providers()[0]}")
        use_binding = self.config.cuda_graphs or (on_gpu if self.config.io_binding is None else self.config.io_binding)
        if not use_binding:
            return session
        # Padded batches: a handful of buffer sets and captured graphs cover every batch size.
        pad = self.fixed_batch[graph] is None  # a fixed batch axis is already one size
        return BoundSession(session, "cuda" if on_gpu else "cpu", self.config.device_id, cuda_graphs=self.config.cuda_graphs, pad_rows=pad)

    # -- reports -------------------------------------------------------------------------------
    @property
    def batching(self) -> str:
        """``dynamic`` when both graphs take any batch, else ``sequential`` (pieces of the fixed batch)."""
        return "dynamic" if all(v is None for v in self.fixed_batch.values()) else "sequential"

    def providers_report(self) -> dict[str, Any]:
        """Which provider each graph actually runs on (``session.get_providers()``)."""
        return {
            "requested": list(self.config.providers),
            "skipped_unavailable": list(self.skipped_providers),
            "graphs": {name: list(s.get_providers()) for name, s in self.sessions.items()},
            "io_binding": {name: isinstance(r, BoundSession) for name, r in self._runners.items()},
            "cuda_graphs": self.config.cuda_graphs,
            "fp16": self.config.fp16,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "root": str(self.package.root),
            "name": self.spec.name,
            "steps": self.steps,
            "fused": "sampler" in self.sessions,
            "batching": self.batching,
            "fixed_batch": {k: v for k, v in self.fixed_batch.items()},
            **({"streaming": {"chunks": self.stream.schedule.chunks, "steps_per_call": self.stream.schedule.steps_per_call}} if self.stream else {}),
            "providers": self.providers_report(),
        }

    # -- running -------------------------------------------------------------------------------
    def feed(self, history: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Encoder inputs (batch 1) for one observation history; ``ObservationError`` if unusable."""
        return encoder_feed(self.spec, self.package.tokenizer, history)

    def _run(self, graph: str, outputs: list[str] | None, feed: dict[str, np.ndarray], timing: BatchTiming) -> list[np.ndarray]:
        """One logical call over batch rows, split into pieces of the graph's fixed batch if any."""
        session = self._runners[graph]
        rows = next(iter(feed.values())).shape[0]
        fixed = self.fixed_batch[graph]
        if fixed is None or fixed == rows:
            timing.calls[graph] = timing.calls.get(graph, 0) + 1
            return session.run(outputs, feed)
        pieces: list[list[np.ndarray]] = []
        for lo in range(0, rows, fixed):
            part = {k: v[lo : lo + fixed] for k, v in feed.items()}
            short = fixed - next(iter(part.values())).shape[0]
            if short:  # the last piece, padded; its extra rows are dropped
                part = pad_batch(part, fixed)
            out = session.run(outputs, part)
            pieces.append([o[: fixed - short] for o in out])
            timing.calls[graph] = timing.calls.get(graph, 0) + 1
        return [np.concatenate(parts) for parts in zip(*pieces)]

    def sample(
        self,
        feeds: Sequence[Mapping[str, np.ndarray]],
        noises: Sequence[np.ndarray],
        prefixes: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Sampled], BatchTiming]:
        """Sample for many requests at once: ``feeds[i]`` (batch-1 encoder inputs) with
        ``noises[i]`` ``(B_i, H, A)`` and optional frozen prefix ``prefixes[i]`` (raw ``(d_i, A)``,
        checked; each request keeps its own mask). One encoder call over all requests, then one
        step call per denoising step over all ``sum(B_i)`` samples; with ``fused`` and no prefix in
        the batch, one call of the fused graph instead."""
        counts = np.array([n.shape[0] for n in noises])
        if "sampler" in self.sessions and (prefixes is None or all(p is None for p in prefixes)):
            return self._sample_fused(feeds, noises, counts)
        timing = BatchTiming()
        t0 = time.perf_counter()
        encoded = self._encode_batch(feeds, timing)
        t1 = time.perf_counter()
        cond = {name: np.repeat(encoded[name], counts, axis=0) for name in self._cond_names}
        guide = None
        if prefixes is not None:
            guide = sampling.prefix_guide(prefixes, counts, self.spec.action_horizon, self.spec.action_normalization.apply)
        if self.stream is not None:  # whole chunks by plain DDIM (sessions go through sample_stream)
            if guide is not None:
                raise ValueError("a streaming package takes no frozen prefix")
            x = self.stream.sample(self._step_fn(timing), np.concatenate(noises), cond)
        else:
            x = sampling.run_sampler(self._step_fn(timing), np.concatenate(noises), cond, self._timesteps, self.spec.sampler, self.steps, guide)
        actions = self.spec.action_normalization.invert(x)
        if guide is not None:
            actions = guide.pin(actions)
        t2 = time.perf_counter()
        timing.encode_ms, timing.sample_ms = 1e3 * (t1 - t0), 1e3 * (t2 - t1)
        return self._split(actions, counts, encoded), timing

    def _sample_fused(self, feeds: Sequence[Mapping[str, np.ndarray]], noises: Sequence[np.ndarray], counts: np.ndarray) -> tuple[list[Sampled], BatchTiming]:
        """:meth:`sample` through the fused graph: one call over all samples (each request's
        inputs repeated for its samples); the encoder runs too only for a declared embedding."""
        timing = BatchTiming()
        t0 = time.perf_counter()
        encoded: dict[str, np.ndarray] = {}
        if self.spec.embedding_output is not None:
            encoded = self._encode_batch(feeds, timing)
        t1 = time.perf_counter()
        batched = self._batched(feeds)
        tiled = {k: np.repeat(v, counts, axis=0) for k, v in batched.items()}
        normalized = self._run("sampler", ["actions"], {**tiled, "noise": np.concatenate(noises).astype(np.float32, copy=False)}, timing)[0]
        actions = self.spec.action_normalization.invert(normalized)
        timing.encode_ms, timing.sample_ms = 1e3 * (t1 - t0), 1e3 * (time.perf_counter() - t1)
        return self._split(actions, counts, encoded), timing

    def _split(self, actions: np.ndarray, counts: np.ndarray, encoded: Mapping[str, np.ndarray]) -> list[Sampled]:
        """Each request's ``counts[i]`` rows of the batch's actions, with its embedding."""
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [Sampled(np.asarray(actions[bounds[i] : bounds[i + 1]], dtype=np.float32), self._embedding(encoded, i)) for i in range(len(counts))]

    def sample_stream(
        self,
        feeds: Sequence[Mapping[str, np.ndarray]],
        states: Sequence[StreamState],
        rngs: Sequence[np.random.Generator],
        counts: Sequence[int],
    ) -> tuple[list[Sampled], BatchTiming]:
        """Streaming packages: one call of each request's session buffer ``states[i]`` (already
        through :meth:`StreamingSampler.prepare`) with ``counts[i]`` samples and noise from
        ``rngs[i]``; one encoder call over all requests and one step call per denoising step over
        the rows due it. ``Sampled.actions`` is the clean first chunk ``(B_i, H/h, A)``."""
        if self.stream is None:
            raise ValueError(f"{self.package.root}: not a streaming-diffusion package")
        timing = BatchTiming()
        t0 = time.perf_counter()
        encoded = self._encode_batch(feeds, timing)
        t1 = time.perf_counter()
        cond = {name: np.repeat(encoded[name], counts, axis=0) for name in self._cond_names}
        chunks = self.stream.advance(self._step_fn(timing), states, cond, rngs, counts)
        results = [
            Sampled(self.spec.action_normalization.invert(c).astype(np.float32), self._embedding(encoded, i), state.info())
            for i, (c, state) in enumerate(zip(chunks, states))
        ]
        timing.encode_ms, timing.sample_ms = 1e3 * (t1 - t0), 1e3 * (time.perf_counter() - t1)
        return results, timing

    def _encode_batch(self, feeds: Sequence[Mapping[str, np.ndarray]], timing: BatchTiming) -> dict[str, np.ndarray]:
        """One encoder call over the batch-1 feeds of many requests; outputs by name."""
        return dict(zip(self._encoder_outputs, self._run("encoder", None, self._batched(feeds), timing)))

    @staticmethod
    def _batched(feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The batch-1 feeds of many requests stacked along the batch axis."""
        return {k: np.concatenate([f[k] for f in feeds]) if len(feeds) > 1 else np.asarray(feeds[0][k]) for k in feeds[0]}

    def _step_fn(self, timing: BatchTiming) -> Any:
        out_name = self.spec.sampler.prediction
        return lambda feed: self._run("step", [out_name], feed, timing)[0]

    def _embedding(self, encoded: Mapping[str, np.ndarray], request: int) -> np.ndarray | None:
        name = self.spec.embedding_output
        return encoded[name][request] if name is not None else None

    def warm_up(self) -> dict[str, float]:
        """Run the whole pipeline on a neutral observation at each warm-up batch size (first calls
        allocate, and TensorRT builds its engines, so they must not land on a client). Returns
        the time of each warm-up in ms."""
        obs: dict[str, Any] = {}
        for inp in self.spec.inputs:
            if inp.kind == "image":
                obs[inp.name] = np.zeros(inp.shape, np.uint8)
            elif inp.kind == "vector":
                obs[inp.name] = np.zeros(inp.shape, np.float32)
            else:
                obs[inp.name] = np.array("")
        feed = self.feed([obs] * self.spec.observation_horizon)
        times = {}
        H, A = self.spec.action_horizon, self.spec.action_dim
        for batch in self.config.warmup_batches:
            t0 = time.perf_counter()
            self.sample([feed] * batch, [np.zeros((1, H, A), np.float32)] * batch)
            times[f"batch_{batch}"] = round(1e3 * (time.perf_counter() - t0), 3)
        return times
