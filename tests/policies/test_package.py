"""The policy package format: a package written by another tool (graphs built with onnx.helper,
no torch) loads and runs; broken packages fail with errors that name the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from robostack.policies import sampling  # noqa: E402
from robostack.policies.onnx_policy import OnnxPolicy  # noqa: E402
from robostack.policies.package import PolicyPackageError, load_package  # noqa: E402

H, A, T, D = 4, 2, 2, 3
TRAIN_STEPS = 20


def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_foreign_package(root: Path, image_hw=(8, 8), step_h: int = H) -> dict:
    """A package as another exporter would write it from docs/policy-package.md:
    cond = mean_t(state) + mean(image); epsilon = 0.1·sample + 0.01·sum(cond) + 0.001·timestep."""
    root.mkdir(parents=True, exist_ok=True)
    h, w = image_hw
    axes = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
    enc = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["state", "ax1"], ["state_mean"], keepdims=0),
            helper.make_node("ReduceMean", ["image/front", "ax1234"], ["image_mean_flat"], keepdims=0),
            helper.make_node("Unsqueeze", ["image_mean_flat", "ax1"], ["image_mean"]),
            helper.make_node("Add", ["state_mean", "image_mean"], ["cond"]),
        ],
        "encoder",
        [
            helper.make_tensor_value_info("image/front", TensorProto.FLOAT, ["batch", T, 3, h, w]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", T, D]),
        ],
        [helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", D])],
        initializer=[axes("ax1", [1]), axes("ax1234", [1, 2, 3, 4])],
    )
    _save(enc, root / "encoder.onnx")
    c = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, [], [v])  # noqa: E731
    step = helper.make_graph(
        [
            helper.make_node("Mul", ["sample", "k_sample"], ["a"]),
            helper.make_node("ReduceSum", ["cond", "ax1"], ["cond_sum"], keepdims=1),
            helper.make_node("Mul", ["cond_sum", "k_cond"], ["b2"]),
            helper.make_node("Unsqueeze", ["b2", "ax2"], ["b"]),
            helper.make_node("Unsqueeze", ["timestep", "ax12"], ["t3"]),
            helper.make_node("Mul", ["t3", "k_time"], ["c"]),
            helper.make_node("Add", ["a", "b"], ["ab"]),
            helper.make_node("Add", ["ab", "c"], ["epsilon"]),
        ],
        "step",
        [
            helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", step_h, A]),
            helper.make_tensor_value_info("timestep", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["batch", D]),
        ],
        [helper.make_tensor_value_info("epsilon", TensorProto.FLOAT, ["batch", step_h, A])],
        initializer=[c("k_sample", 0.1), c("k_cond", 0.01), c("k_time", 0.001), axes("ax1", [1]), axes("ax2", [2]), axes("ax12", [1, 2])],
    )
    _save(step, root / "step.onnx")
    manifest = {
        "format": "robostack-policy",
        "format_version": 1,
        "name": "foreign",
        "policy_type": "diffusion",
        "fps": 10,
        "observation_horizon": T,
        "inputs": [
            {"name": "image/front", "kind": "image", "dtype": "uint8", "shape": [h, w, 3],
             "normalization": {"type": "image", "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}},
            {"name": "state", "kind": "vector", "dtype": "float32", "shape": [D],
             "normalization": {"type": "mean_std", "mean": [0.0, 1.0, 2.0], "std": [1.0, 2.0, 4.0]}},
        ],
        "action": {"dim": A, "horizon": H, "names": ["x", "y"], "normalization": {"type": "min_max", "min": [-1, 0], "max": [1, 4]}},
        "sampler": {"type": "ddim", "steps": 5, "train_timesteps": TRAIN_STEPS,
                    "alphas_cumprod": sampling.squaredcos_alphas_cumprod(TRAIN_STEPS).tolist(), "prediction": "epsilon", "clip_sample": 1.0},
        "graphs": {"encoder": {"file": "encoder.onnx"}, "step": {"file": "step.onnx"}},
        "embedding": {"output": "cond", "dim": D},
        "provenance": {"exporter": "hand-written test graphs"},
    }
    (root / "policy.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _reference_chunk(obs_history, noise, manifest) -> np.ndarray:
    """The same policy computed with numpy only."""
    state = np.stack([o["state"] for o in obs_history]).astype(np.float64)
    state_n = (state - np.array([0.0, 1.0, 2.0])) / np.array([1.0, 2.0, 4.0])
    image_n = np.stack([o["image/front"] for o in obs_history]).astype(np.float64) / 255.0 / 0.5 - 1.0
    cond = state_n.mean(axis=0) + image_n.mean()
    acp = np.asarray(manifest["sampler"]["alphas_cumprod"])
    x = noise.astype(np.float64)
    ts = sampling.ddim_timesteps(TRAIN_STEPS, 5)
    for i, t in enumerate(ts):
        eps = 0.1 * x + 0.01 * cond.sum() + 0.001 * t
        a_t = acp[t]
        a_prev = acp[ts[i + 1]] if i + 1 < len(ts) else 1.0
        x0 = np.clip((x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t), -1, 1)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 4.0])
    return x * (hi - lo) / 2 + (hi + lo) / 2


def test_package_from_another_exporter_loads_and_samples_what_numpy_computes(tmp_path):
    manifest = write_foreign_package(tmp_path / "pkg")
    package = load_package(tmp_path / "pkg")
    assert package.spec.embedding_output == "cond"
    policy = OnnxPolicy(package, seed=0)
    rng = np.random.default_rng(5)
    # camera frames at another resolution than declared: resized by the runtime
    history = [{"image/front": np.full((16, 16, 3), v, np.uint8), "state": rng.normal(size=D).astype(np.float32)} for v in (40, 200)]
    noise = rng.standard_normal((3, H, A)).astype(np.float32)
    from robostack.policies.preprocessing import encoder_feed

    chunks = policy.sample_actions(encoder_feed(package.spec, None, history), 3, noise)
    np.testing.assert_allclose(chunks, _reference_chunk(history, noise, manifest), atol=1e-5)
    np.testing.assert_allclose(policy.last_embedding.shape, (D,))
    assert policy.camera_requests() == {"front": (8, 8)}  # no recorded size in provenance: the model's


@pytest.fixture()
def foreign(tmp_path) -> Path:
    write_foreign_package(tmp_path / "pkg")
    return tmp_path / "pkg"


def _edit(root: Path, change) -> None:
    d = json.loads((root / "policy.json").read_text())
    change(d)
    (root / "policy.json").write_text(json.dumps(d))


def test_missing_graph_file_is_named(foreign):
    (foreign / "step.onnx").unlink()
    with pytest.raises(PolicyPackageError, match=r"graphs.step.file: missing graph file 'step.onnx'"):
        load_package(foreign)


def test_missing_policy_json_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyPackageError, match="missing policy.json"):
        load_package(tmp_path / "empty")


def test_unknown_top_level_field_is_rejected(foreign):
    _edit(foreign, lambda d: d.update(horizon=16))
    with pytest.raises(PolicyPackageError, match=r"unknown field\(s\) \['horizon'\]"):
        load_package(foreign)


def test_unknown_nested_field_names_its_place(foreign):
    _edit(foreign, lambda d: d["inputs"][1].update(units="rad"))
    with pytest.raises(PolicyPackageError, match=r"inputs\[1\]: unknown field\(s\) \['units'\]"):
        load_package(foreign)
    write_foreign_package(foreign)
    _edit(foreign, lambda d: d["sampler"].update(eta=0.5))
    with pytest.raises(PolicyPackageError, match=r"sampler: unknown field\(s\) \['eta'\]"):
        load_package(foreign)


def test_action_horizon_that_disagrees_with_the_step_graph_is_a_shape_mismatch(foreign):
    _edit(foreign, lambda d: d["action"].update(horizon=8))
    with pytest.raises(PolicyPackageError, match=r"graph 'step' input 'sample': shape mismatch at axis 1: graph has 4"):
        load_package(foreign)


def test_image_size_that_disagrees_with_the_encoder_is_a_shape_mismatch(foreign):
    _edit(foreign, lambda d: d["inputs"][0].update(shape=[16, 16, 3]))
    with pytest.raises(PolicyPackageError, match=r"graph 'encoder' input 'image/front': shape mismatch at axis 3"):
        load_package(foreign)


def test_observation_horizon_is_checked_against_the_encoder(foreign):
    _edit(foreign, lambda d: d.update(observation_horizon=3))
    with pytest.raises(PolicyPackageError, match=r"encoder' input 'image/front': shape mismatch at axis 1: graph has 2"):
        load_package(foreign)


def test_declared_input_the_encoder_lacks_is_named(foreign):
    _edit(foreign, lambda d: d["inputs"].append({"name": "image/wrist", "kind": "image", "dtype": "uint8", "shape": [8, 8, 3]}))
    with pytest.raises(PolicyPackageError, match=r"graph 'encoder': has no input 'image/wrist'"):
        load_package(foreign)


def test_embedding_output_must_exist(foreign):
    _edit(foreign, lambda d: d.update(embedding={"output": "features", "dim": 3}))
    with pytest.raises(PolicyPackageError, match=r"embedding.output: the encoder has no output 'features'"):
        load_package(foreign)


def test_normalization_size_must_match_the_input(foreign):
    _edit(foreign, lambda d: d["inputs"][1]["normalization"].update(mean=[0.0, 1.0]))
    with pytest.raises(PolicyPackageError, match=r"normalization: has 2 values per field, the input has dim 3"):
        load_package(foreign)


def test_text_input_requires_a_tokenizer(foreign):
    _edit(foreign, lambda d: d["inputs"].append({"name": "instruction", "kind": "text", "dtype": "str", "shape": [], "max_length": 8}))
    with pytest.raises(PolicyPackageError, match="must ship a tokenizer"):
        load_package(foreign)


def test_unknown_sampler_and_wrong_version_are_rejected(foreign):
    _edit(foreign, lambda d: d["sampler"].update(type="dpm"))
    with pytest.raises(PolicyPackageError, match=r"sampler.type: unknown sampler 'dpm'"):
        load_package(foreign)
    write_foreign_package(foreign)
    _edit(foreign, lambda d: d.update(format_version=2))
    with pytest.raises(PolicyPackageError, match="format_version"):
        load_package(foreign)


def test_a_file_that_is_not_onnx_is_reported_by_graph(foreign):
    (foreign / "encoder.onnx").write_bytes(b"not a graph")
    with pytest.raises(PolicyPackageError, match="encoder.onnx: onnxruntime cannot load"):
        load_package(foreign)


def test_graph_paths_must_stay_inside_the_package(foreign):
    _edit(foreign, lambda d: d["graphs"]["step"].update(file="../step.onnx"))
    with pytest.raises(PolicyPackageError, match="relative path inside the package"):
        load_package(foreign)


def test_copied_package_still_loads(foreign, tmp_path):
    shutil.copytree(foreign, tmp_path / "copy")
    assert load_package(tmp_path / "copy").spec.name == "foreign"
