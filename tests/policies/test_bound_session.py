"""IOBinding on fixed buffers (``policies/bound_session.py``) and the serving engine's use of it:
on the CPU provider the bound path must give exactly what ``session.run`` gives, call after call,
thread beside thread; CUDA graphs are refused where the graphs do not run on a GPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from robostack.policies.bound_session import BoundSession  # noqa: E402
from robostack.policies.package import PolicyPackageError  # noqa: E402
from robostack.policies.pretrained import PICK_PLACE_DIFFUSION  # noqa: E402
from robostack.policies.serving_engine import EngineConfig, ServingEngine, provider_list  # noqa: E402

STEP = PICK_PLACE_DIFFUSION / "step.onnx"


@pytest.fixture(scope="module")
def step_session():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(STEP), options, providers=["CPUExecutionProvider"])


def _step_feed(session, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cond = next(i for i in session.get_inputs() if i.name not in ("sample", "timestep"))
    return {
        "sample": rng.standard_normal((batch, 16, 8)).astype(np.float32),
        "timestep": rng.uniform(0, 99, batch).astype(np.float32),
        cond.name: rng.standard_normal((batch, cond.shape[1])).astype(np.float32),
    }


def test_bound_runs_equal_session_run_call_after_call_and_keep_one_buffer_set_per_shape(step_session):
    bound = BoundSession(step_session)
    kept = []
    for seed, batch in enumerate([1, 3, 1, 3, 8, 1]):
        feed = _step_feed(step_session, batch, seed)
        out = bound.run(None, feed)
        np.testing.assert_array_equal(out[0], step_session.run(None, feed)[0])
        kept.append((out[0], step_session.run(None, feed)[0]))
    # Outputs are the caller's: a later run does not write into an earlier result.
    for got, want in kept:
        np.testing.assert_array_equal(got, want)
    assert bound.signatures == 3  # batch sizes 1, 3, 8


def test_threads_running_one_shape_at_once_each_get_their_own_results(step_session):
    bound = BoundSession(step_session)
    barrier = threading.Barrier(3)
    wrong: list[int] = []

    def worker(k: int) -> None:
        for i in range(20):
            feed = _step_feed(step_session, 4, 1000 * k + i)
            barrier.wait()
            if not np.array_equal(bound.run(["epsilon"], feed)[0], step_session.run(["epsilon"], feed)[0]):
                wrong.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and bound.signatures == 3


def test_padded_rows_give_the_same_results_with_one_buffer_set_per_power_of_two(step_session):
    bound = BoundSession(step_session, pad_rows=True)
    for seed, batch in enumerate([1, 3, 4, 5, 7, 8, 2]):
        feed = _step_feed(step_session, batch, seed)
        out = bound.run(["epsilon"], feed)[0]
        assert out.shape == (batch, 16, 8)
        np.testing.assert_allclose(out, step_session.run(["epsilon"], feed)[0], rtol=1e-5, atol=1e-6)
    assert bound.signatures == 4  # rows padded to 1, 2, 4, 8


def test_more_signatures_than_the_limit_is_a_named_error_and_cuda_graphs_need_the_gpu(step_session):
    bound = BoundSession(step_session, max_signatures=2)
    bound.run(None, _step_feed(step_session, 1, 0))
    bound.run(None, _step_feed(step_session, 2, 0))
    with pytest.raises(RuntimeError, match="max_signatures 2"):
        bound.run(None, _step_feed(step_session, 3, 0))
    with pytest.raises(ValueError, match="CUDA graphs need the buffers on the GPU"):
        BoundSession(step_session, "cpu", cuda_graphs=True)


def test_engine_with_io_binding_samples_the_same_chunks_and_reports_it():
    plain = ServingEngine(PICK_PLACE_DIFFUSION, EngineConfig(threads=1))
    bound = ServingEngine(PICK_PLACE_DIFFUSION, EngineConfig(threads=1, io_binding=True))
    assert plain.providers_report()["io_binding"] == {"encoder": False, "step": False}  # the CPU default
    assert bound.providers_report()["io_binding"] == {"encoder": True, "step": True}
    rng = np.random.default_rng(3)
    history = [{
        "image/front": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        "image/wrist": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        "state": rng.uniform(-1, 1, 8).astype(np.float32),
        "instruction": np.array("put the red cube in the bin"),
    }]
    feed = plain.feed(history)
    noises = [rng.standard_normal((n, 16, 8)).astype(np.float32) for n in (1, 4)]
    for _ in range(2):  # the second call reuses the buffers
        want, _ = plain.sample([feed, feed], noises)
        got, _ = bound.sample([feed, feed], noises)
        for w, g in zip(want, got):
            np.testing.assert_allclose(g.actions, w.actions, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(g.embedding, w.embedding, rtol=1e-6)


def test_cuda_graphs_are_refused_by_name_when_a_graph_runs_on_the_cpu_and_set_for_a_gpu_provider(tmp_path):
    with pytest.raises(PolicyPackageError, match="CUDA graphs asked for, but it runs on CPUExecutionProvider"):
        ServingEngine(PICK_PLACE_DIFFUSION, EngineConfig(cuda_graphs=True))
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen, _ = provider_list(EngineConfig(providers=("tensorrt", "cuda", "cpu"), cuda_graphs=True), gpu_build, tmp_path)
    assert chosen[0][1]["trt_cuda_graph_enable"] is True and chosen[1][1]["enable_cuda_graph"] == "1"
    chosen, _ = provider_list(EngineConfig(providers=("cuda", "cpu")), gpu_build, tmp_path)
    assert "enable_cuda_graph" not in chosen[0][1]
