"""``robostack bench policy``: ONNX Runtime and torch eager timings of the same policy in one run
(the command is exercised here; the numbers themselves are for people, not asserted)."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("torch", reason="the torch side of the benchmark needs the train extra")

from policy_datasets import write_tiny_dataset  # noqa: E402


def _bench(argv: list[str]) -> int:
    from robostack.policies import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(argv))


@pytest.mark.slow
def test_bench_reports_onnxruntime_and_torch_latencies_with_ratio(tmp_path, capsys):
    from robostack.policies.export import export_run
    from robostack.policies.training import TrainConfig, train

    write_tiny_dataset(tmp_path / "data", [16, 16])
    config = TrainConfig(dataset=str(tmp_path / "data"), out=str(tmp_path / "run"), steps=2, batch_size=4, image_size=(32, 32),
                         action_horizon=8, model_size="tiny", progress=False)
    train(config)
    export_run(tmp_path / "run", tmp_path / "pkg")
    assert _bench([str(tmp_path / "pkg"), "--repeats", "3", "--warmup", "1", "--samples", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for side in ("onnxruntime", "torch"):
        assert set(report[side]) == {"encoder", "step", "chunk"}
        assert all(report[side][k]["median_ms"] > 0 for k in report[side])
    assert set(report["torch_over_onnxruntime"]) == {"encoder", "step", "chunk"}
    assert report["steps"] == 16 and report["samples"] == 2
    # without a run to load, the torch side is skipped with the reason
    (tmp_path / "run" / "run.json").unlink()
    assert _bench([str(tmp_path / "pkg"), "--repeats", "2", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"] is None and "not a training run" in report["torch_skipped"]


def test_bench_on_a_broken_package_says_why(tmp_path, capsys):
    (tmp_path / "pkg").mkdir()
    assert _bench([str(tmp_path / "pkg"), "--json"]) == 1
    assert "missing policy.json" in capsys.readouterr().out
