"""An ONNX Runtime session run through IOBinding on buffers that stay put, optionally replayed as
CUDA graphs.

``session.run`` allocates its outputs on every call and, on a GPU, copies every input and output
between host and device through fresh buffers. :class:`BoundSession` allocates one set of input
and output buffers on the session's device per input signature (names, shapes, dtypes) and per
calling thread, then each call copies the inputs into them in place, runs, and copies the outputs
out. Fixed buffer addresses are also what CUDA graphs need: with the CUDA provider's
``enable_cuda_graph`` on, ONNX Runtime captures the kernels of a signature once (after its warm-up
runs) and replays them, one launch instead of one per kernel; each signature gets its own graph
(run option ``gpu_graph_id``). On the CPU provider the same path runs on host buffers, which is
how it is tested without a GPU.

Only numpy and onnxruntime here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

Signature = tuple[tuple[str, tuple[int, ...], str], ...]


def pad_batch(arrays: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """``arrays`` (batch along the first axis) grown to ``rows`` rows by repeating their first
    row; callers drop the extra rows of the outputs."""
    return {name: np.concatenate([a, np.repeat(a[:1], rows - a.shape[0], axis=0)]) for name, a in arrays.items()}


@dataclass
class _Binding:
    binding: Any
    inputs: dict[str, Any]  # OrtValue per input name
    outputs: list[Any]  # OrtValue per output, in the session's output order
    run_options: Any
    runs: int = 0


class BoundSession:
    """``run(output_names, feed)`` like ``InferenceSession.run``, through IOBinding.

    ``device`` is where the buffers live: ``"cpu"`` or ``"cuda"`` (device ``device_id``);
    ``cuda_graphs``: the session was built with the CUDA provider's ``enable_cuda_graph`` and each
    signature's run is captured and replayed. ``pad_rows``: every input's first axis is the batch;
    a batch is padded (repeating its first row) up to the next power of two and the outputs cut
    back, so batch sizes 1..32 need six buffer sets (and graphs), not 32. At most
    ``max_signatures`` signatures keep buffers; a further one raises ``RuntimeError`` naming the
    limit, since dropping a captured graph's buffers under it would corrupt the replay.
    """

    def __init__(
        self, session: Any, device: str = "cpu", device_id: int = 0, cuda_graphs: bool = False, pad_rows: bool = False, max_signatures: int = 64
    ) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if cuda_graphs and device != "cuda":
            raise ValueError("CUDA graphs need the buffers on the GPU (device 'cuda')")
        self.session = session
        self.device = device
        self.device_id = device_id
        self.cuda_graphs = cuda_graphs
        self.pad_rows = pad_rows
        self.max_signatures = max_signatures
        self._output_names = [o.name for o in session.get_outputs()]
        self._bindings: dict[tuple[int, Signature], _Binding] = {}
        self._lock = threading.Lock()

    @property
    def signatures(self) -> int:
        """Buffer sets held (one per input signature and calling thread)."""
        return len(self._bindings)

    def run(self, output_names: list[str] | None, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named (all when None), as host arrays the caller owns."""
        arrays = {name: np.ascontiguousarray(value) for name, value in feed.items()}
        rows = next(iter(arrays.values())).shape[0] if self.pad_rows else 0
        padded = 1 << (rows - 1).bit_length() if rows > 1 else rows
        if padded != rows:
            arrays = pad_batch(arrays, padded)
        signature: Signature = tuple(sorted((name, a.shape, a.dtype.str) for name, a in arrays.items()))
        # Workers may run the same graph at once: each thread gets its own buffers.
        key = (threading.get_ident(), signature)
        bound = self._bindings.get(key)
        if bound is None:
            bound = self._bind(key, arrays)
        else:
            for name, array in arrays.items():
                bound.inputs[name].update_inplace(array)
        self.session.run_with_iobinding(bound.binding, bound.run_options)
        bound.runs += 1
        if bound.runs == 1:
            # ONNX Runtime allocated the outputs on the first run; keep writing into those.
            bound.outputs = bound.binding.get_outputs()
            for name, value in zip(self._output_names, bound.outputs):
                bound.binding.bind_ortvalue_output(name, value)
        wanted = self._output_names if output_names is None else output_names
        # On the CPU, OrtValue.numpy() is a view of the buffer the next run overwrites: copy.
        out = [np.array(bound.outputs[self._output_names.index(name)].numpy()) for name in wanted]
        return [o[:rows] for o in out] if padded != rows else out

    def _bind(self, key: tuple[int, Signature], arrays: Mapping[str, np.ndarray]) -> _Binding:
        with self._lock:  # rare (once per signature and thread), and graph ids must stay unique
            if len(self._bindings) >= self.max_signatures:
                raise RuntimeError(
                    f"{len(self._bindings)} input signatures already hold bound buffers (max_signatures {self.max_signatures}); "
                    "serve with fewer batch sizes (max_batch) or workers"
                )
            bound = self._new_binding(len(self._bindings), arrays)
            self._bindings[key] = bound
        return bound

    def _new_binding(self, graph_id: int, arrays: Mapping[str, np.ndarray]) -> _Binding:
        import onnxruntime as ort

        binding = self.session.io_binding()
        inputs = {}
        for name, array in arrays.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
            inputs[name] = value
        for name in self._output_names:
            binding.bind_output(name, self.device, self.device_id)
        run_options = ort.RunOptions()
        if self.cuda_graphs:
            run_options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return _Binding(binding, inputs, [], run_options)
