"""The failure-prediction benchmark (``robostack eval --perturb``): window tuning on hand-made
traces, episodes labelled by actual success, and a monitored tuning run of a tiny package."""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from robostack.policies.failure.config import FailureCalibration
from robostack.sim import failure_benchmark as fb
from robostack.sim.cli import register

STEP_NS = 400_000_000  # 8 control steps of 50 ms per policy step
SCORES = ("rnd", "ace", "stac")


def _run(argv):
    parser = argparse.ArgumentParser(prog="robostack")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _trace(values, seed, success):
    return {"seed": seed, "success": success, "times_ns": [k * STEP_NS for k in range(len(values))],
            "scores": {name: list(values) for name in SCORES}, "meta": {"sim_time_s": 15.0}}


def _spike(at, steps=12):
    """A success: one short spike of every score, low elsewhere."""
    values = [0.5] * steps
    values[at] = 2.0
    return values


def _record(role, group, success, values, seed=0):
    return fb.EpisodeRecord(seed, role, group, "x", group, success, 15.0 if not success else 6.0, 0.0, len(values),
                            trace=_trace(values, seed, success))


def _suite(tmp_path, purpose, entries, start=300000):
    path = tmp_path / f"{purpose}.yaml"
    path.write_text(yaml.safe_dump({"name": f"mini-{purpose}", "purpose": purpose, "task": "pick_place",
                                    "seeds": {"start": start, "stride": 10}, "entries": entries}))
    return str(path)


def test_tuning_picks_the_window_that_separates_sustained_rises_from_single_spikes():
    calibration = [_record("calibration", "unperturbed", True, _spike(i % 10), seed=i) for i in range(20)]
    rising = [0.5] * 5 + [1.5] * 7  # a failure: every score stays up from step 5
    suite = [_record("suite", "unperturbed", True, _spike(3 + i)) for i in range(5)]
    suite += [_record("suite", "harmful", False, rising) for _ in range(5)]
    best, table = fb.tune_window(calibration, suite, windows=(1, 3), deltas=(0.05,), time_limit_s=15.0)
    rows = {row["window"]: row for row in table}
    # conformal rank ⌈21·0.95⌉ = 20 of 20: the largest per-rollout maximum
    assert rows[1]["thresholds"] == {"rnd": 2.0, "ace": 2.0, "stac": 2.0}
    assert rows[3]["thresholds"]["ace"] == pytest.approx(3.0)
    one, three = rows[1]["methods"]["fiper"], rows[3]["methods"]["fiper"]
    assert one["tpr"] == 0.0 and one["twa"] == pytest.approx(0.5)
    assert three["tpr"] == 1.0 and three["fpr"] == 0.0 and three["balanced_accuracy"] == 1.0
    # first alarm at step 6 (1.5 + 1.5 + 0.5 > 3): 2.4 s of 15 s, lead 12.6 s to the time limit
    assert three["detection_time_mean"] == pytest.approx(2.4 / 15)
    assert three["lead_time_s_mean"] == pytest.approx(12.6)
    assert three["twa"] == pytest.approx(0.5 * (1 - 2.4 / 15 + 1))
    assert best["window"] == 3
    assert set(rows[3]["methods"]) == {"fiper", "rnd", "ace", "stac"}  # 20 successes: too few for rnd_or_stac's δ/2


def test_calibration_traces_file_must_hold_the_packages_calibration_rollouts(tmp_path):
    calibration = FailureCalibration(window=2, delta=0.05, thresholds={"rnd": 1.0}, num_samples=4, execute_steps=8,
                                     seeds=(10, 12), rollouts=3, successes=3, conformal_rank=3)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(_trace([0.1, 0.2], seed, True)) + "\n" for seed in (10, 11)))
    with pytest.raises(ValueError, match="calibrated on 3 rollouts with seeds 10…12"):
        fb.load_calibration_records(path, calibration)
    path.write_text(path.read_text() + json.dumps(_trace([0.1], 12, True)) + "\n")
    assert [r.seed for r in fb.load_calibration_records(path, calibration)] == [10, 11, 12]
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="not a calibration traces file"):
        fb.load_calibration_records(path, calibration)


def test_expert_run_labels_each_episode_by_its_actual_success(tmp_path, capsys):
    suite = _suite(tmp_path, "report", [
        {"family": "none", "episodes": 1},
        {"family": "size", "severity": 1.7, "harmless": False, "episodes": 1},
        # declared harmful, but the privileged expert does not look at the camera: a success
        {"family": "camera_freeze", "severity": 60.0, "harmless": False, "episodes": 1},
    ])
    out = tmp_path / "out"
    assert _run(["eval", "--policy", "expert", "--perturb", suite, "--json", "--out", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["label"]: row for row in data["per_entry"]}
    assert rows["none"]["successes"] == 1 and rows["none"]["group"] == "unperturbed"
    assert rows["size@1.7"]["successes"] == 0 and rows["size@1.7"]["group"] == "harmful"
    assert rows["camera_freeze@60"]["successes"] == 1
    assert data["failure_prediction"] is None and data["suite"]["reportable"] is True
    assert (out / "failure.png").stat().st_size > 0
    traces = json.loads((out / "traces.json").read_text())
    assert [t["seed"] for t in traces] == [300000, 300010, 300020]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--perturb", "nope"], "unknown perturbation suite 'nope'"),
        (["--tune"], "--tune needs --perturb"),
        (["--perturb", "tune", "--tune"], "needs a policy package with a failure calibration"),
        (["--perturb", "tune", "--engine", "pybullet"], "MuJoCo twin"),
        (["--perturb", "tune", "--windows", "1,x"], "--windows must be a comma-separated list of ints"),
        (["--perturb", "tune", "--episodes-per", "5000"], r"episodes per entry must be in \[1, 1000\]"),
    ],
)
def test_bad_perturb_arguments_exit_with_the_reason(tmp_path, capsys, argv, message):
    assert _run(["eval", "--policy", "expert", "--out", str(tmp_path), *argv]) == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow
def test_tiny_package_tuning_run_scores_every_method_and_stores_the_window(tmp_path, capsys):
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    from policy_packages import fit_failure_on_twin_observations, tiny_diffusion_package

    from robostack.policies.failure.config import read_block, write_block
    from robostack.policies.failure.conformal import first_alarm
    from robostack.policies.failure.trace import EpisodeTrace
    from robostack.policies.package import load_package

    root = tmp_path / "pkg"
    _, package = tiny_diffusion_package(root, image_size=(32, 32), horizon=8)
    # RND/ACE fit data: real embeddings and sampled chunks of twin observations
    package = fit_failure_on_twin_observations(package, (900, 901, 902, 903))
    # The random tiny policy never succeeds, so it cannot be calibrated in the twin: stand in
    # synthetic successful calibration traces (seeds 5000…5019) with low scores.
    cal_traces = tmp_path / "calibration.jsonl"
    cal_traces.write_text("".join(json.dumps(_trace([1e-3 * (1 + s % 3)] * 20, 5000 + s, True)) + "\n" for s in range(20)))
    block = read_block(package.spec)
    write_block(package, type(block)(block.rnd, block.ace, block.fit, FailureCalibration(
        window=1, delta=0.05, thresholds={"rnd": 1.0, "ace": 1.0, "stac": 1.0}, num_samples=4, execute_steps=8,
        seeds=(5000, 5019), rollouts=20, successes=20, conformal_rank=20)))
    suite = _suite(tmp_path, "tune", [{"family": "none", "episodes": 1},
                                      {"family": "lighting", "severity": 0.3, "harmless": False, "episodes": 1}])
    out = tmp_path / "out"
    assert _run(["eval", "--policy", str(root), "--perturb", suite, "--tune", "--windows", "2,4",
                 "--calibration-traces", str(cal_traces), "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    fp = data["failure_prediction"]
    assert set(fp["methods"]) == {"fiper", "rnd", "ace", "stac"}
    assert fp["window"] in (2, 4) and [row["window"] for row in data["tuning"]["sweep"]] == [2, 4]
    assert data["successes"] == 0 and data["episodes"] == 2
    # thresholds from the synthetic calibration: rank 20 of 20 per-rollout maxima = 3e-3 · window
    assert fp["thresholds"]["ace"] == pytest.approx(3e-3 * fp["window"])
    # alarms in the report agree with the stored raw traces
    traces = json.loads((out / "traces.json").read_text())
    suite_traces = [EpisodeTrace.from_dict(t["trace"]) for t in traces if t["role"] == "suite"]
    assert all(t.steps == 38 for t in suite_traces)  # 15 s, a policy step every 8 × 50 ms
    alarmed = sum(first_alarm(t, fp["thresholds"], fp["window"], "fiper") is not None for t in suite_traces)
    assert fp["methods"]["fiper"]["true_positives"] == alarmed
    overhead = fp["overhead"]
    assert overhead["steps"] == 76 and overhead["scoring_ms_mean"] > 0
    assert overhead["sampling_B_ms"] > 0 and "monitor_overhead_ms_per_step" in overhead
    stored = read_block(load_package(root).spec).calibration
    assert (stored.window, stored.thresholds["ace"]) == (fp["window"], pytest.approx(fp["thresholds"]["ace"]))
    assert stored.seeds == (5000, 5019) and stored.successes == 20
